"""principal_for: the policy's Principal for a validated token and the Tenant whose issuer signed it."""

from __future__ import annotations

from typing import Any

import pytest

from sovereign.domain.markings import Classification, Principal
from sovereign.identity.principal import principal_for
from sovereign.identity.tokens import VerifiedPrincipal

VERIFIED = VerifiedPrincipal(
    subject="alice",
    nationality="FRA",
    clearance=Classification.NATO_SECRET,
    compartments=frozenset({"ATOMAL"}),
    groups=frozenset({"analysts", "liaison"}),
    issuer="https://id.fra.example",
    tenant_nation="FRA",
)


def tenant(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "fra"}, "spec": {"nation": "FRA", "clearance": "NATO SECRET", **spec}}


def test_principal_of_a_verified_token() -> None:
    assert principal_for(VERIFIED, tenant()) == Principal(
        sub="alice",
        nationality="FRA",
        clearance=Classification.NATO_SECRET,
        compartments=["ATOMAL"],
        groups=["analysts", "liaison"],
        issuerNation="FRA",
        tenantSuspended=False,
    )


def test_suspended_tenant_is_carried() -> None:
    assert principal_for(VERIFIED, tenant(suspended=True)).tenant_suspended


def test_clearance_stays_capped_by_a_lowered_tenant() -> None:
    lowered = principal_for(VERIFIED, tenant(clearance="NATO RESTRICTED"))
    assert lowered.clearance is Classification.NATO_RESTRICTED


@pytest.mark.parametrize(
    "body",
    [
        {"spec": {"nation": "DEU", "clearance": "NATO SECRET"}},
        {"spec": {"nation": "FRA", "clearance": "TOP"}},
        {"spec": {}},
    ],
)
def test_not_the_issuing_tenant_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        principal_for(VERIFIED, body)
