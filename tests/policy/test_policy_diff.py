"""What a TenantPolicy would change, as data: the cells it grants and removes, their summary, the warnings.

France (COSMIC TOP SECRET), Germany and Poland (NATO SECRET); France's model released to nobody, its
intelligence dataset released to Germany, Germany's reports released to NATO. Each change is compared with
the same bundle without it, and the cells found are checked against the whole class matrix of both bundles.
"""

from __future__ import annotations

import time

import pytest

from sovereign.domain.markings import Classification, Markings, Resource, ResourceKind
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.diff import (
    MAX_WARNING_CHARS,
    MAX_WARNING_LINES,
    DiffTooSlow,
    PolicyDiff,
    RulesRefused,
    bundle_with_nation_policies,
    live_tenant_policies,
    policy_diff,
    tenant_policy_change,
)
from sovereign.policy.engine import PolicyEngine
from sovereign.policy.matrix import MatrixTenant
from sovereign.policy.principal_classes import SetAtoms, Unanalysable, class_matrix

TENANTS = [
    MatrixTenant("FRA", Classification.COSMIC_TOP_SECRET),
    MatrixTenant("DEU", Classification.NATO_SECRET),
    MatrixTenant("POL", Classification.NATO_SECRET),
]


def resource(kind: ResourceKind, name: str, owner: str, level: Classification, *rel: str) -> Resource:
    markings = Markings(owner=owner, classification=level, releasableTo=list(rel))
    return Resource(kind=kind, name=name, markings=markings)


RESOURCES = [
    resource(ResourceKind.model, "fra/analyst", "FRA", Classification.NATO_CONFIDENTIAL),
    resource(ResourceKind.dataset, "fra/intel", "FRA", Classification.NATO_SECRET, "DEU"),
    resource(ResourceKind.dataset, "deu/reports", "DEU", Classification.NATO_RESTRICTED, "NATO"),
]
POL_LIAISON = """
@id("pol-liaison")
permit (principal, action, resource)
when { resource.owner == "FRA" && principal.nationality == "POL" && principal.groups.contains("liaison") };
"""
NO_CONTRACTORS = """
@id("no-contractors")
forbid (principal, action, resource)
when { principal.groups.contains("contractors") };
"""
SUBJECT = "TenantPolicy tenant-fra/liaison"


def diff_of(live: dict[str, str], name: str, cedar: str, base: PolicyBundle | None = None) -> PolicyDiff:
    before, after = tenant_policy_change(base or PolicyBundle.load(), "FRA", live, name, cedar)
    diff = policy_diff(before, after, TENANTS, RESOURCES, "FRA")
    assert_every_changed_cell_found(before, after, diff)
    return diff


def assert_every_changed_cell_found(before: PolicyBundle, after: PolicyBundle, diff: PolicyDiff) -> None:
    """The diff compares only the cells France's rules can change: none changes outside them."""
    atoms = SetAtoms.of([before.policies, after.policies])
    old = {
        (c.principal, c.resource.name): c.allowed
        for c in class_matrix(PolicyEngine(before), TENANTS, RESOURCES, atoms)
    }
    new = class_matrix(PolicyEngine(after), TENANTS, RESOURCES, atoms)
    flipped = {
        (c.principal, c.resource.name, c.allowed)
        for c in new
        if c.allowed != old[(c.principal, c.resource.name)]
    }
    found = {(c.principal, c.resource.name, c.gained) for c in (*diff.gained, *diff.lost)}
    assert found == flipped


def test_a_rule_granting_polands_liaison_officers_gains_their_cells_on_frances_resources() -> None:
    diff = diff_of({}, "liaison", POL_LIAISON)

    assert not diff.lost and diff.gained
    assert {(c.principal.nation, c.resource.name) for c in diff.gained} == {
        ("POL", "fra/analyst"),
        ("POL", "fra/intel"),
    }
    assert all("liaison" in c.principal.groups for c in diff.gained)
    assert all(c.deciding_policy_ids == ("fra/liaison/pol-liaison",) for c in diff.gained)
    assert diff.warning_lines(SUBJECT) == [
        f"{SUBJECT}: grants {len(diff.gained)} cells, removes 0",
        "POL gains fra/analyst (Model) at NATO CONFIDENTIAL and above, groups {liaison} "
        "[allowed by fra/liaison/pol-liaison]",
        "POL gains fra/intel (Dataset) at NATO SECRET, groups {liaison} [allowed by fra/liaison/pol-liaison]",
    ]
    analyst = next(g for g in diff.groups if g.resource == "fra/analyst")
    assert analyst.exact and analyst.upward
    assert analyst.levels == (Classification.NATO_CONFIDENTIAL, Classification.NATO_SECRET)


