"""Crash safety: the operator dies at a failpoint (exit 137, as if SIGKILLed there) and, restarted without
it, converges: the Tenant Ready (or fully offboarded) and nothing orphaned in Vault or the API.

Orphans are found by enumeration, not by name lookups: LIST transit/keys, the Kubernetes auth roles, KV
metadata under tenants/, and the namespaces (the nations share one ACL policy, written at platform setup).
Whatever appeared during a test must be exactly the nation's own set; after offboarding nothing named after
the nation may remain.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sovereign_operator.constants import SHRED_RECORDS_CONFIGMAP
from sovereign_operator.failpoints import CRASH_EXIT_CODE

from sovereign.domain.platform_names import PLATFORM_NAMESPACE
from tests.helpers import kubectl, wait_until
from tests.operator.harness import OperatorProcess, Platform
from tests.operator.tenant_inventory import inventory, is_offboarded, is_ready, nation_artifacts, read_tenant

CONVERGE_SECONDS = 45


def tenant_yaml(nation: str) -> str:
    return (
        f"apiVersion: sovereign.ai/v1alpha1\nkind: Tenant\nmetadata: {{name: {nation.lower()}}}\n"
        f"spec: {{nation: {nation}, displayName: Crash test {nation}, clearance: NATO RESTRICTED}}\n"
    )


def _shred_records(platform: Platform) -> dict[str, dict[str, Any]]:
    where = ("configmap", SHRED_RECORDS_CONFIGMAP, "-n", PLATFORM_NAMESPACE, "-o", "json")
    result = kubectl(platform.kube, "get", *where, check=False)
    data = (json.loads(result.stdout).get("data") or {}) if result.returncode == 0 else {}
    return {key: json.loads(value) for key, value in data.items()}


def _crash_at(start_operator: Any, failpoint: str) -> OperatorProcess:
    return start_operator(SOVEREIGN_FAILPOINTS=failpoint)


def _assert_crashed(process: OperatorProcess, failpoint: str) -> None:
    assert process.wait_exit(timeout=CONVERGE_SECONDS) == CRASH_EXIT_CODE, process.log_text()[-3000:]
    assert f"failpoint {failpoint}: exiting" in process.log_text()


@pytest.fixture
def before(platform: Platform) -> Iterator[set[str]]:
    yield inventory(platform)


# One failpoint of each pass in `make test`; every one in `make faults` (marker `faults`), for their time.
PROVISIONING = {
    "after namespace": pytest.param("provision:after-namespace", "FJI", marks=pytest.mark.faults),
    "after transit key": ("provision:after-transit-key", "TON"),
    "after vault role": pytest.param("provision:after-vault-role", "VUT", marks=pytest.mark.faults),
    "before status": pytest.param("provision:before-status", "PLW", marks=pytest.mark.faults),
}


@pytest.mark.parametrize(("failpoint", "nation"), PROVISIONING.values(), ids=PROVISIONING.keys())
def test_provisioning_converges_after_a_crash(
    platform: Platform, start_operator: Any, before: set[str], failpoint: str, nation: str
) -> None:
    crashing = _crash_at(start_operator, failpoint)
    kubectl(platform.kube, "apply", "-f", "-", input=tenant_yaml(nation))
    _assert_crashed(crashing, failpoint)

    start_operator()
    wait_until(lambda: is_ready(platform, nation), f"{nation} Ready after restart", timeout=CONVERGE_SECONDS)
    appeared = inventory(platform) - before
    assert appeared == nation_artifacts(nation)  # all of the nation's, and nothing else

    kubectl(platform.kube, "delete", "tenant", nation.lower(), "--wait=false")
    wait_until(lambda: is_offboarded(platform, nation), f"{nation} offboarded", timeout=CONVERGE_SECONDS)


OFFBOARDING = {
    "after deployments removed": pytest.param(
        "offboard:after-deployments-removed", "KIR", marks=pytest.mark.faults
    ),
    "after key shredded": ("offboard:after-key-shredded", "TUV"),
    "after vault role deleted": pytest.param(
        "offboard:after-vault-role-deleted", "NRU", marks=pytest.mark.faults
    ),
    "after namespace deleted": pytest.param(
        "offboard:after-namespace-deleted", "FSM", marks=pytest.mark.faults
    ),
    "before finalizer removed": pytest.param(
        "offboard:before-finalizer-removed", "MHL", marks=pytest.mark.faults
    ),
}


@pytest.mark.parametrize(("failpoint", "nation"), OFFBOARDING.values(), ids=OFFBOARDING.keys())
def test_offboarding_completes_after_a_crash(
    platform: Platform, start_operator: Any, before: set[str], failpoint: str, nation: str
) -> None:
    crashing = _crash_at(start_operator, failpoint)  # provisioning passes no armed point
    kubectl(platform.kube, "apply", "-f", "-", input=tenant_yaml(nation))
    wait_until(lambda: is_ready(platform, nation), f"{nation} Ready", timeout=CONVERGE_SECONDS)
    uid = (read_tenant(platform, nation) or {})["metadata"]["uid"]

    kubectl(platform.kube, "delete", "tenant", nation.lower(), "--wait=false")
    _assert_crashed(crashing, failpoint)
    assert read_tenant(platform, nation) is not None  # the finalizer holds it until offboarding is done

    start_operator()
    wait_until(lambda: is_offboarded(platform, nation), f"{nation} offboarded", timeout=CONVERGE_SECONDS)
    assert not (inventory(platform) - before)  # nothing new survived, of this nation or any other
    record = _shred_records(platform).get(f"{nation.lower()}.{uid}")
    assert record is not None and record["state"] == "shredded", record
    assert record["nation"] == nation
