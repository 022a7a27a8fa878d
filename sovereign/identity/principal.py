"""The policy's Principal for a validated token: who the request speaks for, as `decide` sees it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sovereign.domain.markings import Classification, Principal
from sovereign.identity.tokens import VerifiedPrincipal


def principal_for(verified: VerifiedPrincipal, tenant: Mapping[str, Any]) -> Principal:
    """The Principal of `verified`, whose token was signed by the issuer of `tenant` (the Tenant object).

    Clearance stays capped by the Tenant's clearance (validate_token capped it; capped again here in case the
    Tenant was lowered since), issuerNation is the issuing Tenant's nation, and tenantSuspended is true when
    the Tenant is suspended now or was when the token was validated. ValueError if `tenant` is not the
    issuing Tenant.
    """
    spec = tenant.get("spec") or {}
    if spec.get("nation") != verified.tenant_nation:
        raise ValueError(
            f"the token was signed by {verified.tenant_nation}'s issuer, not by the Tenant of "
            f"{spec.get('nation')!r}"
        )
    clearance = verified.clearance
    try:
        clearance = min(clearance, Classification(spec.get("clearance", "")))
    except ValueError:
        raise ValueError(f"the Tenant of {verified.tenant_nation} has no valid spec.clearance") from None
    return Principal(
        sub=verified.subject,
        nationality=verified.nationality,
        clearance=clearance,
        compartments=sorted(verified.compartments),
        groups=sorted(verified.groups),
        issuer_nation=verified.tenant_nation,
        tenant_suspended=verified.tenant_suspended or bool(spec.get("suspended", False)),
    )
