"""Principal classes: the strings a policy set tells apart in a user's sets, and the class matrix's soundness.

The class matrix must decide a class exactly as the engine decides every real user that falls in it: the
equivalence test draws users with compartments and groups the policies name and strings they do not, and
compares `engine.decide` with its class's cell on every resource. Its rules have the accepted shape: a
policy set that permits what the marking rule then refuses (a resource not released to its recipient) is
allowed in the matrix, which the verification reports, and denied by `decide`'s marking check.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign.domain.markings import Classification, Markings, Principal, Resource
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.engine import PolicyEngine
from sovereign.policy.matrix import ACTION_FOR_KIND, MatrixTenant, clearance_levels
from sovereign.policy.nation_rules import nation_bundle_rules
from sovereign.policy.principal_classes import (
    OTHER,
    PrincipalClass,
    SetAtoms,
    SetUse,
    Unanalysable,
    class_matrix,
    strengthened_for_classes,
    weakened_for_classes,
)

SHIPPED = PolicyBundle.load()


def when(condition: str) -> str:
    return f'@id("p") forbid (principal, action, resource) when {{ {condition} }};'


@pytest.mark.parametrize(
    ("condition", "compartments", "groups"),
    [
        ('principal.groups.contains("liaison")', SetUse(), SetUse(frozenset({"liaison"}))),
        (
            'principal.compartments.containsAll(["ATOMAL", "CRYPTO"])',
            SetUse(frozenset({"ATOMAL", "CRYPTO"})),
            SetUse(),
        ),
        ('principal.groups.containsAny(["a", "b"])', SetUse(), SetUse(frozenset({"a", "b"}))),
        ('principal.groups == ["a"]', SetUse(), SetUse(frozenset({"a"}), beyond_membership=True)),
        ('["a"] != principal.groups', SetUse(), SetUse(frozenset({"a"}), beyond_membership=True)),
        ('["a", "b"].containsAll(principal.groups)', SetUse(), SetUse(frozenset({"a", "b"}), False, True)),
        ("principal.groups.isEmpty()", SetUse(), SetUse(beyond_membership=True)),
        (
            "principal.compartments.containsAll(resource.compartments)",
            SetUse(resource_compartments=True),
            SetUse(),
        ),
        (
            "principal.compartments == resource.compartments",
            SetUse(resource_compartments=True, beyond_membership=True),
            SetUse(),
        ),
        (
            'principal.nationality == "FRA" && principal.clearance >= 2 && principal.tenantSuspended',
            SetUse(),
            SetUse(),
        ),
    ],
    ids=[
        "contains",
        "containsAll",
        "containsAny",
        "equals",
        "differs-reversed",
        "reverse-containsAll",
        "isEmpty",
        "resource-compartments",
        "equals-resource-compartments",
        "plain-attributes",
    ],
)
def test_set_atoms_reads_what_each_form_can_tell_apart(condition, compartments, groups) -> None:
    assert SetAtoms.of([when(condition)]) == SetAtoms(compartments, groups)


def test_set_atoms_of_the_shipped_base_is_the_resource_compartments_only() -> None:
    assert SetAtoms.of([SHIPPED.base]) == SetAtoms(SetUse(resource_compartments=True), SetUse())


def test_set_atoms_gathers_every_text() -> None:
    atoms = SetAtoms.of([when('principal.groups.contains("a")'), when('principal.groups.contains("b")')])
    assert atoms.groups.literals == {"a", "b"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (when('principal.sub == "alice"'), "policy 'p' uses principal.sub"),
        (
            when("principal.groups.contains(principal.nationality)"),
            "compares principal.groups with something",
        ),
        (when("principal.groups.containsAll(principal.compartments)"), "compares principal.groups"),
        (when('["a"].contains(principal.groups)'), "tests principal.groups as an element of a set"),
        (when("principal.groups.containsAny(resource.releasableTo)"), "compares principal.groups"),
        (when('principal == Sovereign::User::"FRA/alice"'), "compares the user itself"),
        ('@id("p") forbid (principal == Sovereign::User::"FRA/alice", action, resource);', "names a user"),
        ('@id("p") forbid (principal in Sovereign::User::"FRA/alice", action, resource);', "names a user"),
        ('@id("p") permit (principal == ?principal, action, resource);', "templates"),
        ("permit (principal, action, resource) when {", "do not parse"),
    ],
    ids=[
        "sub",
        "groups-vs-attribute",
        "groups-vs-compartments",
        "groups-as-element",
        "groups-vs-releasability",
        "user-itself",
        "scope-names-user",
        "scope-in-user",
        "template",
        "parse-error",
    ],
)
def test_set_atoms_refuses_what_classes_cannot_cover(text: str, message: str) -> None:
    with pytest.raises(Unanalysable, match=message.replace("(", r"\(")):
        SetAtoms.of([text])


def test_classes_of_a_resource_are_the_named_strings_and_none_some_or_all_of_its_compartments() -> None:
    resource = Resource(
        kind="Dataset",
        name="fra/reports",
        markings=Markings(owner="FRA", classification="NATO SECRET", compartments=["CRYPTO", "ATOMAL"]),
    )
    assert SetUse(frozenset({"SIGINT"})).values(resource) == [(), ("SIGINT",)]
    assert SetUse(frozenset({"SIGINT"}), True).values(resource) == [
        (), ("ATOMAL",), ("ATOMAL", "CRYPTO"),
        ("SIGINT",), ("ATOMAL", "SIGINT"), ("ATOMAL", "CRYPTO", "SIGINT"),
    ]  # fmt: skip
    with_other = SetUse(frozenset({"SIGINT"}), True, True)
    assert len(with_other.values(resource)) == 4 * 3
    assert with_other.class_of(["CRYPTO", "X", "Y"], resource) == (OTHER, "ATOMAL")
    assert with_other.class_of(["CRYPTO", "ATOMAL", "SIGINT"], resource) == ("ATOMAL", "CRYPTO", "SIGINT")


def test_a_resource_with_many_compartments_adds_three_classes_not_two_to_the_n() -> None:
    compartments = [f"C{i:02}" for i in range(20)]
    resource = Resource(
        kind="Model",
        name="fra/many",
        markings=Markings(owner="FRA", classification="NATO SECRET", compartments=compartments),
    )
    bundle = SHIPPED
    cells = class_matrix(PolicyEngine(bundle), [MatrixTenant("FRA", Classification.NATO_SECRET)], [resource])
    assert {cell.principal.compartments for cell in cells} == {(), ("C00",), tuple(compartments)}
    allowed = {cell.principal.compartments for cell in cells if cell.allowed}
    assert allowed == {tuple(compartments)}


def test_weakening_leaves_analysable_text_alone_and_only_ever_allows_more() -> None:
    assert weakened_for_classes(SHIPPED.base) == (SHIPPED.base, ())
    text = "\n".join(
        [
            '@id("not-alice") forbid (principal, action, resource) when { principal.sub == "alice" };',
            '@id("alice") permit (principal == Sovereign::User::"POL/alice", action, resource)'
            ' when { resource.owner == "FRA" };',
            '@id("term") permit (principal, action, resource)'
            ' when { resource.owner == "FRA" && principal.sub == "bob" && principal.groups.contains("x") };',
            '@id("unless") permit (principal, action, resource)'
            ' when { resource.owner == "FRA" } unless { principal.sub == "eve" };',
        ]
    )
    weaker, changed = weakened_for_classes(text)
    assert changed == ("not-alice", "alice", "term", "unless")
    assert "principal.sub" not in weaker and "POL/alice" not in weaker
    assert weaker.count("permit") == 3 and "forbid" not in weaker
    assert SetAtoms.of([weaker]).groups.literals == {"x"}  # only the term on a single user went


def test_strengthening_only_ever_allows_less() -> None:
    assert strengthened_for_classes(SHIPPED.base) == (SHIPPED.base, ())
    text = "\n".join(
        [
            '@id("alice") permit (principal == Sovereign::User::"POL/alice", action, resource);',
            '@id("not-bob") forbid (principal, action, resource)'
            ' when { principal.groups.contains("x") && principal.sub == "bob" };',
            '@id("unless-eve") forbid (principal, action, resource) unless { principal.sub == "eve" };',
            '@id("kept") permit (principal, action, resource) when { principal.groups.contains("y") };',
        ]
    )
    stronger, changed = strengthened_for_classes(text)
    assert changed == ("alice", "not-bob", "unless-eve")
    assert stronger.count("permit") == 1 and stronger.count("forbid") == 2
    assert "principal.sub" not in stronger and "POL/alice" not in stronger
    assert SetAtoms.of([stronger]).groups.literals == {"x", "y"}  # the forbid kept its other term


# Soundness: a small catalogue whose rules tell users apart by groups and compartments in every form.

RULES = {
    "FRA": [
        (
            "liaison",
            """
            @id("pol-liaison")
            permit (principal, action, resource)
            when { resource.owner == "FRA" && principal.nationality == "POL" &&
                   principal.groups.contains("liaison") };
            @id("no-groupless-above-restricted")
            forbid (principal, action, resource)
            when { resource.owner == "FRA" && principal.groups.isEmpty() && resource.classification >= 2 };
            """,
        )
    ],
    "DEU": [
        (
            "groups",
            """
            @id("known-groups-only")
            forbid (principal, action, resource)
            when { resource.owner == "DEU" && !["analysts", "liaison"].containsAll(principal.groups) };
            """,
        )
    ],
    "USA": [
        (
            "sigint",
            """
            @id("gbr-sigint")
            permit (principal, action, resource)
            when { resource.owner == "USA" && principal.nationality == "GBR" &&
                   principal.compartments.containsAny(["SIGINT"]) };
            @id("exact-compartments-above-secret")
            forbid (principal, action, resource)
            when { resource.owner == "USA" && resource.classification >= 3 &&
                   principal.compartments != resource.compartments };
            """,
        )
    ],
}
TENANTS = [
    MatrixTenant("FRA", Classification.COSMIC_TOP_SECRET),
    MatrixTenant("POL", Classification.NATO_SECRET),
    MatrixTenant("DEU", Classification.NATO_SECRET),
    MatrixTenant("GBR", Classification.COSMIC_TOP_SECRET),
    MatrixTenant("USA", Classification.COSMIC_TOP_SECRET),
    MatrixTenant("ITA", Classification.NATO_SECRET, suspended=True),
]


def _resource(kind: str, name: str, owner: str, level: str, rel=(), compartments=()) -> Resource:
    markings = Markings(
        owner=owner, classification=level, releasableTo=list(rel), compartments=list(compartments)
    )
    return Resource(kind=kind, name=name, markings=markings)


RESOURCES = [
    _resource("Model", "fra/planner", "FRA", "NATO SECRET"),
    _resource("Dataset", "fra/weather", "FRA", "NATO RESTRICTED", ["NATO"]),
    _resource("Dataset", "fra/atomal", "FRA", "NATO CONFIDENTIAL", ["DEU", "POL"], ["ATOMAL"]),
    _resource("Model", "deu/analyst", "DEU", "NATO CONFIDENTIAL", ["NATO"]),
    _resource("Dataset", "usa/signals", "USA", "NATO SECRET", [], ["SIGINT"]),
    _resource("Dataset", "usa/crypto", "USA", "COSMIC TOP SECRET", ["GBR"], ["ATOMAL", "CRYPTO"]),
    _resource("Model", "usa/open", "USA", "NATO UNCLASSIFIED", ["NATO"]),
    _resource("Dataset", "ita/ports", "ITA", "NATO RESTRICTED", ["NATO"]),
]
COMPARTMENTS = ["ATOMAL", "CRYPTO", "SIGINT", "BOHEMIA", "X-1"]  # the last two: named by no policy
GROUPS = ["liaison", "analysts", "admins", "night-shift"]  # the last two: named by no policy


@functools.cache
def engine_and_classes() -> tuple[PolicyEngine, SetAtoms, dict[tuple[PrincipalClass, str], tuple]]:
    bundle = SHIPPED.with_nation_rules({n: nation_bundle_rules(n, rules) for n, rules in RULES.items()})
    engine = PolicyEngine(bundle)
    atoms = SetAtoms.of([bundle.policies])
    cells = class_matrix(engine, TENANTS, RESOURCES, atoms)
    return engine, atoms, {(c.principal, c.resource.name): (c.allowed, c.deciding_policy_ids) for c in cells}


def test_the_catalogue_uses_every_form_and_its_classes_are_all_enumerated() -> None:
    _, atoms, cells = engine_and_classes()
    assert atoms.groups == SetUse(frozenset({"analysts", "liaison"}), False, True)
    assert atoms.compartments == SetUse(frozenset({"SIGINT"}), True, True)
    rows = sum(len(clearance_levels(t)) for t in TENANTS)
    # per resource: its compartment values x 2^(3 group atoms) classes per row
    expected = sum(rows * len(atoms.compartments.values(r)) * 2**3 for r in RESOURCES)
    assert len(cells) == expected
    assert any(allowed for allowed, _ in cells.values()) and not all(allowed for allowed, _ in cells.values())


@st.composite
def users(draw: st.DrawFn) -> Principal:
    tenant = draw(st.sampled_from(TENANTS))
    return Principal(
        sub=draw(st.sampled_from(["alice", "bob", "carol"])),
        nationality=tenant.nation,
        clearance=draw(st.sampled_from(clearance_levels(tenant))),
        compartments=draw(st.lists(st.sampled_from(COMPARTMENTS), max_size=4)),
        groups=draw(st.lists(st.sampled_from(GROUPS), max_size=3)),
        issuerNation=tenant.nation,
        tenantSuspended=tenant.suspended,
    )


@settings(max_examples=250, deadline=None)
@given(user=users())
def test_every_user_is_decided_as_its_class(user: Principal) -> None:
    engine, atoms, cells = engine_and_classes()
    for resource in RESOURCES:
        decision = engine.decide(user, ACTION_FOR_KIND[resource.kind], [resource])
        principal = PrincipalClass(
            user.nationality,
            user.clearance,
            atoms.compartments.class_of(user.compartments, resource),
            atoms.groups.class_of(user.groups, resource),
        )
        allowed, deciding = cells[(principal, resource.name)]
        assert (decision.allowed, tuple(sorted(decision.deciding_policy_ids))) == (allowed, deciding), (
            f"{principal.describe()} on {resource.name}: {decision.reasons}"
        )
