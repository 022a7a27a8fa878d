"""On random principals and resources, Cedar's decisions equal a small reference implementation of the rule.

The reference is written here, independently of the Cedar policies.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign.domain.markings import Classification, Markings, Principal, Resource, ResourceKind
from sovereign.policy.engine import default_engine

NATIONS = ["FRA", "DEU", "GBR", "USA", "ITA"]
COMPARTMENTS = ["ATOMAL", "CRYPTO", "SIGINT"]
LEVELS = list(Classification)


def reference_allows(p: Principal, r: Resource) -> bool:
    """The rule of issue 4, written independently of the Cedar policies."""
    m = r.markings
    if p.nationality in m.denied_nations:  # a forbid wins
        return False
    releasable = p.nationality == m.owner or p.nationality in m.releasable_to or "NATO" in m.releasable_to
    return (
        releasable
        and LEVELS.index(p.clearance) >= LEVELS.index(m.classification)
        and set(m.compartments) <= set(p.compartments)
        and not p.tenant_suspended
        and p.nationality == p.issuer_nation
    )


nation = st.sampled_from(NATIONS)
level = st.sampled_from(LEVELS)
compartments = st.lists(st.sampled_from(COMPARTMENTS), max_size=3)


@st.composite
def principals(draw: st.DrawFn) -> Principal:
    nationality = draw(nation)
    return Principal(
        sub=draw(st.sampled_from(["alice", "bob"])),
        nationality=nationality,
        clearance=draw(level),
        compartments=draw(compartments),
        groups=draw(st.lists(st.sampled_from(["analysts", "admins"]), max_size=2)),
        issuer_nation=draw(st.one_of(st.just(nationality), st.just(nationality), nation)),
        tenant_suspended=draw(st.sampled_from([False, False, False, True])),
    )


@st.composite
def markings(draw: st.DrawFn) -> Markings:
    return Markings(
        owner=draw(nation),
        classification=draw(level),
        releasable_to=draw(st.lists(st.sampled_from([*NATIONS, "NATO"]), max_size=3)),
        compartments=draw(st.lists(st.sampled_from(COMPARTMENTS), max_size=1)),
        denied_nations=draw(st.lists(nation, max_size=1)),
    )


resources = st.builds(
    Resource,
    kind=st.sampled_from(list(ResourceKind)),
    name=st.sampled_from(["fra/a", "deu/b", "gbr/c"]),
    markings=markings(),
)


@settings(max_examples=400, deadline=None)
@given(principal=principals(), resource=resources)
def test_cedar_decision_equals_the_reference_rule(principal: Principal, resource: Resource) -> None:
    decision = default_engine().decide(principal, "invoke", [resource])
    assert decision.allowed == reference_allows(principal, resource), decision.reasons


@settings(max_examples=150, deadline=None)
@given(
    principal=principals(),
    resource_list=st.lists(resources, min_size=1, max_size=4, unique_by=lambda r: (r.kind, r.name)),
)
def test_several_resources_are_allowed_only_if_each_is(principal: Principal, resource_list) -> None:
    decision = default_engine().decide(principal, "invoke", resource_list)
    assert decision.allowed == all(reference_allows(principal, r) for r in resource_list)
    if decision.allowed:
        assert decision.marking is not None
        assert decision.marking.classification == max(r.markings.classification for r in resource_list)
        assert (
            principal.nationality in decision.marking.releasable_to
            or "NATO" in decision.marking.releasable_to
        )
