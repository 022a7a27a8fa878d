"""The access matrix: its grouped, batched evaluation equals one `engine.decide` per cell, reasons included.

Catalogues are random (seeded); nations' own rules include one comparing with a nation literal (still grouped)
and one naming a resource entity (its policy sets are evaluated resource by resource).
"""

from __future__ import annotations

import random

import cedarpy
import pytest

from sovereign.domain.markings import Classification, Markings, Resource, ResourceKind
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.engine import PolicyEngine
from sovereign.policy.matrix import (
    MatrixTenant,
    access_matrix,
    clearance_levels,
    exhaustive_matrix,
    matrix_principal,
)
from sovereign.policy.matrix_grouping import group_key, nation_literals, string_literals
from sovereign.policy.nation_rules import nation_bundle_rules, problems_with_nation_rules
from sovereign.policy.schema import fast_principal_entity, principal_entity

NATIONS = ["FRA", "DEU", "POL", "EST", "GBR", "USA", "ITA", "NOR"]
LEVELS = list(Classification)
GROUPINGS = [["NATO"], ["FRA", "DEU"], ["GBR", "USA"], ["POL", "EST", "NOR"], []]

FRA_RULES = """
@id("no-pol-on-fra")
forbid (principal, action, resource)
when { principal.nationality == "POL" && resource.owner == "FRA" && resource.compartments.isEmpty() };

@id("pol-liaison")
permit (principal, action, resource)
when { resource.owner == "FRA" && principal.nationality == "POL" && principal.groups.contains("liaison") };

@id("no-usa-when-gbr")
forbid (principal, action, resource is Sovereign::Dataset)
when { principal.nationality == "USA" && resource.releasableTo.contains("GBR") };
"""

DEU_RULES = """
@id("protect-one-dataset")
forbid (principal, action, resource == Sovereign::Dataset::"deu/d0")
when { principal.nationality != "DEU" };
"""


def bundle(with_rules: bool) -> PolicyBundle:
    base = PolicyBundle.load()
    if not with_rules:
        return base
    for nation, text in (("FRA", FRA_RULES), ("DEU", DEU_RULES)):
        assert problems_with_nation_rules(nation, text) == []
    return base.with_nation_rules(
        {
            "FRA": nation_bundle_rules("FRA", [("rules", FRA_RULES)]),
            "DEU": nation_bundle_rules("DEU", [("rules", DEU_RULES)]),
        }
    )


def catalogue(seed: int, size: int = 60) -> list[Resource]:
    rng = random.Random(seed)
    resources = []
    for index in range(size):
        owner = rng.choice(NATIONS)
        kind = rng.choice(list(ResourceKind))
        releasable = list(rng.choice(GROUPINGS))
        if rng.random() < 0.3:
            releasable.append(rng.choice(NATIONS))
        markings = Markings(
            owner=owner,
            classification=rng.choice(LEVELS),
            releasableTo=releasable,
            compartments=["ATOMAL"] if rng.random() < 0.2 else [],
            deniedNations=[rng.choice(NATIONS)] if rng.random() < 0.15 else [],
        )
        prefix = "m" if kind is ResourceKind.model else "d"
        resources.append(Resource(kind=kind, name=f"{owner.lower()}/{prefix}{index}", markings=markings))
    # The resource DEU's rule names, so that it decides something.
    resources.append(
        Resource(
            kind=ResourceKind.dataset,
            name="deu/d0",
            markings=Markings(owner="DEU", classification="NATO UNCLASSIFIED", releasableTo=["NATO"]),
        )
    )
    return resources


def tenants(seed: int) -> list[MatrixTenant]:
    rng = random.Random(seed)
    return [MatrixTenant(nation, rng.choice(LEVELS), suspended=rng.random() < 0.15) for nation in NATIONS]


