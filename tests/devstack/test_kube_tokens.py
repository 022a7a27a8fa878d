"""ServiceAccount tokens from the devstack API server: TokenRequest JWTs, TokenReview, OIDC discovery."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid

import jwt
import kubernetes
import pytest
from cryptography.hazmat.primitives import serialization
from kubernetes.client import (
    AuthenticationV1Api,
    AuthenticationV1TokenRequest,
    CoreV1Api,
    V1ObjectMeta,
    V1ServiceAccount,
    V1TokenRequestSpec,
    V1TokenReview,
    V1TokenReviewSpec,
)

from tests.helpers import kubectl
from tests.servers import KubeAPI


def _clients(kube_api: KubeAPI) -> tuple[CoreV1Api, AuthenticationV1Api]:
    api = kubernetes.config.new_client_from_config(config_file=str(kube_api.kubeconfig))
    return CoreV1Api(api), AuthenticationV1Api(api)


def _setup(kube_api: KubeAPI) -> tuple[str, V1ServiceAccount]:
    ns = f"tok-{uuid.uuid4().hex[:8]}"
    kubectl(
        kube_api, "apply", "-f", "-", input=f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"
    )
    core, _ = _clients(kube_api)
    sa = core.create_namespaced_service_account(ns, V1ServiceAccount(metadata=V1ObjectMeta(name="robot")))
    return ns, sa


def test_token_request_issues_a_verifiable_jwt(kube_api: KubeAPI) -> None:
    ns, sa = _setup(kube_api)
    core, _ = _clients(kube_api)
    request = AuthenticationV1TokenRequest(
        spec=V1TokenRequestSpec(audiences=["vault"], expiration_seconds=1200)
    )
    issued = core.create_namespaced_service_account_token("robot", ns, request)
    token = issued.status.token
    public_key = serialization.load_pem_public_key(kube_api.service_account_public_key.read_bytes())
    claims = jwt.decode(token, public_key, algorithms=["RS256"], audience="vault")
    assert claims["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert claims["sub"] == f"system:serviceaccount:{ns}:robot"
    assert claims["aud"] == ["vault"]
    assert claims["kubernetes.io"] == {
        "namespace": ns,
        "serviceaccount": {"name": "robot", "uid": sa.metadata.uid},
    }
    assert claims["exp"] - claims["iat"] == 1200 and claims["nbf"] <= time.time() and claims["jti"]
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    kid = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    assert jwt.get_unverified_header(token)["kid"] == kid
    assert abs(issued.status.expiration_timestamp.timestamp() - claims["exp"]) < 2
    # The same key is published the way kube-apiserver does for OIDC discovery.
    with kube_api.http() as admin:
        config = admin.get("/.well-known/openid-configuration").json()
        jwks = admin.get("/openid/v1/jwks").json()
    assert config["issuer"] == claims["iss"] and config["id_token_signing_alg_values_supported"] == ["RS256"]
    assert jwks["keys"][0]["kid"] == kid
    published = jwt.PyJWK(jwks["keys"][0]).key
    assert jwt.decode(token, published, algorithms=["RS256"], audience="vault")["sub"] == claims["sub"]


def test_token_request_for_a_missing_service_account_is_404(kube_api: KubeAPI) -> None:
    ns, _ = _setup(kube_api)
    core, _ = _clients(kube_api)
    with pytest.raises(kubernetes.client.ApiException) as missing:
        core.create_namespaced_service_account_token(
            "ghost", ns, AuthenticationV1TokenRequest(spec=V1TokenRequestSpec(audiences=["x"]))
        )
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["message"] == 'serviceaccounts "ghost" not found'


def test_token_review_authenticates_until_the_account_is_deleted(kube_api: KubeAPI) -> None:
    ns, sa = _setup(kube_api)
    core, auth = _clients(kube_api)
    token = core.create_namespaced_service_account_token(
        "robot", ns, AuthenticationV1TokenRequest(spec=V1TokenRequestSpec(audiences=["vault", "other"]))
    ).status.token
    review = auth.create_token_review(V1TokenReview(spec=V1TokenReviewSpec(token=token, audiences=["vault"])))
    assert review.status.authenticated is True
    assert review.status.user.username == f"system:serviceaccount:{ns}:robot"
    assert review.status.user.uid == sa.metadata.uid
    assert set(review.status.user.groups) == {
        "system:serviceaccounts",
        f"system:serviceaccounts:{ns}",
        "system:authenticated",
    }
    assert review.status.audiences == ["vault"]
    wrong_audience = auth.create_token_review(
        V1TokenReview(spec=V1TokenReviewSpec(token=token, audiences=["nope"]))
    )
    assert not wrong_audience.status.authenticated and wrong_audience.status.error
    forged = auth.create_token_review(V1TokenReview(spec=V1TokenReviewSpec(token=token[:-4] + "AAAA")))
    assert not forged.status.authenticated
    core.delete_namespaced_service_account("robot", ns)
    stale = auth.create_token_review(V1TokenReview(spec=V1TokenReviewSpec(token=token, audiences=["vault"])))
    assert not stale.status.authenticated
