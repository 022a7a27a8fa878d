"""A nation that brings its own Vault (Tenant spec.vault): its keys live there and nowhere else.

A second real OpenBao, with TLS from a CA of SVN's own, stands in for the Vault SVN operates. The operator
trusts it through the Tenant's caBundleSecretRef and reaches it with Kubernetes auth (role
`sovereign-operator`, a TokenRequest token of its ServiceAccount), never with a token of the platform.
First the nation's Vault is down (KeysReady False VaultUnreachable); once it is up and prepared with
`prepare_nation_vault`, the Tenant becomes Ready, the nation's serving account uses its key there, and
offboarding shreds the key there. Nothing of SVN is ever written to the platform's Vault.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
from sovereign_devstack.openbao import VAULT_SERVICE, OpenBaoServer, start_openbao
from sovereign_devstack.pki import CertificateAuthority, ensure_ca
from sovereign_devstack.processes import free_loopback_port, stop_service
from sovereign_devstack.token_reviewer import ensure_token_reviewer

from sovereign.clients import vault as vault_client
from sovereign.clients.kubernetes import load_api_client
from sovereign.domain.nations import NATION_VAULT_POLICY
from sovereign.domain.platform_names import OPERATOR_SERVICE_ACCOUNT
from sovereign.platform_setup import KV_MOUNT, TRANSIT_MOUNT, prepare_nation_vault
from tests.helpers import kubectl, wait_until
from tests.operator.harness import STARTED_LOG, OperatorProcess, Platform
from tests.operator.tenants import apply_tenant, condition, delete_tenant, get_json, tenant, wait_ready

NATION, NAME, NS, KEY = "SVN", "slovenia", "tenant-svn", "tenant-svn"
ISSUER_KEY = "tenant-svn-issuer"
CA_SECRET = {"name": "svn-vault-ca", "namespace": "sovereign-system", "key": "ca.crt"}
CA_READER = "read-svn-vault-ca"


def _operator_service_account(platform: Platform) -> None:
    """The operator's ServiceAccount, which a Helm install creates; TokenRequest needs it to exist."""
    namespace, name = OPERATOR_SERVICE_ACCOUNT.split("/")
    manifest = (
        f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n---\n"
        f"apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
    )
    kubectl(platform.kube, "apply", "-f", "-", input=manifest)


def _ca_bundle_secret(platform: Platform, ca_pem: str) -> None:
    """The nation's CA in a Secret, and `get` on that Secret for the operator (chart: clusterrole.yaml)."""
    namespace, name = OPERATOR_SERVICE_ACCOUNT.split("/")
    kubectl(
        platform.kube,
        "create",
        "secret",
        "generic",
        CA_SECRET["name"],
        "-n",
        CA_SECRET["namespace"],
        f"--from-literal={CA_SECRET['key']}={ca_pem}",
    )
    kubectl(
        platform.kube,
        "create",
        "role",
        CA_READER,
        "-n",
        CA_SECRET["namespace"],
        "--verb=get",
        "--resource=secrets",
        f"--resource-name={CA_SECRET['name']}",
    )
    kubectl(
        platform.kube,
        "create",
        "rolebinding",
        CA_READER,
        "-n",
        CA_SECRET["namespace"],
        f"--role={CA_READER}",
        f"--serviceaccount={namespace}:{name}",
    )


@pytest.fixture
def nation_vault(platform: Platform, tmp_path: Path) -> Iterator[tuple[OpenBaoServer, CertificateAuthority]]:
    """Where the nation's OpenBao will listen (TLS from SVN's own CA), and that CA; the test starts it.
    Stopped, and its CA Secret and the operator's Role on it deleted, at the end."""
    ca = ensure_ca(tmp_path / "svn-pki")
    server = OpenBaoServer(tmp_path / "nation-vault" / "vault", free_loopback_port(), ca.certificate)
    try:
        yield server, ca
    finally:
        stop_service(tmp_path / "nation-vault", VAULT_SERVICE)
        for kind, name in (("secret", CA_SECRET["name"]), ("role", CA_READER), ("rolebinding", CA_READER)):
            kubectl(platform.kube, "delete", kind, name, "-n", CA_SECRET["namespace"], "--ignore-not-found")


def _nothing_of_the_nation_in(client: hvac.Client) -> list[str]:
    found = []
    for key in (KEY, ISSUER_KEY):
        if vault_client.read_transit_key(client, TRANSIT_MOUNT, key) is not None:
            found.append(f"transit key {key}")
    if vault_client.read_acl_policy(client, KEY) is not None:
        found.append(f"policy {KEY}")
    if vault_client.read_kubernetes_role(client, "kubernetes", KEY) is not None:
        found.append(f"role {KEY}")
    found += vault_client.list_kv_paths(client, KV_MOUNT, f"tenants/{NS}")
    return found