@pytest.mark.parametrize("with_rules", [False, True], ids=["base", "nation-rules"])
@pytest.mark.parametrize("seed", range(6))
def test_the_matrix_equals_one_decision_per_cell(seed: int, with_rules: bool) -> None:
    resources = catalogue(seed)
    rows = tenants(seed)
    compartments, groups = [(), ("ATOMAL",)], [(), ("liaison",)]
    compartments_of, groups_of = compartments[seed % 2], groups[(seed // 2) % 2]
    fast = access_matrix(PolicyEngine(bundle(with_rules)), rows, resources, compartments_of, groups_of)
    slow = exhaustive_matrix(PolicyEngine(bundle(with_rules)), rows, resources, compartments_of, groups_of)
    assert len(fast) == len(slow) == sum(len(clearance_levels(t)) for t in rows) * len(resources)
    for got, expected in zip(fast, slow, strict=True):
        assert got == expected


def test_nation_rules_decide_in_the_matrix() -> None:
    fra_atomal = Markings(owner="FRA", classification="NATO SECRET", compartments=["ATOMAL"])
    resources = [*catalogue(1), Resource(kind=ResourceKind.model, name="fra/atomal", markings=fra_atomal)]
    rows = [
        MatrixTenant("POL", Classification.COSMIC_TOP_SECRET),
        MatrixTenant("EST", Classification.NATO_SECRET),
    ]
    cells = access_matrix(PolicyEngine(bundle(True)), rows, resources, ["ATOMAL"], ["liaison"])
    deciding = {policy for cell in cells for policy in cell.deciding_policy_ids}
    assert {"fra/rules/pol-liaison", "deu/rules/protect-one-dataset"} <= deciding
    assert cells == exhaustive_matrix(PolicyEngine(bundle(True)), rows, resources, ["ATOMAL"], ["liaison"])


def test_policies_qualify_for_grouping_only_in_the_checked_forms() -> None:
    assert nation_literals(PolicyBundle.load().base) == {"NATO"}
    assert nation_literals(FRA_RULES) == {"FRA", "GBR"}
    assert nation_literals(DEU_RULES) is None  # names a resource entity
    for text in [
        'forbid (principal, action, resource) when { resource.owner like "F*" };',
        "forbid (principal, action, resource) when { principal.groups.contains(resource.owner) };",
        'forbid (principal, action, resource) when { resource.releasableTo.containsAny(["FRA"]) };',
        "forbid (principal, action, resource) when { resource.deniedNations.isEmpty() };",
        'forbid (principal, action, resource) when { resource.releasableTo == ["NATO"] };',
        "forbid (principal, action, resource) when { resource in [resource] };",
    ]:
        assert nation_literals(text) is None, text
    assert string_literals(FRA_RULES) == {"FRA", "GBR", "POL", "USA", "liaison"}
    for text in [
        'forbid (principal, action, resource) when { principal.sub like "*fra*" };',
        'forbid (principal, action, resource) when { ip("10.0.0.1").isLoopback() };',
        'forbid (principal == Sovereign::User::"FRA/x", action, resource);',
        'forbid (principal, action, resource) when { principal in Sovereign::User::"FRA/x" };',
        'forbid (principal, action, resource) when { principal.sub == "access-matrix/fra/3" };',
    ]:
        assert string_literals(text) is None, text


def test_rows_and_resources_share_evaluations(monkeypatch: pytest.MonkeyPatch) -> None:
    requests = []
    real = cedarpy.is_authorized_batch

    def counting(batch, *args, **kwargs):
        requests.extend(batch)
        return real(batch, *args, **kwargs)

    monkeypatch.setattr(cedarpy, "is_authorized_batch", counting)
    rows = [MatrixTenant(nation, Classification.COSMIC_TOP_SECRET) for nation in NATIONS]
    cells = access_matrix(PolicyEngine(PolicyBundle.load()), rows, catalogue(2, size=200))
    assert 0 < len(requests) < len(cells) / 5


def test_nations_no_policy_tells_apart_share_a_group() -> None:
    def dataset(owner: str, releasable: list[str]) -> Resource:
        markings = Markings(owner=owner, classification="NATO SECRET", releasableTo=releasable)
        return Resource(kind=ResourceKind.dataset, name=f"{owner.lower()}/x", markings=markings)

    kept = {"NATO", "POL"}
    assert group_key(dataset("FRA", ["DEU"]), kept) == group_key(dataset("ITA", ["GBR", "USA"]), kept)
    assert group_key(dataset("FRA", ["DEU"]), kept) != group_key(dataset("FRA", ["POL"]), kept)
    assert group_key(dataset("FRA", []), kept) != group_key(dataset("POL", []), kept)


def test_levels_stop_at_the_tenant_clearance_and_a_suspended_tenant_is_denied_everywhere() -> None:
    resources = catalogue(3)
    rows = [
        MatrixTenant("FRA", Classification.NATO_CONFIDENTIAL, suspended=True),
        MatrixTenant("DEU", Classification.NATO_RESTRICTED),
    ]
    cells = access_matrix(PolicyEngine(bundle(True)), rows, resources)
    fra = [c for c in cells if c.nation == "FRA"]
    assert {c.clearance for c in fra} == set(LEVELS[:3])
    assert {c.clearance for c in cells if c.nation == "DEU"} == set(LEVELS[:2])
    assert fra and not any(c.allowed for c in fra)
    assert all("markings/limit-suspended-tenant" in c.deciding_policy_ids for c in fra)


def test_a_stale_engine_denies_every_cell() -> None:
    engine = PolicyEngine(PolicyBundle.load())
    engine.confirm_current("another-version")
    cells = access_matrix(engine, [MatrixTenant("FRA", Classification.NATO_SECRET)], catalogue(0, size=10))
    assert cells and not any(c.allowed for c in cells)
    assert all("stale policy bundle" in c.reason for c in cells)


def test_the_engine_builds_the_same_principal_entity_as_the_schema_module() -> None:
    for tenant in tenants(5):
        for level in clearance_levels(tenant):
            user = matrix_principal(tenant, level, ["ATOMAL", "CRYPTO"], ["liaison"])
            assert fast_principal_entity(user) == principal_entity(user)
