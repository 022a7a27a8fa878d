"""ServiceAccount tokens: TokenRequest issues RS256 JWTs, TokenReview verifies them, OIDC discovery serves
the public key.

# k8s docs: /docs/reference/kubernetes-api/authentication-resources/token-request-v1/
# k8s docs: /docs/reference/access-authn-authz/service-accounts-admin/#bound-service-account-token-volume
# k8s docs: /docs/tasks/configure-pod-container/configure-service-account/#service-account-issuer-discovery
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from sovereign_devstack.kube import errors
from sovereign_devstack.kube.store import Store

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SA_KEY = ("", "serviceaccounts")
BOUND_KINDS = {"pod": "pods", "secret": "secrets", "node": "nodes"}  # claim name -> core resource
MIN_EXPIRATION = 600  # kube rejects expirationSeconds under 10 minutes


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class TokenIssuer:
    def __init__(self, key_file: Path, issuer: str = DEFAULT_ISSUER, jwks_uri: str | None = None) -> None:
        self.private_key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        self.public_key = self.private_key.public_key()
        der = self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # kube's key id: unpadded base64url of SHA-256 over the PKIX DER public key.
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
        self.issuer = issuer
        self.audiences = [issuer]  # --api-audiences defaults to the issuer
        self.jwks_uri = jwks_uri or issuer.rstrip("/") + "/openid/v1/jwks"

    def openid_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def jwks(self) -> dict[str, Any]:
        numbers = self.public_key.public_numbers()
        return {
            "keys": [
                {
                    "use": "sig",
                    "kty": "RSA",
                    "kid": self.kid,
                    "alg": "RS256",
                    "n": _b64url_uint(numbers.n),
                    "e": _b64url_uint(numbers.e),
                }
            ]
        }

    def issue(
        self, sa: dict[str, Any], audiences: list[str], seconds: int, bound: dict[str, Any] | None
    ) -> tuple[str, int]:
        now = int(time.time())
        meta = sa["metadata"]
        private: dict[str, Any] = {
            "namespace": meta["namespace"],
            "serviceaccount": {"name": meta["name"], "uid": meta["uid"]},
        }
        if bound and bound.get("kind") in ("Pod", "Secret", "Node"):
            private[bound["kind"].lower()] = {"name": bound.get("name", ""), "uid": bound.get("uid", "")}
        claims = {
            "aud": audiences,
            "exp": now + seconds,
            "iat": now,
            "nbf": now,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": private,
            "sub": f"system:serviceaccount:{meta['namespace']}:{meta['name']}",
        }
        return jwt.encode(
            claims, self.private_key, algorithm="RS256", headers={"kid": self.kid}
        ), now + seconds

    def verify(
        self, token: str, store: Store, audiences: list[str] | None
    ) -> tuple[dict[str, Any], list[str]]:
        """Claims and the accepted audiences of a valid token; raises ValueError when it is not one."""
        wanted = audiences or self.audiences
        try:
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=["RS256"],
                issuer=self.issuer,
                options={"verify_aud": False, "require": ["exp", "iat", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise ValueError(f"invalid bearer token, {exc}") from exc
        token_aud = claims.get("aud") or []
        token_aud = [token_aud] if isinstance(token_aud, str) else token_aud
        accepted = [a for a in wanted if a in token_aud]
        if not accepted:
            raise ValueError(f"token audiences {token_aud} is invalid for the target audiences {wanted}")
        private = claims.get("kubernetes.io") or {}
        sa_ref = private.get("serviceaccount") or {}
        sa = store.get(SA_KEY, private.get("namespace"), sa_ref.get("name", ""))
        if sa is None or sa["metadata"]["uid"] != sa_ref.get("uid"):
            raise ValueError("service account has been deleted or recreated")
        # A token bound to an object dies with it (k8s docs: /docs/reference/access-authn-authz/
        # service-accounts-admin/#bound-service-account-token-volume).
        for kind, plural in BOUND_KINDS.items():
            ref = private.get(kind)
            if ref is None:
                continue
            namespace = None if kind == "node" else private.get("namespace")
            bound = store.get(("", plural), namespace, ref.get("name", ""))
            if bound is None or bound["metadata"].get("uid") != ref.get("uid"):
                raise ValueError(f"the {kind} the token is bound to has been deleted or recreated")
        return claims, accepted

    def user_info(self, claims: dict[str, Any]) -> dict[str, Any]:
        private = claims.get("kubernetes.io") or {}
        namespace = private.get("namespace", "")
        return {
            "username": claims["sub"],
            "uid": (private.get("serviceaccount") or {}).get("uid", ""),
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ],
            "extra": {"authentication.kubernetes.io/credential-id": [f"JTI={claims.get('jti', '')}"]},
        }

    @staticmethod
    def _bound_object(store: Store, namespace: str | None, ref: Any) -> dict[str, Any] | None:
        """The boundObjectRef with its object's uid, as TokenRequest fills it; 404 if it is missing."""
        if not isinstance(ref, dict) or not ref.get("kind"):
            return None
        kind = str(ref["kind"])
        plural = BOUND_KINDS.get(kind.lower())
        if plural is None:
            raise errors.bad_request(f"cannot bind token to object of type {kind}")
        name = str(ref.get("name") or "")
        obj = store.get(("", plural), None if kind == "Node" else namespace, name)
        if obj is None:
            raise errors.not_found("", plural, name)
        uid = obj["metadata"]["uid"]
        if ref.get("uid") and ref["uid"] != uid:
            raise errors.conflict(
                "",
                plural,
                name,
                f"the UID in the bound object reference ({ref['uid']}) "
                f"does not match the UID in record. The object might have been deleted and "
                f"then recreated",
            )
        return {**ref, "uid": uid}

    # ---- the two API endpoints
    def handle_token_request(self, store: Store) -> Callable[..., Awaitable[tuple[int, dict[str, Any]]]]:
        async def handler(rt: Any, path: Any, body: Any, request: Any) -> tuple[int, dict[str, Any]]:
            sa = store.get(SA_KEY, path.namespace, path.name or "")
            if sa is None:
                raise errors.not_found("", "serviceaccounts", path.name or "")
            body = body if isinstance(body, dict) else {}
            spec = dict(body.get("spec") or {})
            seconds = int(spec.get("expirationSeconds") or 3600)
            if seconds < MIN_EXPIRATION:
                raise errors.invalid(
                    "authentication.k8s.io",
                    "TokenRequest",
                    path.name or "",
                    [
                        errors.field_cause(
                            "spec.expirationSeconds",
                            "Invalid value: may not specify a duration less than 10 minutes",
                        )
                    ],
                )
            audiences = list(spec.get("audiences") or self.audiences)
            bound = self._bound_object(store, path.namespace, spec.get("boundObjectRef"))
            if bound is not None:
                spec["boundObjectRef"] = bound
            token, expires = self.issue(sa, audiences, seconds, bound)
            spec.update(audiences=audiences, expirationSeconds=seconds)
            stamp = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return 201, {
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {
                    "name": sa["metadata"]["name"],
                    "namespace": path.namespace,
                    "creationTimestamp": None,
                },
                "spec": spec,
                "status": {"token": token, "expirationTimestamp": stamp},
            }

        return handler

    def handle_token_review(self, store: Store) -> Callable[..., Awaitable[tuple[int, dict[str, Any]]]]:
        async def handler(rt: Any, path: Any, body: Any, request: Any) -> tuple[int, dict[str, Any]]:
            body = body if isinstance(body, dict) else {}
            spec = body.get("spec") or {}
            result: dict[str, Any] = {
                "kind": "TokenReview",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": None},
                "spec": spec,
            }
            try:
                claims, accepted = self.verify(spec.get("token") or "", store, spec.get("audiences"))
            except ValueError as exc:
                result["status"] = {"user": {}, "error": f"[{exc}]"}
                return 201, result
            result["status"] = {"authenticated": True, "user": self.user_info(claims), "audiences": accepted}
            return 201, result

        return handler
