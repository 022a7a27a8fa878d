"""What a TenantPolicy would change on the cluster as it is now, and whether the result keeps the invariants:
`sovereign policy diff -f` and the admission webhook both ask this.

The catalogue (Tenants, models, datasets, the published bundle) and the live TenantPolicies of the policy's
namespace are read from the cluster; `sovereign.policy.diff` compares the bundle with and without this
version of the policy, on every principal class, and `sovereign.policy.verify` proves the bundle after it on
every cell the nation's rules can change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sovereign.catalogue import Catalogue, load_catalogue, matrix_tenants
from sovereign.clients.kubernetes import list_sovereign_objects
from sovereign.domain.markings import Resource
from sovereign.domain.nations import nation_of_namespace
from sovereign.domain.platform_names import PLATFORM_NAMESPACE
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.diff import PolicyDiff, live_tenant_policies, policy_diff, tenant_policy_change
from sovereign.policy.matrix import MatrixTenant
from sovereign.policy.verify import Verification, verify_bundle

NOT_IN_TENANT_NAMESPACE = "a TenantPolicy must be in a tenant namespace (tenant-<nation> of a Tenant)"


class NotInTenantNamespace(ValueError):
    """The namespace belongs to no Tenant: the policy would join no nation's rules."""


@dataclass(frozen=True)
class TenantPolicyChange:
    """The bundle before and after one TenantPolicy of `nation` holds new rules, on the catalogue's users
    and resources."""

    nation: str
    tenants: Sequence[MatrixTenant]
    resources: Sequence[Resource]
    before: PolicyBundle
    after: PolicyBundle

    def diff(self, *, deadline: float | None = None) -> PolicyDiff:
        """Cells gained and lost (Unanalysable, DiffTooSlow past `deadline`)."""
        return policy_diff(
            self.before, self.after, self.tenants, self.resources, self.nation, deadline=deadline
        )

    def verify(self) -> Verification:
        """The invariants of the bundle after the change, on every cell the nation's rules can change."""
        return verify_bundle(self.after, self.tenants, self.resources, nation=self.nation)


def tenant_policy_change_on(
    catalogue: Catalogue,
    tenant_policies: Iterable[Mapping[str, Any]],
    namespace: str,
    name: str,
    cedar: str,
) -> TenantPolicyChange:
    """TenantPolicy `namespace/name` holding `cedar`, given the live TenantPolicies (pure).

    NotInTenantNamespace, or RulesRefused when the rules fail the checks every nation's rules pass.
    """
    nation = nation_of_namespace(namespace)
    if nation is None or catalogue.tenant_for(nation) is None:
        raise NotInTenantNamespace(f"{NOT_IN_TENANT_NAMESPACE}; {namespace} belongs to no Tenant")
    tenants, _ = matrix_tenants(catalogue.tenants)
    live = live_tenant_policies(tenant_policies, namespace)
    before, after = tenant_policy_change(catalogue.bundle, nation, live, name, cedar)
    return TenantPolicyChange(nation, tenants, list(catalogue.resources.values()), before, after)


def load_tenant_policy_change(
    api: Any,
    namespace: str,
    name: str,
    cedar: str,
    *,
    platform_namespace: str = PLATFORM_NAMESPACE,
) -> tuple[TenantPolicyChange, Catalogue]:
    """`tenant_policy_change_on` what the cluster holds now (the catalogue, for its warnings, too)."""
    catalogue = load_catalogue(api, platform_namespace)
    policies = list_sovereign_objects(api, "tenantpolicies")
    return tenant_policy_change_on(catalogue, policies, namespace, name, cedar), catalogue
