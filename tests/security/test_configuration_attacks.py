"""A Tenant claiming another nation's token issuer, tried with kubectl as a platform engineer would.

A gateway trusts every Tenant's issuer; two Tenants naming one issuer is a configuration it refuses as a
whole, and then it serves nothing (503 `config_refused`, tests/serving/gateway/test_gateway_on_ray.py). So
such a Tenant must never reach a gateway's configuration:
- admitted anyway (here before the webhook is registered, as when it is down or two Tenants are created at
  once), the operator keeps the older Tenant: the newer one is Ready=False `IssuerConflict` naming the
  other, is left out of every gateway's configuration (tests/operator/test_tenant_validation.py), and LUX
  stays Ready; the same for an existing Tenant whose issuer is changed to LUX's;
- with the validating webhook, `kubectl apply` is refused naming the field and the other Tenant.
The first test runs before the module's webhook is registered (pytest keeps the file's order).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sovereign_devstack.operator_identity import WEBHOOK_CONFIGURATION

from tests.helpers import kubectl, wait_until
from tests.operator.admission import DENIED
from tests.operator.harness import Platform
from tests.operator.tenants import apply_tenant, condition, delete_tenant, tenant, tenant_manifest, wait_ready

LUX_ISSUER = "https://identity.sovereign.local/lux"  # LUX's dev issuer, published in its status
NLD_ADMINS = [{"kind": "Group", "name": "nld-admins"}]  # as the package fixture applies NLD


def claiming_lux(audience: str = "sovereign-lux") -> dict[str, Any]:
    return {"issuer": LUX_ISSUER, "audience": audience, "jwksUri": "https://keys.example.invalid/jwks"}


def ready_reason(kube: Any, name: str) -> tuple[str, str, str] | None:
    found = condition(tenant(kube, name), "Ready")
    return (found["status"], found["reason"], found["message"]) if found else None


@pytest.fixture
def twin(nations: Platform) -> Iterator[str]:
    yield "bel"
    delete_tenant(nations.kube, "bel")


def test_a_tenant_admitted_with_another_nations_issuer_is_kept_out(nations: Platform, twin: str) -> None:
    kube = nations.kube
    registered = kubectl(kube, "get", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION, check=False)
    assert registered.returncode != 0, "this attack needs the webhook not yet registered"
    assert tenant(kube, "lux")["status"]["identity"]["issuer"] == LUX_ISSUER

    apply_tenant(kube, twin, "BEL", identity=claiming_lux())  # a new Tenant with LUX's issuer
    status, reason, message = wait_until(
        lambda: (found := ready_reason(kube, twin)) and found[1] == "IssuerConflict" and found,
        "the twin Ready=False IssuerConflict",
    )
    assert status == "False" and "Tenant lux" in message and LUX_ISSUER in message
    assert ready_reason(kube, "lux")[:2] == ("True", "Provisioned")  # type: ignore[index]

    # An existing, newer Tenant changed to LUX's issuer: left out too, LUX keeps its issuer.
    apply_tenant(kube, "nld", "NLD", admins=NLD_ADMINS, identity=claiming_lux("sovereign-nld"))
    try:
        wait_until(
            lambda: (found := ready_reason(kube, "nld")) and found[1] == "IssuerConflict",
            "NLD Ready=False IssuerConflict",
        )
        assert ready_reason(kube, "lux")[:2] == ("True", "Provisioned")  # type: ignore[index]
    finally:
        apply_tenant(kube, "nld", "NLD", admins=NLD_ADMINS)  # its own dev issuer again
        wait_ready(kube, "nld")


def test_a_tenant_claiming_another_nations_issuer_is_refused_at_admission(
    nations: Platform,
    admission_webhook: None,
) -> None:
    kube = nations.kube
    refused = kubectl(
        kube, "apply", "-f", "-", input=tenant_manifest("bel", "BEL", identity=claiming_lux()), check=False
    )
    assert refused.returncode != 0
    assert (
        DENIED + f"spec.identity.issuer: '{LUX_ISSUER}' is already the token issuer of Tenant 'lux' (LUX)"
    ) in refused.stderr
    assert kubectl(kube, "get", "tenant", "bel", check=False).returncode != 0  # nothing was made

    changed = tenant_manifest("nld", "NLD", admins=NLD_ADMINS, identity=claiming_lux("sovereign-nld"))
    refused = kubectl(kube, "apply", "-f", "-", input=changed, check=False)
    assert refused.returncode != 0 and "spec.identity.issuer" in refused.stderr and "'lux'" in refused.stderr
    assert "identity" not in tenant(kube, "nld")["spec"]
