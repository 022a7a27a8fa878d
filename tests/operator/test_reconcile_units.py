"""The reconcilers' pure decisions, as data: drift comparison, conditions, nation ownership, role drift."""

from __future__ import annotations

import pytest
from sovereign_operator.builders.conditions import (
    Condition,
    merge_conditions,
    ready_from_steps,
    status_changes,
)
from sovereign_operator.reconcile.objects import contains
from sovereign_operator.reconcile.tenant import owner_of_nation
from sovereign_operator.reconcile.tenant_keys import role_drifted

DESIRED = {"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"ports": [{"port": 53}], "subjects": []}}


@pytest.mark.parametrize(
    ("live", "expected"),
    [
        (
            {**DESIRED, "metadata": {"name": "x", "labels": {"a": "1"}, "uid": "u"}},
            True,
        ),  # server fields ignored
        (
            {"metadata": DESIRED["metadata"], "spec": {"ports": [{"port": 53, "protocol": "TCP"}]}},
            True,
        ),  # defaults
        ({"metadata": {"name": "x", "labels": {"a": "2"}}, "spec": DESIRED["spec"]}, False),  # changed label
        ({"metadata": DESIRED["metadata"], "spec": {"ports": []}}, False),  # removed list item
        (
            {"metadata": DESIRED["metadata"], "spec": {"ports": [{"port": 53}, {"port": 80}]}},
            False,
        ),  # added item
        ({"metadata": DESIRED["metadata"], "spec": {"ports": [{"port": 53}], "subjects": [{"n": 1}]}}, False),
    ],
    ids=["extra-server-fields", "server-defaults", "changed", "removed", "added", "subject-added"],
)
def test_desired_contained_in_live(live: dict, expected: bool) -> None:
    assert contains(live, DESIRED) is expected


def test_transition_time_changes_only_with_status() -> None:
    live = [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "A"}]
    same = merge_conditions(live, [Condition("Ready", True, "B", "other message")], generation=2)
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z" and same[0]["observedGeneration"] == 2
    flipped = merge_conditions(live, [Condition("Ready", False, "Broken")], generation=2)
    assert flipped[0]["lastTransitionTime"] != "2026-01-01T00:00:00Z" and flipped[0]["status"] == "False"
    assert merge_conditions(None, [Condition("Ready", None, "NotReached")], 1)[0]["status"] == "Unknown"


def test_ready_follows_the_first_failing_step() -> None:
    steps = [
        Condition("NamespaceReady", True, "Ok"),
        Condition("KeysReady", False, "VaultUnreachable", "down"),
    ]
    assert ready_from_steps(steps) == Condition("Ready", False, "VaultUnreachable", "down")
    assert ready_from_steps(steps[:1]).status is True


def test_status_changes_lists_only_differences() -> None:
    assert status_changes({"keyVersion": 1, "namespace": "n"}, {"keyVersion": 1, "namespace": "n"}) == {}
    assert status_changes({"keyVersion": 1}, {"keyVersion": 2}) == {"keyVersion": 2}


def test_oldest_tenant_owns_the_nation_then_by_name() -> None:
    assert owner_of_nation([("2026-01-02T00:00:00Z", "a"), ("2026-01-01T00:00:00Z", "b")]) == "b"
    assert owner_of_nation([("2026-01-01T00:00:00Z", "z"), ("2026-01-01T00:00:00Z", "m")]) == "m"
    assert owner_of_nation([]) is None


ROLE = {
    "bound_service_account_names": "model-serving",
    "bound_service_account_namespaces": "tenant-fra",
    "token_policies": "sovereign-nation",
    "token_ttl": "1h",
}
LIVE_ROLE = {  # as OpenBao reads it back
    "bound_service_account_names": ["model-serving"],
    "bound_service_account_namespaces": ["tenant-fra"],
    "policies": ["sovereign-nation"],
    "token_policies": ["sovereign-nation"],
    "ttl": 3600,
    "token_ttl": 3600,
    "audience": "",
}


def test_role_read_back_in_vaults_shape_is_not_drift() -> None:
    assert not role_drifted(LIVE_ROLE, ROLE)
    assert role_drifted({**LIVE_ROLE, "token_ttl": 60}, ROLE)
    assert role_drifted({**LIVE_ROLE, "bound_service_account_namespaces": ["tenant-deu"]}, ROLE)
    assert role_drifted({**LIVE_ROLE, "bound_service_account_namespaces": ["tenant-fra", "*"]}, ROLE)
    assert role_drifted({**LIVE_ROLE, "token_policies": ["tenant-fra"]}, ROLE)
