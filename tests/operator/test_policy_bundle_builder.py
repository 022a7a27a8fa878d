"""The policy bundle built from TenantPolicies, and the status each one gets, as data.

One base bundle; each case is a set of TenantPolicy bodies and what the bundle and the statuses must say.
"""

from __future__ import annotations

from typing import Any

import pytest
from sovereign_operator.builders.policy_bundle import (
    PolicyVerdict,
    build_bundle_configmap,
    build_policy_bundle,
    build_tenant_policy_status,
)

from sovereign.policy.bundle import BUNDLE_CONFIGMAP, PolicyBundle

NATIONS = ["DEU", "FRA"]
FORBID = '@id("no-est") forbid (principal, action, resource) when { principal.nationality == "EST" };'
PERMIT = '@id("pol") permit (principal, action, resource) when { resource.owner == "FRA" };'


@pytest.fixture(scope="module")
def base() -> PolicyBundle:
    return PolicyBundle.load()


def tenant_policy(namespace: str, name: str, cedar: str, **metadata: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name, **metadata}, "spec": {"cedar": cedar}}


CASES = {
    "no TenantPolicy: the base alone": ([], {}, {}),
    "one nation's rules, id-qualified": (
        [tenant_policy("tenant-fra", "liaison", PERMIT + FORBID)],
        {"FRA": ['@id("fra/liaison/pol")', '@id("fra/liaison/no-est")']},
        {("tenant-fra", "liaison"): PolicyVerdict("FRA", 2)},
    ),
    "a permit on another nation's resources is left out": (
        [tenant_policy("tenant-deu", "grab", PERMIT), tenant_policy("tenant-deu", "keep", FORBID)],
        {"DEU": ['@id("deu/keep/no-est")']},
        {("tenant-deu", "grab"): "InvalidRules", ("tenant-deu", "keep"): PolicyVerdict("DEU", 1)},
    ),
    "outside a tenant namespace is left out": (
        [tenant_policy("default", "stray", FORBID)],
        {},
        {("default", "stray"): "NotInTenantNamespace"},
    ),
    "unparsable Cedar is left out": (
        [tenant_policy("tenant-fra", "broken", "forbid (principal")],
        {},
        {("tenant-fra", "broken"): "InvalidRules"},
    ),
    "a TenantPolicy being deleted is left out": (
        [tenant_policy("tenant-fra", "going", FORBID, deletionTimestamp="2026-01-01T00:00:00Z")],
        {},
        {},
    ),
}


@pytest.mark.parametrize(("policies", "rules", "verdicts"), CASES.values(), ids=CASES.keys())
def test_bundle_holds_only_accepted_rules(
    base: PolicyBundle,
    policies: list[dict[str, Any]],
    rules: dict[str, list[str]],
    verdicts: dict[tuple[str, str], Any],
) -> None:
    publication = build_policy_bundle(base, policies, NATIONS)
    assert publication.bundle.nations_with_rules == frozenset(rules)
    for nation, ids in rules.items():
        text = dict(publication.bundle.nation_rules)[nation]
        assert all(policy_id in text for policy_id in ids)
    assert publication.bundle.validate() == []
    assert set(publication.verdicts) == set(verdicts)
    for key, expected in verdicts.items():
        verdict = publication.verdicts[key]
        if isinstance(expected, str):  # left out, for this reason, with the problems said
            assert (verdict.accepted, verdict.reason) == (False, expected) and verdict.problems
        else:
            assert verdict == expected


def test_version_changes_with_the_rules_and_only_with_them(base: PolicyBundle) -> None:
    one = build_policy_bundle(base, [tenant_policy("tenant-fra", "a", FORBID)], NATIONS).bundle
    again = build_policy_bundle(base, [tenant_policy("tenant-fra", "a", FORBID)], NATIONS).bundle
    without = build_policy_bundle(base, [], NATIONS).bundle
    assert one.version == again.version != without.version == base.version


def test_configmap_round_trips(base: PolicyBundle) -> None:
    bundle = build_policy_bundle(base, [tenant_policy("tenant-fra", "a", FORBID)], NATIONS).bundle
    configmap = build_bundle_configmap(bundle, "sovereign-system")
    assert configmap["metadata"]["name"] == BUNDLE_CONFIGMAP
    assert configmap["metadata"]["namespace"] == "sovereign-system"
    assert set(configmap["data"]) >= {"version", "nation-fra.cedar"}
    assert PolicyBundle.from_configmap_data(configmap["data"]).version == bundle.version


STATUS_CASES = {
    "accepted": (
        PolicyVerdict("FRA", 2),
        {("Accepted", "True", "Valid"), ("Ready", "True", "Published")},
    ),
    "left out": (
        PolicyVerdict("FRA", 1, ("policy 'x': bad",), "InvalidRules"),
        {("Accepted", "False", "InvalidRules"), ("Ready", "False", "InvalidRules")},
    ),
}


@pytest.mark.parametrize(("verdict", "conditions"), STATUS_CASES.values(), ids=STATUS_CASES.keys())
def test_status_says_what_was_published(
    verdict: PolicyVerdict, conditions: set[tuple[str, str, str]]
) -> None:
    status = build_tenant_policy_status(verdict, "0123456789abcdef", {}, 3)
    assert status["policies"] == verdict.policies
    assert status["bundleVersion"] == "0123456789abcdef"
    assert status["observedGeneration"] == 3
    assert {(c["type"], c["status"], c["reason"]) for c in status["conditions"]} == conditions
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    if not verdict.accepted:
        assert "policy 'x': bad" in status["conditions"][1]["message"]


def test_status_keeps_transition_times_while_the_condition_holds() -> None:
    first = build_tenant_policy_status(PolicyVerdict("FRA", 1), "v1", {}, 1)
    old = {
        **first,
        "conditions": [{**c, "lastTransitionTime": "2026-01-01T00:00:00Z"} for c in first["conditions"]],
    }
    second = build_tenant_policy_status(PolicyVerdict("FRA", 1), "v2", old, 1)
    assert [c["lastTransitionTime"] for c in second["conditions"]] == ["2026-01-01T00:00:00Z"] * 2
    assert second["bundleVersion"] == "v2"