def test_a_forbid_removes_cells_of_every_nation_on_frances_resources_and_of_frances_users_everywhere() -> (
    None
):
    diff = diff_of({"liaison": POL_LIAISON}, "contractors", NO_CONTRACTORS)

    assert not diff.gained and diff.lost
    assert all("contractors" in c.principal.groups for c in diff.lost)
    assert all(c.deciding_policy_ids == ("fra/contractors/no-contractors",) for c in diff.lost)
    rows = {(g.nation, g.resource) for g in diff.groups}
    # France's forbid narrows its own users on Germany's reports, never Germans on them.
    assert ("FRA", "deu/reports") in rows and ("DEU", "deu/reports") not in rows
    assert ("DEU", "fra/intel") in rows and ("DEU", "fra/analyst") not in rows  # never released to DEU
    lines = diff.warning_lines("TenantPolicy tenant-fra/contractors")
    assert lines[0] == f"TenantPolicy tenant-fra/contractors: grants 0 cells, removes {len(diff.lost)}"
    assert (
        "FRA loses deu/reports (Dataset) at NATO RESTRICTED and above, groups {contractors} "
        "[denied by fra/contractors/no-contractors]"
    ) in lines
    # Poland's users held France's resources through the liaison rule only: losing them needs both groups.
    assert any(
        line.startswith("POL loses fra/analyst") and "groups {contractors, liaison}" in line for line in lines
    )


def test_an_edited_rule_shows_what_the_new_version_grants_and_what_the_old_one_no_longer_does() -> None:
    edited = POL_LIAISON.replace('"POL"', '"DEU"').replace("pol-liaison", "deu-liaison")
    diff = diff_of({"liaison": POL_LIAISON}, "liaison", edited)

    assert {c.principal.nation for c in diff.gained} == {"DEU"}
    assert {c.principal.nation for c in diff.lost} == {"POL"}
    assert {c.resource.name for c in diff.gained} == {"fra/analyst"}  # fra/intel was released to DEU already
    assert all(c.deciding_policy_ids == () for c in diff.lost)  # the default deny
    assert all(c.previous_policy_ids == ("fra/liaison/pol-liaison",) for c in diff.lost)
    lines = diff.warning_lines(SUBJECT)
    assert (
        "DEU gains fra/analyst (Model) at NATO CONFIDENTIAL and above, groups {liaison} "
        "[allowed by fra/liaison/deu-liaison]"
    ) in lines
    assert (
        "POL loses fra/intel (Dataset) at NATO SECRET, groups {liaison} "
        "[no longer allowed by fra/liaison/pol-liaison]"
    ) in lines


def test_applying_the_same_rules_again_changes_nothing_and_says_so_in_one_line() -> None:
    diff = diff_of({"liaison": POL_LIAISON}, "liaison", POL_LIAISON)

    assert not diff.changed and not diff.groups and diff.before_version == diff.after_version
    assert diff.warning_lines(SUBJECT) == [f"{SUBJECT}: changes no decision ({diff.compared} cells compared)"]
    assert diff.compared > 0


def test_a_grant_that_is_not_one_block_of_users_says_it_covers_some_of_them_only() -> None:
    # Liaison officers at any level, or contractors at COSMIC TOP SECRET only (not "every contractor").
    odd = """
    @id("odd")
    permit (principal, action, resource)
    when { resource.owner == "FRA" && principal.nationality == "DEU" &&
           (principal.groups.contains("liaison") ||
            (principal.groups.contains("contractors") && principal.clearance >= 3)) };
    """
    diff = diff_of({}, "odd", odd)

    analyst = next(g for g in diff.groups if g.resource == "fra/analyst")
    assert not analyst.exact
    assert analyst.describe().endswith("(some of these users only)")


