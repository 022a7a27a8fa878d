"""What the platform needs in a cluster and a Vault before the operator runs: its CRDs, engines and auth.

Idempotent, and the same against a real cluster and Vault as against the devstack.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import hvac
from kubernetes.client import ApiClient

from sovereign.clients.kubernetes import apply_object, wait_for_crd_established
from sovereign.clients.vault import configure_kubernetes_auth, ensure_auth_method, ensure_secrets_engine
from sovereign.specs import CUSTOM_RESOURCES
from sovereign.specs.crd_yaml import build_crd

TRANSIT_MOUNT = "transit"
KV_MOUNT = "secret"
KUBERNETES_AUTH_MOUNT = "kubernetes"
# The operator's Vault policy: its name is sovereign_operator.constants.OPERATOR_VAULT_POLICY (this shared
# package does not import the operator; a test keeps the two equal).
OPERATOR_POLICY_NAME = "sovereign-operator"
OPERATOR_POLICY_PATH = Path(__file__).resolve().parents[1] / "policies" / "vault" / "sovereign-operator.hcl"

Progress = Callable[[str], None]


def install_crds(api: ApiClient, progress: Progress = lambda _: None) -> list[str]:
    names = []
    for info in CUSTOM_RESOURCES:
        apply_object(api, build_crd(info))
        wait_for_crd_established(api, info.name)
        progress(f"CRD {info.name} established")
        names.append(info.name)
    return names


def prepare_vault(
    client: hvac.Client,
    kubernetes_host: str,
    pem_keys: list[str] | None = None,
    progress: Progress = lambda _: None,
) -> None:
    """Mount transit and KV v2, enable Kubernetes auth and point it at the cluster."""
    ensure_secrets_engine(client, TRANSIT_MOUNT, "transit")
    ensure_secrets_engine(client, KV_MOUNT, "kv", options={"version": "2"})
    ensure_auth_method(client, KUBERNETES_AUTH_MOUNT, "kubernetes")
    configure_kubernetes_auth(client, KUBERNETES_AUTH_MOUNT, kubernetes_host, pem_keys)
    progress(f"Vault: {TRANSIT_MOUNT}/ (transit), {KV_MOUNT}/ (kv v2), auth/{KUBERNETES_AUTH_MOUNT}/ ready")


def install_operator_vault_policy(client: hvac.Client, policy_path: Path = OPERATOR_POLICY_PATH) -> None:
    """Write the operator's ACL policy; idempotent (create-or-update).

    Vault docs: /vault/api-docs/system/policies#create-update-acl-policy
    """
    client.sys.create_or_update_acl_policy(name=OPERATOR_POLICY_NAME, policy=policy_path.read_text())


def create_operator_token(client: hvac.Client, ttl: str = "768h") -> str:
    """A token for the operator carrying its policy and `default` only: no other policy may ride along,
    since a more specific grant in another policy would outrank the operator policy's transit denies
    (Vault docs: /vault/docs/concepts/policies#priority-matching). A child of `client`'s token: revoking
    that token revokes this one too (Vault docs: /vault/docs/concepts/tokens#token-hierarchies).
    """
    response = client.auth.token.create(
        policies=[OPERATOR_POLICY_NAME], ttl=ttl, display_name=OPERATOR_POLICY_NAME, renewable=True
    )
    return str(response["auth"]["client_token"])
