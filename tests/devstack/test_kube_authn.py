"""Authentication on the devstack API server, as kube-apiserver does it: over TLS only, client certificates
of the cluster CA, ServiceAccount tokens it issued, a static token file; anonymous requests refused except
on the health paths; a bad credential is 401, never anonymous."""

from __future__ import annotations

import json
import ssl
import time
from pathlib import Path

import httpx
import jwt
import kubernetes
import pytest
from sovereign_devstack.pki import CertificateAuthority, ensure_ca

from tests.devstack.kube_users import (
    KubeUser,
    certificate_user,
    new_namespace,
    service_account_user,
)
from tests.helpers import kubectl, wait_until
from tests.servers import KubeAPI, running_kube_api

UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "details": {},
    "code": 401,
}


def _anonymous(kube_api: KubeAPI) -> httpx.Client:
    return httpx.Client(base_url=kube_api.url, verify=kube_api.ssl_context(admin=False))


def test_plain_http_is_not_served(kube_api: KubeAPI) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(kube_api.url.replace("https://", "http://") + "/readyz", timeout=5)


@pytest.mark.parametrize(
    "path", ["/api/v1/namespaces", "/version", "/apis", "/api/v1/namespaces/default", "/readyz/ping"]
)
def test_anonymous_requests_are_401_with_the_status_body(kube_api: KubeAPI, path: str) -> None:
    with _anonymous(kube_api) as anonymous:
        answer = anonymous.get(path)
    assert answer.status_code == 401
    assert answer.json() == UNAUTHORIZED


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz"])
def test_health_paths_answer_anonymous_requests(kube_api: KubeAPI, path: str) -> None:
    with _anonymous(kube_api) as anonymous:
        answer = anonymous.get(path)
    assert (answer.status_code, answer.text) == (200, "ok")


def test_a_wrong_token_is_401_even_on_the_health_paths(kube_api: KubeAPI, tmp_path: Path) -> None:
    with kube_api.http(token="not-a-token") as client:
        assert client.get("/readyz").status_code == 401
        assert client.get("/api/v1/namespaces").json() == UNAUTHORIZED
    # A kubeconfig with the server's CA and no client certificate (a verified certificate would win, as
    # in kube's union of authenticators): kubectl --token as a user without a certificate runs it.
    nobody = KubeUser("nobody", kube_api.token_kubeconfig(tmp_path / "kubeconfig", "placeholder"))
    result = kubectl(nobody, "--token", "not-a-token", "get", "namespaces", check=False)
    assert result.returncode != 0
    assert "error: You must be logged in to the server" in result.stderr


