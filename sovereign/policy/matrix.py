"""The access matrix: for every tenant, every clearance level it may grant and every resource, the decision.

A row's user is the tenant's own (nationality = issuer nation = the tenant's), at one clearance level up to
the tenant's clearance, holding the compartments and groups asked for. Models are decided for `invoke`,
datasets for `read`. Decisions come from the engine, so the matrix shows exactly what the gateway enforces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sovereign.domain.markings import Classification, Principal, Resource, ResourceKind
from sovereign.policy.engine import PolicyEngine

ACTION_FOR_KIND = {ResourceKind.model: "invoke", ResourceKind.dataset: "read"}


@dataclass(frozen=True)
class MatrixTenant:
    """What the matrix needs of a Tenant."""

    nation: str
    clearance: Classification
    suspended: bool = False


@dataclass(frozen=True)
class MatrixCell:
    nation: str
    clearance: Classification
    resource: str
    kind: ResourceKind
    allowed: bool
    deciding_policy_ids: tuple[str, ...]
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "nation": self.nation,
            "clearance": self.clearance.value,
            "resource": self.resource,
            "kind": self.kind.value,
            "allowed": self.allowed,
            "decidingPolicyIds": list(self.deciding_policy_ids),
            "reason": self.reason,
        }


def matrix_principal(
    tenant: MatrixTenant,
    clearance: Classification,
    compartments: Sequence[str] = (),
    groups: Sequence[str] = (),
) -> Principal:
    return Principal(
        sub=f"access-matrix/{tenant.nation.lower()}/{clearance.rank}",
        nationality=tenant.nation,
        clearance=clearance,
        compartments=list(compartments),
        groups=list(groups),
        issuerNation=tenant.nation,
        tenantSuspended=tenant.suspended,
    )


def clearance_levels(tenant: MatrixTenant) -> list[Classification]:
    """The levels a tenant's users can hold: every one up to the tenant's clearance."""
    return [level for level in Classification if level <= tenant.clearance]


def access_matrix(
    engine: PolicyEngine,
    tenants: Sequence[MatrixTenant],
    resources: Sequence[Resource],
    compartments: Sequence[str] = (),
    groups: Sequence[str] = (),
) -> list[MatrixCell]:
    """Cells ordered by tenant, clearance level (lowest first), then resource as given."""
    cells = []
    for tenant in tenants:
        for level in clearance_levels(tenant):
            user = matrix_principal(tenant, level, compartments, groups)
            for resource in resources:
                decision = engine.decide(user, ACTION_FOR_KIND[resource.kind], [resource])
                cells.append(
                    MatrixCell(
                        nation=tenant.nation,
                        clearance=level,
                        resource=resource.name,
                        kind=resource.kind,
                        allowed=decision.allowed,
                        deciding_policy_ids=tuple(decision.deciding_policy_ids),
                        reason="; ".join(decision.reasons),
                    )
                )
    return cells
