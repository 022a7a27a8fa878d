"""Pure builders: a Tenant's spec (or the TenantPolicies) in, the objects the operator applies out; no I/O."""

from sovereign_operator.builders.namespace import build_namespace_for_tenant
from sovereign_operator.builders.network_policy import build_network_policy_for_tenant
from sovereign_operator.builders.policy_bundle import (
    build_bundle_configmap,
    build_policy_bundle,
    build_tenant_policy_status,
)
from sovereign_operator.builders.quotas import build_limit_range_for_tenant, build_resource_quota_for_tenant
from sovereign_operator.builders.rbac import (
    build_admin_role_binding_for_tenant,
    build_serving_service_account_for_tenant,
)
from sovereign_operator.builders.vault import (
    KubernetesAuthRole,
    VaultMounts,
    build_vault_role_for_tenant,
    vault_mounts_for_tenant,
)

__all__ = [
    "KubernetesAuthRole",
    "VaultMounts",
    "build_admin_role_binding_for_tenant",
    "build_bundle_configmap",
    "build_limit_range_for_tenant",
    "build_namespace_for_tenant",
    "build_network_policy_for_tenant",
    "build_policy_bundle",
    "build_resource_quota_for_tenant",
    "build_serving_service_account_for_tenant",
    "build_tenant_policy_status",
    "build_vault_role_for_tenant",
    "vault_mounts_for_tenant",
]