def test_nation_keys_live_only_in_the_nations_own_vault(
    platform: Platform,
    start_operator: object,
    nation_vault: tuple[OpenBaoServer, CertificateAuthority],
    tmp_path: Path,
) -> None:
    _operator_service_account(platform)
    # The operator logs in with its ServiceAccount's token file, as with a projected token in a pod (the
    # chart grants it no TokenRequest on itself).
    operator: OperatorProcess = start_operator()  # type: ignore[operator]
    operator.wait_for_log(STARTED_LOG, timeout=30)
    server, nation_ca = nation_vault
    nation_url = server.url
    _ca_bundle_secret(platform, nation_ca.pem())

    # The nation's Vault is not up yet: the Tenant says so and the operator keeps retrying.
    apply_tenant(platform.kube, NAME, NATION, vault={"address": nation_url, "caBundleSecretRef": CA_SECRET})
    try:

        def unreachable() -> dict[str, str] | None:
            keys = condition(tenant(platform.kube, NAME), "KeysReady")
            return keys if keys.get("reason") == "VaultUnreachable" else None

        keys = wait_until(unreachable, "KeysReady False VaultUnreachable", timeout=20)
        assert keys["status"] == "False" and nation_url in keys["message"]

        # The nation's Vault admin starts and prepares THEIR Vault; the operator logs in on its next pass.
        keys = start_openbao(tmp_path / "nation-vault", server, nation_ca)
        nation_root = hvac.Client(url=nation_url, token=keys.root_token, verify=str(nation_ca.certificate))
        prepare_nation_vault(
            nation_root,
            platform.kube.url,
            [platform.kube.service_account_certificate.read_text()],
            OPERATOR_SERVICE_ACCOUNT,
            kubernetes_ca_cert=platform.kube.ca_cert.read_text(),
            token_reviewer_jwt=ensure_token_reviewer(load_api_client(str(platform.kube.kubeconfig))),
        )
        body = wait_ready(platform.kube, NAME, timeout=30)
        assert body["status"]["keyVersion"] == 1 and body["status"]["identity"]["source"] == "dev"

        # Key, role and KV records are in the nation's Vault, the role giving the policy its admin wrote ...
        key = vault_client.read_transit_key(nation_root, TRANSIT_MOUNT, KEY)
        assert key is not None and key["type"] == "aes256-gcm96" and key["deletion_allowed"] is False
        assert vault_client.read_acl_policy(nation_root, NATION_VAULT_POLICY) is not None
        role = vault_client.read_kubernetes_role(nation_root, "kubernetes", KEY)
        assert role is not None and role["bound_service_account_namespaces"] == [NS]
        assert role["token_policies"] == [NATION_VAULT_POLICY]
        assert vault_client.list_kv_paths(nation_root, KV_MOUNT, f"tenants/{NS}") == [f"tenants/{NS}/tenant"]
        issuer = vault_client.read_transit_key(nation_root, TRANSIT_MOUNT, ISSUER_KEY)
        assert issuer is not None and issuer["type"] == "ed25519" and issuer["exportable"] is False
        # ... and nothing of the nation is in the platform's Vault.
        assert _nothing_of_the_nation_in(platform.root_vault()) == []

        # The nation's serving account logs in to the nation's Vault and uses its key there.
        token = kubectl(platform.kube, "create", "token", "model-serving", "-n", NS).stdout.strip()
        serving = hvac.Client(url=nation_url, verify=str(nation_ca.certificate))
        serving.auth.kubernetes.login(role=KEY, jwt=token)
        plaintext = base64.b64encode(b"svn classified").decode()
        sealed = serving.secrets.transit.encrypt_data(KEY, plaintext)["data"]["ciphertext"]
        assert serving.secrets.transit.decrypt_data(KEY, sealed)["data"]["plaintext"] == plaintext
        # ... and signs with its issuer key there, whose public key the operator published.
        signed = serving.secrets.transit.sign_data(ISSUER_KEY, hash_input=plaintext)["data"]["signature"]
        assert signed.startswith("vault:v1:")
        # The platform's Vault has no such role (Vault answers 400 "invalid role name").
        with pytest.raises((hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden)):
            platform.vault().auth.kubernetes.login(role=KEY, jwt=token)
        assert "logged in to Vault at" in operator.log_text()
    finally:
        delete_tenant(platform.kube, NAME, timeout=30)

    # Offboarding shredded the key in the nation's Vault and left nothing of the nation there.
    assert _nothing_of_the_nation_in(nation_root) == []
    with pytest.raises((hvac.exceptions.InvalidPath, hvac.exceptions.InvalidRequest)):
        nation_root.secrets.transit.decrypt_data(KEY, sealed)
    assert _nothing_of_the_nation_in(platform.root_vault()) == []
    assert get_json(platform.kube, "namespace", NS) is None
