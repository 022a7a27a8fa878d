"""What the platform needs in a cluster and a Vault before the operator runs: its CRDs, engines and auth.

Idempotent, and the same against a real cluster and Vault as against the devstack.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import hvac
from kubernetes.client import ApiClient

from sovereign.clients.kubernetes import apply_object, wait_for_crd_established
from sovereign.clients.vault import (
    configure_kubernetes_auth,
    create_kubernetes_role,
    ensure_auth_method,
    ensure_secrets_engine,
)
from sovereign.specs import CUSTOM_RESOURCES
from sovereign.specs.crd_yaml import build_crd

TRANSIT_MOUNT = "transit"
KV_MOUNT = "secret"
KUBERNETES_AUTH_MOUNT = "kubernetes"
# The operator's Vault policy: its name is sovereign_operator.constants.OPERATOR_VAULT_POLICY (this shared
# package does not import the operator; a test keeps the two equal).
OPERATOR_POLICY_NAME = "sovereign-operator"
# The Kubernetes auth role the operator logs in with at a nation's own Vault (the operator's constant
# NATION_VAULT_OPERATOR_ROLE; a test keeps the two equal), and the operator's ServiceAccount it is bound to.
OPERATOR_KUBERNETES_ROLE = "sovereign-operator"
OPERATOR_SERVICE_ACCOUNT = "sovereign-system/sovereign-operator"
OPERATOR_ROLE_TOKEN_TTL = "1h"
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
    *,
    kubernetes_ca_cert: str | None = None,
    token_reviewer_jwt: str | None = None,
) -> None:
    """Mount transit and KV v2, enable Kubernetes auth and point it at the cluster.

    `kubernetes_ca_cert` (PEM) is how Vault verifies the API server; `token_reviewer_jwt` the token of a
    ServiceAccount bound to `system:auth-delegator` Vault calls TokenReview with (see
    sovereign.clients.vault.configure_kubernetes_auth).
    """
    ensure_secrets_engine(client, TRANSIT_MOUNT, "transit")
    ensure_secrets_engine(client, KV_MOUNT, "kv", options={"version": "2"})
    ensure_auth_method(client, KUBERNETES_AUTH_MOUNT, "kubernetes")
    configure_kubernetes_auth(
        client, KUBERNETES_AUTH_MOUNT, kubernetes_host, pem_keys, kubernetes_ca_cert, token_reviewer_jwt
    )
    progress(f"Vault: {TRANSIT_MOUNT}/ (transit), {KV_MOUNT}/ (kv v2), auth/{KUBERNETES_AUTH_MOUNT}/ ready")


def prepare_nation_vault(
    client: hvac.Client,
    kubernetes_host: str,
    pem_keys: list[str] | None = None,
    operator_service_account: str = OPERATOR_SERVICE_ACCOUNT,
    progress: Progress = lambda _: None,
    *,
    kubernetes_ca_cert: str | None = None,
    token_reviewer_jwt: str | None = None,
) -> None:
    """Run by a nation's Vault admin on THEIR Vault (a Tenant's spec.vault) before the Tenant is applied.

    The same mounts as the platform's Vault (transit, KV v2 at secret/, Kubernetes auth at kubernetes/,
    pointed at the platform's cluster), the operator's ACL policy, and the Kubernetes auth role
    OPERATOR_KUBERNETES_ROLE bound to the operator's ServiceAccount (`namespace/name`), so the operator logs
    in with its ServiceAccount token and gets that policy only. The policy names the default mount paths, so
    the Tenant keeps spec.vault's default mounts. Idempotent.
    Vault docs: /vault/docs/auth/kubernetes#configuration and /vault/api-docs/auth/kubernetes#create-role
    """
    namespace, name = operator_service_account.split("/", 1)
    prepare_vault(
        client,
        kubernetes_host,
        pem_keys,
        progress,
        kubernetes_ca_cert=kubernetes_ca_cert,
        token_reviewer_jwt=token_reviewer_jwt,
    )
    install_operator_vault_policy(client)
    create_kubernetes_role(
        client,
        KUBERNETES_AUTH_MOUNT,
        OPERATOR_KUBERNETES_ROLE,
        service_account_names=[name],
        namespaces=[namespace],
        policies=[OPERATOR_POLICY_NAME],
        ttl=OPERATOR_ROLE_TOKEN_TTL,
    )
    progress(f"Vault: operator policy and role {OPERATOR_KUBERNETES_ROLE} for {operator_service_account}")


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
