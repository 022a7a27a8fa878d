"""The devstack's API server and the real OpenBao together: a ServiceAccount token logs in to Vault.

OpenBao asks the API server's TokenReview endpoint about every login (over TLS, verifying the API server
with its CA, as the reviewer ServiceAccount bound to `system:auth-delegator`); with `pem_keys` it first
checks the JWT's signature itself too. Exactly as Vault does with a real cluster.
"""

from __future__ import annotations

import json
import uuid

import hvac
import pytest
from hvac.exceptions import Forbidden
from sovereign_devstack.token_reviewer import ensure_token_reviewer

from sovereign.clients.kubernetes import load_api_client
from sovereign.clients.vault import configure_kubernetes_auth, ensure_auth_method
from tests.helpers import kubectl
from tests.servers import KubeAPI, VaultServer


def _anonymous(vault: VaultServer) -> hvac.Client:
    """A client with no token yet, verifying OpenBao's certificate."""
    return hvac.Client(url=vault.url, verify=str(vault.ca_cert))


def _service_account_token(kube_api: KubeAPI, namespace: str, name: str) -> str:
    kubectl(kube_api, "create", "namespace", namespace)
    kubectl(kube_api, "create", "serviceaccount", name, "-n", namespace)
    return kubectl(kube_api, "create", "token", name, "-n", namespace, "--audience", "vault").stdout.strip()


@pytest.mark.parametrize("verification", ["pem_keys", "token_review"])
def test_service_account_token_logs_in_only_for_its_bound_role(
    kube_api: KubeAPI, vault_server: VaultServer, verification: str
) -> None:
    root = vault_server.client()
    mount = f"k8s-{verification.replace('_', '-')}"
    ensure_auth_method(root, mount, "kubernetes")
    pem_keys = [kube_api.service_account_certificate.read_text()] if verification == "pem_keys" else None
    reviewer = ensure_token_reviewer(load_api_client(str(kube_api.kubeconfig)))
    configure_kubernetes_auth(root, mount, kube_api.url, pem_keys, kube_api.ca_cert.read_text(), reviewer)

    namespace = f"login-{uuid.uuid4().hex[:6]}"
    token = _service_account_token(kube_api, namespace, "serving")
    root.auth.kubernetes.create_role(
        "serving",
        bound_service_account_names=["serving"],
        bound_service_account_namespaces=[namespace],
        policies=["default"],
        audience="vault",
        mount_point=mount,
    )
    root.auth.kubernetes.create_role(
        "elsewhere",
        bound_service_account_names=["serving"],
        bound_service_account_namespaces=["some-other-nation"],
        policies=["default"],
        audience="vault",
        mount_point=mount,
    )

    client = _anonymous(vault_server)
    login = client.auth.kubernetes.login("serving", token, mount_point=mount)
    assert login["auth"]["metadata"]["service_account_namespace"] == namespace
    assert client.is_authenticated()

    with pytest.raises(Forbidden):
        _anonymous(vault_server).auth.kubernetes.login("elsewhere", token, mount_point=mount)

    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(Forbidden):
        _anonymous(vault_server).auth.kubernetes.login("serving", forged, mount_point=mount)


def test_token_request_claims_name_the_service_account(kube_api: KubeAPI) -> None:
    import jwt

    namespace = f"claims-{uuid.uuid4().hex[:6]}"
    token = _service_account_token(kube_api, namespace, "reader")
    claims = jwt.decode(
        token, kube_api.service_account_public_key.read_text(), algorithms=["RS256"], audience="vault"
    )
    assert claims["sub"] == f"system:serviceaccount:{namespace}:reader"
    sa = json.loads(kubectl(kube_api, "get", "sa", "reader", "-n", namespace, "-o", "json").stdout)
    assert claims["kubernetes.io"]["serviceaccount"] == {"name": "reader", "uid": sa["metadata"]["uid"]}
