"""One access question answered as the gateway will: this token, this model (and datasets) → the Decision.

The token is validated against the issuers of the cluster's Tenants, its principal built from the issuing
Tenant, the resources resolved from the catalogue, and `PolicyEngine(bundle).decide(principal, "invoke", …)`
decides. A name the catalogue does not hold is denied as "unknown resource", whether it does not exist or
was left out of the catalogue: the answer never tells the two apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sovereign.catalogue import BASE_ONLY_NOTE, Catalogue
from sovereign.domain.markings import Principal, Resource, ResourceKind
from sovereign.identity.principal import principal_for
from sovereign.identity.tokens import (
    IssuerUnavailable,
    TrustedIssuer,
    issuers_by_url,
    trusted_issuer_from_tenant,
    validate_token,
)
from sovereign.policy.engine import Decision, PolicyEngine, deny

ACTION = "invoke"


@dataclass(frozen=True)
class CheckResult:
    principal: Principal
    clearance_capped: bool
    model: str
    datasets: tuple[str, ...]
    decision: Decision
    bundle_version: str
    bundle_published: bool

    def as_dict(self) -> dict[str, Any]:
        """Everything but the token, which is never part of the result."""
        return {
            "allowed": self.decision.allowed,
            "action": ACTION,
            "model": self.model,
            "datasets": list(self.datasets),
            "principal": self.principal.model_dump(mode="json", by_alias=True),
            "clearanceCapped": self.clearance_capped,
            **self.decision.as_dict(),
            "bundleVersion": self.bundle_version,
            "bundlePublished": self.bundle_published,
            "note": None if self.bundle_published else BASE_ONLY_NOTE,
        }


def trusted_issuers(tenants: Sequence[dict[str, Any]]) -> dict[str, TrustedIssuer]:
    """The issuers of every Tenant that describes one (others cannot vouch for anybody yet)."""
    found = []
    for tenant in tenants:
        try:
            found.append(trusted_issuer_from_tenant(tenant))
        except IssuerUnavailable:
            continue
    return issuers_by_url(found)  # ValueError if two Tenants name one issuer


def check_access(
    catalogue: Catalogue, token: str, model: str, datasets: Sequence[str] = (), now: float | None = None
) -> CheckResult:
    """The decision for the token's user invoking `model` with `datasets`; TokenRejected if the token is."""
    verified = validate_token(token, trusted_issuers(catalogue.tenants), now=now)
    tenant = catalogue.tenant_for(verified.tenant_nation)
    if tenant is None:  # validated by its issuer moments ago; the Tenant went away since
        raise ValueError(f"the Tenant of {verified.tenant_nation} is gone")
    principal = principal_for(verified, tenant)
    wanted = [(ResourceKind.model, model), *((ResourceKind.dataset, name) for name in datasets)]
    resolved: list[Resource] = []
    decision: Decision | None = None
    for kind, name in wanted:
        resource = catalogue.resource(kind, name)
        if resource is None:
            decision = deny(f"unknown resource {name!r}")
            break
        resolved.append(resource)
    if decision is None:
        engine = PolicyEngine(catalogue.bundle, {r.name: r for r in resolved})
        decision = engine.decide(principal, ACTION, resolved)
    return CheckResult(
        principal=principal,
        clearance_capped=verified.clearance_capped or principal.clearance != verified.clearance,
        model=model,
        datasets=tuple(datasets),
        decision=decision,
        bundle_version=catalogue.bundle.version,
        bundle_published=catalogue.bundle_published,
    )
