"""The policy bundle built from TenantPolicies, and the status each one gets, as data.

One base bundle; each case is a set of TenantPolicy bodies and what the bundle and the statuses must say.
"""

from __future__ import annotations

from typing import Any

import pytest
from sovereign_operator.builders.policy_bundle import (
    BundleRefusal,
    PolicyVerdict,
    build_bundle_configmap,
    build_bundle_refusal,
    build_policy_bundle,
    build_refused_policy_status,
    build_tenant_policy_status,
    verify_publication,
)

from sovereign.policy.bundle import BUNDLE_CONFIGMAP, PolicyBundle
from tests.operator.broken_policies import base_without_clearance_limit

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


# -- verified before it is published -----------------------------------------------------------------------

TENANTS = [
    {
        "metadata": {"name": nation.lower(), "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nation": nation, "clearance": "NATO SECRET"},
    }
    for nation in NATIONS
]
ANALYST = {
    "metadata": {"name": "fra-analyst", "namespace": "tenant-fra"},
    "spec": {"model": "analyst", "markings": {"classification": "NATO SECRET", "releasableTo": ["DEU"]}},
}
REPORTS = {
    "metadata": {"name": "reports", "namespace": "tenant-deu"},
    "spec": {"markings": {"classification": "NATO RESTRICTED"}},
}
# Accepted by the shape checks: a permit on France's own resources, kept below clearance by the base alone.
OWN_PERMIT = '@id("own") permit (principal, action, resource) when { resource.owner == "FRA" };'


def broken(base: PolicyBundle) -> PolicyBundle:
    return PolicyBundle(base.schema, base_without_clearance_limit(base.base))


def test_the_shipped_base_with_nation_rules_is_proven(base: PolicyBundle) -> None:
    policies = [tenant_policy("tenant-fra", "own", OWN_PERMIT), tenant_policy("tenant-deu", "keep", FORBID)]
    bundle = build_policy_bundle(base, policies, NATIONS).bundle
    verification = verify_publication(bundle, TENANTS, [ANALYST], [REPORTS])
    assert verification.ok and verification.nations == 2 and verification.resources == 2
    assert build_bundle_refusal(verification) is None


def test_a_base_without_the_clearance_limit_is_refused_with_its_counterexample(base: PolicyBundle) -> None:
    refusal = build_bundle_refusal(verify_publication(broken(base), TENANTS, [ANALYST], [REPORTS]))
    assert refusal is not None
    assert refusal.problem.startswith("breaks no-read-up: ")
    assert "user at NATO UNCLASSIFIED" in refusal.problem and "to a resource marked NATO" in refusal.problem
    assert refusal.policy_ids == {"markings/permit-cleared-releasable-compartmented"}
    assert not refusal.blames("FRA", "own")


def test_a_refusal_blames_the_rules_that_decided_a_counterexample(base: PolicyBundle) -> None:
    policies = [tenant_policy("tenant-fra", "own", OWN_PERMIT), tenant_policy("tenant-fra", "other", FORBID)]
    bundle = build_policy_bundle(broken(base), policies, NATIONS).bundle
    refusal = build_bundle_refusal(verify_publication(bundle, TENANTS, [ANALYST], [REPORTS]))
    assert refusal is not None and "fra/own/own" in refusal.policy_ids
    assert refusal.blames("FRA", "own")
    assert not refusal.blames("FRA", "other") and not refusal.blames("DEU", "own")
    assert not refusal.blames("FRA", "ow")  # a name is a whole path segment, not a prefix of another


def test_an_unanalysable_bundle_is_refused(base: PolicyBundle) -> None:
    groups = ", ".join(f'"g{n}"' for n in range(12))  # more strings than classes are enumerated for
    rule = (
        '@id("fra/many/groups") forbid (principal, action, resource) '
        f"when {{ principal.groups.containsAny([{groups}]) }};"
    )
    bundle = base.with_nation_rules({"FRA": rule})
    refusal = build_bundle_refusal(verify_publication(bundle, TENANTS, [ANALYST], [REPORTS]))
    assert refusal is not None and refusal.problem.startswith("cannot be verified: ")


REFUSAL = BundleRefusal("breaks no-read-up: FRA user at NATO UNCLASSIFIED …", frozenset({"fra/own/own"}))
REFUSED_CASES = {
    "its own rules decided a counterexample: not accepted either": (
        PolicyVerdict("FRA", 1),
        "own",
        "v1",
        {("Accepted", "False", "BreaksInvariant"), ("Ready", "False", "BreaksInvariant")},
    ),
    "another's rules, or the base: still accepted, not Ready": (
        PolicyVerdict("FRA", 1),
        "other",
        "v1",
        {("Accepted", "True", "Valid"), ("Ready", "False", "BreaksInvariant")},
    ),
    "left out for its own problems: says those": (
        PolicyVerdict("FRA", 1, ("policy 'x': bad",), "InvalidRules"),
        "own",
        "v1",
        {("Accepted", "False", "InvalidRules"), ("Ready", "False", "InvalidRules")},
    ),
    "no bundle was ever published": (
        PolicyVerdict("DEU", 1),
        "own",
        None,
        {("Accepted", "True", "Valid"), ("Ready", "False", "BreaksInvariant")},
    ),
}


@pytest.mark.parametrize(
    ("verdict", "name", "published", "conditions"), REFUSED_CASES.values(), ids=REFUSED_CASES.keys()
)
def test_status_of_a_refused_bundle_keeps_the_published_version(
    verdict: PolicyVerdict, name: str, published: str | None, conditions: set[tuple[str, str, str]]
) -> None:
    live = build_tenant_policy_status(PolicyVerdict("FRA", 1), "v1", {}, 2)
    status = build_refused_policy_status(verdict, name, REFUSAL, published, live, 3)
    assert status["bundleVersion"] == published and status["observedGeneration"] == 3
    assert {(c["type"], c["status"], c["reason"]) for c in status["conditions"]} == conditions
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    if verdict.accepted:
        stays = "bundle v1 stays" if published else "no bundle is published"
        assert f"the new policy bundle was refused ({stays}): breaks no-read-up" in ready["message"]
