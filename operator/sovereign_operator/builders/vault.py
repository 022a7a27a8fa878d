"""What a nation gets in Vault from the operator: the Kubernetes auth role that gives the nation's serving
ServiceAccount the one templated policy every nation shares.

The policy itself (policies/vault/sovereign-nation.hcl) is written at platform setup, never by the operator;
the operator's own policy pins every parameter of the role it may write (sovereign-operator.hcl), and this
builder makes exactly that role. It goes to Vault through hvac in the handlers; here it is only built.
Vault docs: /vault/api-docs/auth/kubernetes#create-role
"""

from __future__ import annotations

from dataclasses import dataclass

from sovereign.domain.nations import (
    NATION_VAULT_POLICY,
    SERVING_SERVICE_ACCOUNT,
    tenant_namespace,
    vault_role_name,
)
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.constants import (
    DEFAULT_KUBERNETES_AUTH_MOUNT,
    DEFAULT_KV_MOUNT,
    DEFAULT_TRANSIT_MOUNT,
    VAULT_ROLE_TOKEN_TTL,
)


@dataclass(frozen=True)
class VaultMounts:
    """Where a nation's engines are mounted: its own Vault's (bring-your-own) or the platform's."""

    transit: str
    kv: str
    auth: str


@dataclass(frozen=True)
class KubernetesAuthRole:
    """A Kubernetes auth role: where it goes and its body, as Vault names the fields, every list a comma
    string (Vault compares request values with the operator policy's allowed values; a JSON list never
    equals a string)."""

    mount: str
    name: str
    body: dict[str, str]


def vault_mounts_for_tenant(spec: TenantSpec) -> VaultMounts:
    if spec.vault is None:
        return VaultMounts(
            transit=DEFAULT_TRANSIT_MOUNT, kv=DEFAULT_KV_MOUNT, auth=DEFAULT_KUBERNETES_AUTH_MOUNT
        )
    return VaultMounts(transit=spec.vault.transit_mount, kv=spec.vault.kv_mount, auth=spec.vault.auth_mount)


def build_vault_role_for_tenant(spec: TenantSpec) -> KubernetesAuthRole:
    """The nation's role: its serving ServiceAccount, in its namespace, gets sovereign-nation for an hour.
    Exactly the parameters the operator's policy allows, and no other.

    `audience` is left out: Vault then accepts the ServiceAccount token's default audience. Pinning it
    (Vault docs: /vault/api-docs/auth/kubernetes#audience) is a team decision, pending.
    """
    return KubernetesAuthRole(
        mount=vault_mounts_for_tenant(spec).auth,
        name=vault_role_name(spec.nation),
        body={
            "bound_service_account_names": SERVING_SERVICE_ACCOUNT,
            "bound_service_account_namespaces": tenant_namespace(spec.nation),
            "token_policies": NATION_VAULT_POLICY,
            "token_ttl": VAULT_ROLE_TOKEN_TTL,
        },
    )
