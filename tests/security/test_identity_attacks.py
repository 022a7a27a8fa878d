"""Attacks on identity, tried as an outsider, a nation's own administrator and the operator's credentials
would: against the local platform's Kubernetes API (TLS, authentication, RBAC) and its Vault (OpenBao, TLS).

Two nations, LUX and NLD, provisioned by the real operator running as its chart ServiceAccount (`nations`,
tests/security/conftest.py). Each attack is made with the real kubectl or hvac, as the attacker would, and
must be refused with the server's own answer. SECURITY.md lists who may do what and points here.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import httpx
import hvac
import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from sovereign_devstack.kubeconfig import write_kubeconfig
from sovereign_devstack.operator_identity import USERNAME as OPERATOR
from sovereign_devstack.pki import ensure_ca

from tests.devstack.kube_users import KubeUser, certificate_user
from tests.helpers import kubectl
from tests.operator.harness import Platform

FORBIDDEN = "Error from server (Forbidden): "
UNAUTHORIZED = "error: You must be logged in to the server (Unauthorized)"


@pytest.fixture(scope="module")
def lux_admin(nations: Platform, tmp_path_factory: pytest.TempPathFactory) -> KubeUser:
    """Luxembourg's own administrator: a client certificate of the cluster's CA in group lux-admins."""
    return certificate_user(
        nations.kube, nations.ca, "alice@lux", ("lux-admins",), tmp_path_factory.mktemp("lux-admin")
    )


def _refused(user: KubeUser, *args: str) -> str:
    result = kubectl(user, *args, check=False)
    assert result.returncode != 0, f"kubectl {' '.join(args)} was allowed to {user.name}"
    return result.stderr.strip()


def _as_operator(platform: Platform) -> KubeUser:
    return KubeUser(OPERATOR, platform.operator_identity.kubeconfig)


# -- an outsider: no credentials, forged credentials ------------------------------------------------------


def test_a_caller_without_credentials_is_refused(nations: Platform, tmp_path: Path) -> None:
    with httpx.Client(verify=nations.kube.ssl_context(admin=False)) as http:  # no certificate, no token
        answer = http.get(f"{nations.kube.url}/api/v1/namespaces/tenant-lux/configmaps")
    assert answer.status_code == 401 and answer.json()["reason"] == "Unauthorized"
    guesser = KubeUser("guesser", nations.kube.token_kubeconfig(tmp_path / "guess", "not-a-token"))
    assert _refused(guesser, "get", "tenants") == UNAUTHORIZED


def test_a_service_account_token_signed_by_another_key_is_refused(nations: Platform, tmp_path: Path) -> None:
    """The attacker writes the operator's claims into a JWT signed with a key of their own."""
    now = datetime.datetime.now(datetime.UTC)
    claims = {
        "iss": "https://kubernetes.default.svc.cluster.local",
        "aud": ["https://kubernetes.default.svc.cluster.local"],
        "sub": OPERATOR,
        "iat": now,
        "exp": now + datetime.timedelta(hours=1),
        "kubernetes.io": {"namespace": "sovereign-system", "serviceaccount": {"name": "sovereign-operator"}},
    }
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, key, algorithm="RS256")
    attacker = KubeUser("forger", nations.kube.token_kubeconfig(tmp_path / "forged.kubeconfig", forged))
    assert _refused(attacker, "get", "tenants") == UNAUTHORIZED


def test_a_client_certificate_of_another_ca_never_makes_an_admin(nations: Platform, tmp_path: Path) -> None:
    """system:masters written into a certificate of the attacker's own CA: the TLS handshake refuses it."""
    rogue = ensure_ca(tmp_path / "rogue-ca").issue_client(
        tmp_path, "rogue-admin", "kubernetes-admin", ("system:masters",)
    )
    attacker = KubeUser(
        "rogue",
        write_kubeconfig(tmp_path / "rogue.kubeconfig", nations.kube.url, nations.kube.ca_cert, client=rogue),
    )
    result = kubectl(attacker, "get", "secrets", "-A", check=False)
    assert result.returncode != 0 and "secrets" not in result.stdout


