"""The Kubernetes auth method: config, roles, and ServiceAccount JWT checks for login (no I/O here).

Signature checks against `pem_keys` happen here; the TokenReview call (when no keys are configured) lives in
token_review.py so this module stays pure. Vault docs: /vault/docs/auth/kubernetes and
/vault/api-docs/auth/kubernetes
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sovereign_devstack.vault.common import (
    VaultError,
    as_bool,
    as_int,
    as_str_list,
    invalid_request,
    not_found,
    parse_duration,
    permission_denied,
    unsupported_operation,
    unsupported_path,
)

# Vault docs: /vault/api-docs/auth/kubernetes#issuer ("kubernetes/serviceaccount" when none is given)
DEFAULT_ISSUER = "kubernetes/serviceaccount"
CLOCK_SKEW_LEEWAY = 60  # seconds of exp/nbf tolerance between the token issuer's clock and ours
SIGNING_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]


@dataclass(frozen=True)
class ServiceAccount:
    namespace: str
    name: str
    uid: str
    secret_name: str = ""


def _load_public_key(pem: str) -> Any:
    data = pem.encode()
    try:
        return serialization.load_pem_public_key(data)
    except ValueError:
        pass
    try:
        return x509.load_pem_x509_certificate(data).public_key()  # a certificate's key is used
    except ValueError:
        raise invalid_request("data does not contain any valid RSA or ECDSA public keys") from None


def claims_service_account(claims: dict[str, Any]) -> ServiceAccount:
    """Namespace/name/uid from projected (`kubernetes.io`) or legacy secret-token claims."""
    projected = claims.get("kubernetes.io")
    if isinstance(projected, dict):
        account = projected.get("serviceaccount") or {}
        return ServiceAccount(
            namespace=str(projected.get("namespace", "")),
            name=str(account.get("name", "")),
            uid=str(account.get("uid", "")),
        )
    prefix = "kubernetes.io/serviceaccount/"
    return ServiceAccount(
        namespace=str(claims.get(prefix + "namespace", "")),
        name=str(claims.get(prefix + "service-account.name", "")),
        uid=str(claims.get(prefix + "service-account.uid", "")),
        secret_name=str(claims.get(prefix + "secret.name", "")),
    )


def _bound(patterns: list[str], value: str) -> bool:
    # Both "*" alone and globs inside values are accepted.
    # Vault docs: /vault/api-docs/auth/kubernetes#create-role
    return any(pattern == "*" or fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


class KubernetesAuth:
    def __init__(self) -> None:
        self.config: dict[str, Any] | None = None
        self.public_keys: list[Any] = []
        self.roles: dict[str, dict[str, Any]] = {}

    # -- routing ---------------------------------------------------------------------------------

    def exists(self, path: str) -> bool | None:
        if path == "config":
            return self.config is not None
        if path.startswith("role/"):
            return path[len("role/") :] in self.roles
        return None

    def handle(self, operation: str, path: str, data: dict[str, Any]) -> dict[str, Any] | None:
        if path == "config":
            if operation == "read":
                if self.config is None:
                    raise not_found()
                return {k: v for k, v in self.config.items() if k != "token_reviewer_jwt"} | {
                    "token_reviewer_jwt_set": bool(self.config.get("token_reviewer_jwt"))
                }
            if operation in ("create", "update"):
                self.configure(data)
                return None
            raise unsupported_operation()
        if path in ("role", "role/"):
            if operation != "list":
                raise unsupported_operation()
            return {"keys": sorted(self.roles)}
        if path.startswith("role/"):
            name = path[len("role/") :]
            if operation == "read":
                if name not in self.roles:
                    raise not_found()
                return dict(self.roles[name])
            if operation in ("create", "update"):
                self.write_role(name, data)
                return None
            if operation == "delete":
                self.roles.pop(name, None)
                return None
            raise unsupported_operation()
        raise unsupported_path()

    # -- configuration ---------------------------------------------------------------------------

    def configure(self, data: dict[str, Any]) -> None:
        """Vault docs: /vault/api-docs/auth/kubernetes#configure-method"""
        host = str(data.get("kubernetes_host") or "")
        if not host:
            raise invalid_request("no host provided")
        pem_keys = (
            as_str_list(data.get("pem_keys"))
            if not isinstance(data.get("pem_keys"), str)
            else [data["pem_keys"]]
        )
        self.public_keys = [_load_public_key(pem) for pem in pem_keys]
        self.config = {
            "kubernetes_host": host,
            "kubernetes_ca_cert": str(data.get("kubernetes_ca_cert") or ""),
            "pem_keys": pem_keys,
            "issuer": str(data.get("issuer") or ""),
            # Vault docs: /vault/api-docs/auth/kubernetes#disable_iss_validation (defaults to true)
            "disable_iss_validation": as_bool(
                data.get("disable_iss_validation", True), "disable_iss_validation"
            ),
            "disable_local_ca_jwt": as_bool(data.get("disable_local_ca_jwt", False), "disable_local_ca_jwt"),
            "token_reviewer_jwt": str(data.get("token_reviewer_jwt") or ""),
        }

    def write_role(self, name: str, data: dict[str, Any]) -> None:
        """token_* fields, legacy aliases accepted. Vault docs: /vault/api-docs/auth/kubernetes#create-role"""
        role = dict(self.roles.get(name, {}))
        for field_name in ("bound_service_account_names", "bound_service_account_namespaces"):
            if field_name in data:
                role[field_name] = as_str_list(data[field_name])
            values = role.get(field_name, [])
            if not values:
                raise invalid_request(f'"{field_name}" can not be empty')
            if len(values) > 1 and "*" in values:
                raise invalid_request('can not mix "*" with values')
        aliases = {
            "token_policies": "policies",
            "token_ttl": "ttl",
            "token_max_ttl": "max_ttl",
            "token_period": "period",
        }
        for field_name, legacy in aliases.items():
            value = data.get(field_name, data.get(legacy))
            if value is None:
                role.setdefault(field_name, [] if field_name == "token_policies" else 0)
            elif field_name == "token_policies":
                role[field_name] = [p.lower() for p in as_str_list(value)]
            else:
                role[field_name] = parse_duration(value, field_name)
        role["audience"] = str(data.get("audience", role.get("audience", "")) or "")
        role["alias_name_source"] = str(
            data.get("alias_name_source") or role.get("alias_name_source") or "serviceaccount_uid"
        )
        role["token_no_default_policy"] = as_bool(
            data.get("token_no_default_policy", role.get("token_no_default_policy", False)),
            "token_no_default_policy",
        )
        role["token_num_uses"] = as_int(
            data.get("token_num_uses", role.get("token_num_uses", 0)), "token_num_uses"
        )
        role["token_type"] = str(data.get("token_type") or role.get("token_type") or "default")
        # The legacy names are still returned on read, mirroring token_*.
        role["policies"], role["ttl"] = role["token_policies"], role["token_ttl"]
        role["max_ttl"], role["period"] = role["token_max_ttl"], role["token_period"]
        self.roles[name] = role

    # -- login -----------------------------------------------------------------------------------

    def login_role(self, data: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
        """Validate the login body; returns (role name, role, jwt).

        Vault docs: /vault/api-docs/auth/kubernetes#login
        """
        role_name = str(data.get("role") or "")
        if not role_name:
            raise invalid_request("missing role")
        token = str(data.get("jwt") or "")
        if not token:
            raise invalid_request("missing jwt")
        role = self.roles.get(role_name)
        if role is None:
            raise invalid_request(f'invalid role name "{role_name}"')
        if self.config is None:
            raise invalid_request("could not load backend configuration")
        return role_name, role, token

    def verify_locally(self, token: str, role: dict[str, Any]) -> ServiceAccount:
        """Check the JWT's signature against pem_keys, then exp/nbf, issuer and the role's audience."""
        assert self.config is not None
        options = {"verify_aud": bool(role.get("audience"))}
        issuer = None if self.config["disable_iss_validation"] else (self.config["issuer"] or DEFAULT_ISSUER)
        try:
            algorithm = str(jwt.get_unverified_header(token).get("alg", ""))
        except jwt.PyJWTError:
            raise permission_denied() from None
        key_type = {"RS": rsa.RSAPublicKey, "ES": ec.EllipticCurvePublicKey}.get(algorithm[:2])
        for key in self.public_keys:
            if key_type is None or not isinstance(key, key_type):
                continue  # only keys of the token's algorithm family can have signed it
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=SIGNING_ALGORITHMS,
                    options=options,
                    audience=role.get("audience") or None,
                    issuer=issuer,
                    leeway=CLOCK_SKEW_LEEWAY,
                )
            except jwt.InvalidSignatureError:
                continue  # not signed by this key: try the next
            except jwt.PyJWTError:
                # Expired, not yet valid, wrong issuer or audience, or malformed: the login is refused.
                raise permission_denied() from None
            return claims_service_account(claims)
        raise permission_denied()

    @staticmethod
    def unverified_service_account(token: str) -> ServiceAccount:
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise permission_denied() from None
        return claims_service_account(claims)

    @staticmethod
    def check_review(claimed: ServiceAccount, status: dict[str, Any]) -> ServiceAccount:
        """Trust a TokenReview status only if it authenticates the same account the JWT names."""
        if not status.get("authenticated"):
            raise permission_denied()
        username = str((status.get("user") or {}).get("username", ""))
        parts = username.split(":")
        if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"]:
            raise permission_denied()
        reviewed = ServiceAccount(
            namespace=parts[2], name=parts[3], uid=str((status.get("user") or {}).get("uid", ""))
        )
        if (reviewed.namespace, reviewed.name) != (claimed.namespace, claimed.name):
            raise VaultError(403, "JWT names were not the same as the TokenReview response")
        return reviewed

    @staticmethod
    def authorize(role: dict[str, Any], account: ServiceAccount) -> None:
        """Bound namespaces and names; refusals are 403 with the plugin's messages."""
        if not _bound(role["bound_service_account_namespaces"], account.namespace):
            raise VaultError(403, "namespace not authorized")
        if not _bound(role["bound_service_account_names"], account.name):
            raise VaultError(403, "service account name not authorized")

    @staticmethod
    def login_metadata(role_name: str, account: ServiceAccount) -> dict[str, str]:
        return {
            "role": role_name,
            "service_account_name": account.name,
            "service_account_namespace": account.namespace,
            "service_account_secret_name": account.secret_name,
            "service_account_uid": account.uid,
        }