def test_the_comparison_is_json_for_scripts() -> None:
    data = diff_of({}, "liaison", POL_LIAISON).as_dict()

    assert data["nation"] == "FRA" and data["changed"] and data["lost"] == 0
    assert data["gained"] == len(data["cells"])
    row = next(s for s in data["summary"] if s["resource"] == "fra/intel")
    assert row == {
        "nation": "POL",
        "resource": "fra/intel",
        "kind": "Dataset",
        "change": "gained",
        "levels": ["NATO SECRET"],
        "compartments": {"holds": [], "lacks": []},
        "groups": {"holds": ["liaison"], "lacks": []},
        "exact": True,
        "cells": row["cells"],
        "policyIds": ["fra/liaison/pol-liaison"],
        "summary": "POL gains fra/intel (Dataset) at NATO SECRET, groups {liaison}",
        "policies": "allowed by fra/liaison/pol-liaison",
    }
    cell = data["cells"][0]
    assert set(cell) == {"principal", "resource", "kind", "change", "decidingPolicyIds", "previousPolicyIds"}
    assert cell["principal"]["nation"] == "POL" and "liaison" in cell["principal"]["groups"]


def test_rules_the_nation_may_not_add_are_refused_with_the_reason_and_nothing_is_compared() -> None:
    with pytest.raises(RulesRefused) as refused:
        tenant_policy_change(
            PolicyBundle.load(), "FRA", {}, "grab", '@id("grab") permit (principal, action, resource);'
        )
    assert refused.value.problems == [
        "policy 'grab': a nation may only forbid, or permit on resources it owns: add "
        '`resource.owner == "FRA"` to its when clause'
    ]


def test_the_nations_live_policies_are_its_rules_before_a_refused_or_deleted_one_left_out() -> None:
    bodies = [
        {"metadata": {"name": "liaison", "namespace": "tenant-fra"}, "spec": {"cedar": POL_LIAISON}},
        {
            "metadata": {"name": "gone", "namespace": "tenant-fra", "deletionTimestamp": "x"},
            "spec": {"cedar": "x"},
        },
        {"metadata": {"name": "other", "namespace": "tenant-deu"}, "spec": {"cedar": NO_CONTRACTORS}},
        {"metadata": {"name": "bad", "namespace": "tenant-fra"}, "spec": {"cedar": "permit (principal"}},
    ]
    live = live_tenant_policies(bodies, "tenant-fra")
    assert set(live) == {"liaison", "bad"}
    bundle = bundle_with_nation_policies(PolicyBundle.load(), "FRA", live)
    assert (
        dict(bundle.nation_rules)["FRA"].count("@id(") == 1
    )  # the bad one is left out, as the operator does
    # Other nations' rules in the bundle stay as they are.
    with_deu = PolicyBundle.load().with_nation_rules(
        {"DEU": '@id("deu/x/y") forbid (principal, action, resource);'}
    )
    assert dict(bundle_with_nation_policies(with_deu, "FRA", live).nation_rules)["DEU"].startswith(
        '@id("deu/x/y")'
    )


def test_warnings_stay_short_and_few_however_much_changes() -> None:
    many = [
        resource(ResourceKind.dataset, f"fra/d{i:02}", "FRA", list(Classification)[i % 4], *rel)
        for i, rel in enumerate([(), ("DEU",)] * 16)
    ] + [resource(ResourceKind.model, f"fra/m{i}", "FRA", level) for i, level in enumerate(Classification)]
    rules = POL_LIAISON.replace(
        'principal.nationality == "POL"', '["POL", "DEU"].contains(principal.nationality)'
    )
    before, after = tenant_policy_change(PolicyBundle.load(), "FRA", {}, "liaison", rules)
    diff = policy_diff(before, after, TENANTS, many, "FRA")

    lines = diff.warning_lines(SUBJECT)
    assert len(lines) == 1 + MAX_WARNING_LINES + 1 and lines[-1].startswith("… and ")
    assert all(len(line) <= MAX_WARNING_CHARS for line in lines)
    # Resources that change alike share a line.
    assert any(
        line.startswith("POL gains 8 Datasets (fra/d00, fra/d04, fra/d08, …) at NATO UNCLASSIFIED and above")
        for line in lines
    )


def test_a_comparison_past_its_deadline_stops() -> None:
    before, after = tenant_policy_change(PolicyBundle.load(), "FRA", {}, "liaison", POL_LIAISON)
    with pytest.raises(DiffTooSlow):
        policy_diff(before, after, TENANTS, RESOURCES, "FRA", deadline=time.monotonic() - 1)


def test_a_rule_about_one_user_cannot_be_compared_and_says_which_rule() -> None:
    one_user = """
    @id("one-officer")
    permit (principal, action, resource)
    when { resource.owner == "FRA" && principal.sub == "officer-7" };
    """
    before, after = tenant_policy_change(PolicyBundle.load(), "FRA", {}, "one", one_user)
    with pytest.raises(Unanalysable, match="fra/one/one-officer"):
        policy_diff(before, after, TENANTS, RESOURCES, "FRA")