def test_the_admin_client_certificate_is_kubernetes_admin_in_system_masters(kube_api: KubeAPI) -> None:
    whoami = json.loads(kubectl(kube_api, "auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert whoami["username"] == "kubernetes-admin"
    assert set(whoami["groups"]) == {"system:masters", "system:authenticated"}
    assert kubectl(kube_api, "auth", "can-i", "*", "*", "--all-namespaces").stdout.strip() == "yes"


def test_a_client_certificate_names_its_user_and_groups(
    kube_api: KubeAPI, devstack_ca: CertificateAuthority, tmp_path: Path
) -> None:
    alice = certificate_user(kube_api, devstack_ca, "alice", ("team-a", "auditors"), tmp_path)
    whoami = json.loads(kubectl(alice, "auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert whoami["username"] == "alice"
    assert whoami["groups"] == ["team-a", "auditors", "system:authenticated"]


def test_a_client_certificate_of_another_ca_is_refused(
    kube_api: KubeAPI, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stranger_ca = ensure_ca(tmp_path_factory.mktemp("stranger-pki"))
    pair = stranger_ca.issue_client(tmp_path, "mallory", "kubernetes-admin", ("system:masters",))
    context = ssl.create_default_context(cafile=kube_api.ca_cert)
    context.load_cert_chain(pair.certificate, pair.private_key)
    with pytest.raises(httpx.HTTPError), httpx.Client(base_url=kube_api.url, verify=context) as client:
        client.get("/api/v1/namespaces")


def test_a_service_account_token_names_its_account(kube_api: KubeAPI, tmp_path: Path) -> None:
    namespace = new_namespace(kube_api, "authn")
    robot = service_account_user(kube_api, namespace, "robot", tmp_path)
    whoami = json.loads(kubectl(robot, "auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert whoami["username"] == f"system:serviceaccount:{namespace}:robot"
    assert whoami["groups"] == [
        "system:serviceaccounts",
        f"system:serviceaccounts:{namespace}",
        "system:authenticated",
    ]
    assert whoami["extra"]["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")
    # The audit log names the account for what it did.
    events = [json.loads(line) for line in kube_api.audit_log.read_text().splitlines()]
    mine = [e for e in events if e["user"]["username"] == robot.name]
    assert any(e["objectRef"]["resource"] == "selfsubjectreviews" for e in mine)


def _forged_token(kube_api: KubeAPI, namespace: str, name: str, uid: str, **claims: object) -> str:
    """A token signed with the API server's own key (what TokenRequest cannot make: an expired one)."""
    now = int(time.time())
    payload = {
        "aud": ["https://kubernetes.default.svc.cluster.local"],
        "iss": "https://kubernetes.default.svc.cluster.local",
        "iat": now - 7200,
        "nbf": now - 7200,
        "exp": now + 3600,
        "sub": f"system:serviceaccount:{namespace}:{name}",
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        **claims,
    }
    return jwt.encode(payload, kube_api.service_account_key.read_bytes(), algorithm="RS256")


def test_expired_and_foreign_audience_tokens_are_401(kube_api: KubeAPI, tmp_path: Path) -> None:
    namespace = new_namespace(kube_api, "authn")
    service_account_user(kube_api, namespace, "robot", tmp_path)
    uid = kubectl(kube_api, "-n", namespace, "get", "sa", "robot", "-o", "jsonpath={.metadata.uid}").stdout
    valid = _forged_token(kube_api, namespace, "robot", uid)
    expired = _forged_token(kube_api, namespace, "robot", uid, exp=int(time.time()) - 60)
    for_vault = kubectl(kube_api, "-n", namespace, "create", "token", "robot", "--audience", "vault").stdout
    with kube_api.http(token=valid) as client:
        assert client.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={}).status_code == 201
    for token in (expired, for_vault.strip()):
        with kube_api.http(token=token) as client:
            assert client.get(f"/api/v1/namespaces/{namespace}/configmaps").json() == UNAUTHORIZED


def test_a_deleted_service_accounts_token_stops_working(kube_api: KubeAPI, tmp_path: Path) -> None:
    namespace = new_namespace(kube_api, "authn")
    robot = service_account_user(kube_api, namespace, "robot", tmp_path)
    kubectl(robot, "auth", "whoami")
    kubectl(kube_api, "-n", namespace, "delete", "serviceaccount", "robot")
    kubectl(kube_api, "-n", namespace, "create", "serviceaccount", "robot")  # same name, new uid

    def refused() -> bool:
        result = kubectl(robot, "auth", "whoami", check=False)
        return result.returncode != 0 and "Unauthorized" in result.stderr

    wait_until(refused, "the old token of a recreated ServiceAccount to be refused")


@pytest.mark.process
def test_static_token_file_users(
    devstack_ca: CertificateAuthority, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('s3cret-token,carol,uid-42,"team-c,readers"\n')
    with running_kube_api(tmp_path_factory.mktemp("kube-static"), devstack_ca, token_auth_file=tokens) as api:
        carol = KubeUser("carol", api.token_kubeconfig(tmp_path / "carol.kubeconfig", "s3cret-token"))
        whoami = json.loads(kubectl(carol, "auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
        assert (whoami["username"], whoami["uid"]) == ("carol", "uid-42")
        assert whoami["groups"] == ["team-c", "readers", "system:authenticated"]
        core = kubernetes.client.CoreV1Api(carol.api_client())
        with pytest.raises(kubernetes.client.ApiException) as refused:
            core.list_namespaced_config_map("default")
        assert refused.value.status == 403


def test_a_token_bound_to_a_secret_dies_with_it(kube_api: KubeAPI, tmp_path: Path) -> None:
    namespace = new_namespace(kube_api, "authn")
    service_account_user(kube_api, namespace, "robot", tmp_path)
    kubectl(kube_api, "-n", namespace, "create", "secret", "generic", "anchor", "--from-literal=a=1")
    token = kubectl(
        kube_api,
        *("-n", namespace, "create", "token", "robot"),
        *("--bound-object-kind", "Secret", "--bound-object-name", "anchor"),
    ).stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["kubernetes.io"]["secret"]["name"] == "anchor"
    bound = KubeUser("robot", kube_api.token_kubeconfig(tmp_path / "bound.kubeconfig", token))
    kubectl(bound, "auth", "whoami")
    kubectl(kube_api, "-n", namespace, "delete", "secret", "anchor")
    refused = kubectl(bound, "auth", "whoami", check=False)
    assert refused.returncode != 0 and "must be logged in" in refused.stderr
    missing = kubectl(
        kube_api,
        *("-n", namespace, "create", "token", "robot"),
        *("--bound-object-kind", "Secret", "--bound-object-name", "anchor"),
        check=False,
    )
    assert 'secrets "anchor" not found' in missing.stderr