# -- a nation's own administrator ------------------------------------------------------------------------


def test_a_nations_admin_administers_its_own_namespace(lux_admin: KubeUser) -> None:
    kubectl(lux_admin, "get", "modeldeployments,datasets,tenantpolicies", "-n", "tenant-lux")
    assert (
        kubectl(lux_admin, "auth", "can-i", "create", "modeldeployments", "-n", "tenant-lux").stdout
        == "yes\n"
    )


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        pytest.param(
            ("get", "modeldeployments", "-n", "tenant-nld"),
            'modeldeployments.sovereign.ai is forbidden: User "alice@lux" cannot list resource '
            '"modeldeployments" in API group "sovereign.ai" in the namespace "tenant-nld"',
            id="another-nations-models",
        ),
        pytest.param(
            ("get", "secrets", "-n", "tenant-lux"),
            'secrets is forbidden: User "alice@lux" cannot list resource "secrets" in API group "" '
            'in the namespace "tenant-lux"',
            id="its-own-secrets",
        ),
        pytest.param(
            ("patch", "tenant", "lux", "--type=merge", "-p", '{"spec":{"clearance":"COSMIC TOP SECRET"}}'),
            # kubectl reads the object before it patches: already that is refused
            'tenants.sovereign.ai "lux" is forbidden: User "alice@lux" cannot get resource "tenants" '
            'in API group "sovereign.ai" at the cluster scope',
            id="raise-its-own-clearance",
        ),
        pytest.param(
            ("delete", "namespace", "tenant-nld"),
            'namespaces "tenant-nld" is forbidden: User "alice@lux" cannot delete resource "namespaces" '
            'in API group "" in the namespace "tenant-nld"',
            id="delete-another-nation",
        ),
    ],
)
def test_a_nations_admin_reaches_nothing_else(
    lux_admin: KubeUser, args: tuple[str, ...], refusal: str
) -> None:
    assert _refused(lux_admin, *args) == FORBIDDEN + refusal


def test_a_nations_admin_cannot_grant_itself_more(lux_admin: KubeUser) -> None:
    """Its namespace-admin role grants no RoleBindings at all: it cannot even try to bind cluster-admin."""
    stderr = _refused(
        lux_admin,
        "create",
        "rolebinding",
        "mine",
        "-n",
        "tenant-lux",
        "--clusterrole=cluster-admin",
        "--group=lux-admins",
    )
    assert stderr.endswith(
        'rolebindings.rbac.authorization.k8s.io is forbidden: User "alice@lux" cannot create resource '
        '"rolebindings" in API group "rbac.authorization.k8s.io" in the namespace "tenant-lux"'
    )
    can_i = kubectl(lux_admin, "auth", "can-i", "get", "secrets", "-n", "tenant-lux", check=False)
    assert can_i.stdout == "no\n"


# -- the operator's own credentials (every escalation it could try: test_operator_escalation.py) ----------


def test_the_operators_credentials_read_no_secret(nations: Platform) -> None:
    operator = _as_operator(nations)
    assert _refused(operator, "get", "secrets", "-n", "tenant-lux") == FORBIDDEN + (
        f'secrets is forbidden: User "{OPERATOR}" cannot list resource "secrets" in API group "" '
        'in the namespace "tenant-lux"'
    )


# -- Vault: TLS only, verified ---------------------------------------------------------------------------


def test_vault_answers_no_client_that_does_not_verify_its_certificate(nations: Platform) -> None:
    untrusting = hvac.Client(
        url=nations.vault_url, token=nations.root_token, verify=True
    )  # system trust only
    with pytest.raises(requests.exceptions.SSLError):
        untrusting.sys.read_health_status(method="GET")
    # Plain HTTP on the TLS port: the listener answers only that it wants TLS, never Vault's API.
    plain = requests.get(nations.vault_url.replace("https://", "http://") + "/v1/sys/health", timeout=5)
    assert plain.status_code == 400 and "initialized" not in plain.text
