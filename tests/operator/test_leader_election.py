"""HA: operator replicas share one Lease; only its holder runs kopf, a standby takes over when it expires."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import pytest
import yaml

from tests.helpers import kubectl
from tests.operator.harness import OperatorProcess, Platform
from tests.operator.tenants import apply_tenant, delete_tenant, wait_ready

LEASE = ("lease", "sovereign-operator", "-n", "sovereign-system")
HANDLED = "Handler 'reconcile_on_change' succeeded"


def identity(process: OperatorProcess) -> str:
    return f"{socket.gethostname()}-{process.proc.pid}"


def lease_holder(platform: Platform) -> str | None:
    result = kubectl(platform.kube, "get", *LEASE, "-o", "json", check=False)
    return json.loads(result.stdout)["spec"].get("holderIdentity") if result.returncode == 0 else None


@pytest.mark.faults  # `make faults`: kept out of `make test` for its time
def test_only_the_lease_holder_acts_and_a_standby_takes_over(
    platform: Platform, start_operator: Callable[..., OperatorProcess]
) -> None:
    first = start_operator()
    first.wait_for_log("leader: acquired Lease")
    second = start_operator()
    second.wait_for_log(f"standby: Lease sovereign-system/sovereign-operator is held by {identity(first)}")
    assert lease_holder(platform) == identity(first)

    try:
        apply_tenant(platform.kube, "dnk", "DNK")
        wait_ready(platform.kube, "dnk")
        assert HANDLED in first.log_text() and HANDLED not in second.log_text()
        assert not second.is_leader() and second.returncode is None

        first.kill()  # no release: the standby must wait for the Lease to expire (3 s in tests)
        second.wait_for_log("leader: acquired Lease", timeout=30)
        assert lease_holder(platform) == identity(second)
        apply_tenant(platform.kube, "bel", "BEL")
        wait_ready(platform.kube, "bel")
        assert HANDLED in second.log_text()
    finally:
        delete_tenant(platform.kube, "bel")
        delete_tenant(platform.kube, "dnk")


def test_a_leader_that_loses_its_lease_stops_and_exits_non_zero(
    platform: Platform, start_operator: Callable[..., OperatorProcess]
) -> None:
    leader = start_operator()
    leader.wait_for_log("Initial authentication has finished")
    lease = json.loads(kubectl(platform.kube, "get", *LEASE, "-o", "json").stdout)
    # Someone else takes the Lease (as a replica would after a network partition hid our renewals).
    lease["spec"].update(holderIdentity="intruder-1", leaseDurationSeconds=30)
    kubectl(platform.kube, "replace", "-f", "-", input=yaml.safe_dump(lease))

    assert leader.wait_exit(timeout=30) == 1
    assert "leader: lost Lease" in leader.log_text()
    # Hand the Lease back so later tests need not wait for the intruder's 30 s.
    lease = json.loads(kubectl(platform.kube, "get", *LEASE, "-o", "json").stdout)
    lease["spec"].update(holderIdentity="", leaseDurationSeconds=1)
    kubectl(platform.kube, "replace", "-f", "-", input=yaml.safe_dump(lease))


def test_a_clean_stop_releases_the_lease_at_once(
    platform: Platform, start_operator: Callable[..., OperatorProcess]
) -> None:
    first = start_operator()
    first.wait_for_log("leader: acquired Lease")
    second = start_operator()
    second.wait_for_log("standby: Lease")
    assert first.stop() == 0
    assert lease_holder(platform) in ("", None, identity(second))
    second.wait_for_log("leader: acquired Lease", timeout=10)
