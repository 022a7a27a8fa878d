"""A nation's own rules: what the apply-time checks refuse, and how accepted rules decide.

Rules are evaluated only for requests that involve their nation, and cannot lift clearance or compartments.
"""

from __future__ import annotations

import pytest

from sovereign.domain.markings import Markings, Principal, Resource, ResourceKind
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.engine import PolicyEngine
from sovereign.policy.nation_rules import nation_bundle_rules, problems_with_nation_rules

LIAISON = """
@id("pol-liaison")
permit (principal, action, resource)
when { resource.owner == "FRA" && principal.nationality == "POL" && principal.groups.contains("liaison") };

@id("no-est-on-models")
forbid (principal, action, resource is Sovereign::Model)
when { principal.nationality == "EST" };
"""


def user(nation: str, clearance: str = "NATO SECRET", **extra: object) -> Principal:
    return Principal.model_validate(
        {
            "sub": f"{nation.lower()}-user",
            "nationality": nation,
            "clearance": clearance,
            "issuerNation": nation,
            **extra,
        }
    )


def model(owner: str, classification: str = "NATO SECRET", **markings: object) -> Resource:
    return Resource(
        kind=ResourceKind.model,
        name=f"{owner.lower()}/analyst",
        markings=Markings.model_validate({"owner": owner, "classification": classification, **markings}),
    )


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    rules = nation_bundle_rules("FRA", [("liaison", LIAISON)])
    return PolicyEngine(PolicyBundle.load().with_nation_rules({"FRA": rules}))


def test_accepted_rules_have_no_problems() -> None:
    assert problems_with_nation_rules("FRA", LIAISON) == []


@pytest.mark.parametrize(
    ("nation", "cedar", "message"),
    [
        (
            "DEU",
            LIAISON,
            "policy 'pol-liaison': a nation may only forbid, or permit on resources it owns: "
            'add `resource.owner == "DEU"`',
        ),
        (
            "FRA",
            '@id("all") permit (principal, action, resource);',
            "may only forbid, or permit on resources",
        ),
        # Ownership must be a required term, not one side of an "or".
        (
            "FRA",
            '@id("or") permit (principal, action, resource) when { resource.owner == "FRA" || true };',
            "may only forbid, or permit on resources",
        ),
        (
            "FRA",
            '@id("unless") permit (principal, action, resource) unless { resource.owner != "FRA" };',
            "may only forbid, or permit on resources",
        ),
        (
            "FRA",
            'forbid (principal, action, resource) when { principal.nationality == "POL" };',
            'policy #1: needs an @id("...") annotation',
        ),
        (
            "FRA",
            '@id("x") forbid (principal, action, resource);\n@id("x") forbid (principal, action, resource);',
            "policy 'x': @id is used twice",
        ),
        ("FRA", '@id("bad id!") forbid (principal, action, resource);', "@id must be 1-63 letters"),
        (
            "FRA",
            '@id("t") permit (principal == ?principal, action, resource) when { resource.owner == "FRA" };',
            "templates",
        ),
        (
            "FRA",
            '@id("x") forbid (principal, action, resource) when { resource.level > 2 };',
            "policy 'x': attribute `level` on entity type `Sovereign::Model` not found",
        ),
        (
            "FRA",
            '@id("x") forbid (principal, action, resource) when { principal.clearance == "SECRET" };',
            "does not validate against the schema",
        ),
        ("FRA", "forbid (principal, action", "not valid Cedar"),
        ("FRA", "// only a comment", "holds no policy"),
    ],
    ids=[
        "other-nations-resources",
        "unscoped-permit",
        "owner-in-an-or",
        "owner-in-unless",
        "no-id",
        "duplicate-id",
        "bad-id",
        "template",
        "unknown-attribute",
        "wrong-type",
        "syntax",
        "empty",
    ],
)
def test_refused_rules_say_why(nation: str, cedar: str, message: str) -> None:
    problems = problems_with_nation_rules(nation, cedar)
    assert any(message in p for p in problems), problems


def test_a_nations_permit_releases_its_own_resource_beyond_its_markings(engine: PolicyEngine) -> None:
    decision = engine.decide(user("POL", groups=["liaison"]), "invoke", [model("FRA")])
    assert decision.allowed
    assert decision.deciding_policy_ids == ["fra/liaison/pol-liaison"]
    assert not engine.decide(user("POL"), "invoke", [model("FRA")]).allowed


def test_a_disclosure_by_the_owner_adds_the_recipient_to_the_marking(engine: PolicyEngine) -> None:
    liaison = user("POL", groups=["liaison"])
    decision = engine.decide(liaison, "invoke", [model("FRA", releasableTo=["DEU"])])
    assert decision.allowed and decision.marking is not None
    assert decision.marking.releasable_to == ["DEU", "FRA", "POL"]
    assert decision.disclosed_by_owner == ("fra/liaison/pol-liaison",)
    released = engine.decide(user("DEU"), "invoke", [model("FRA", releasableTo=["DEU"])])
    assert released.marking is not None and released.marking.releasable_to == ["DEU", "FRA"]
    assert released.disclosed_by_owner == ()


def test_without_the_owners_disclosure_the_recipient_is_refused(engine: PolicyEngine) -> None:
    decision = engine.decide(user("POL"), "invoke", [model("FRA", releasableTo=["DEU"])])
    assert not decision.allowed and decision.marking is None
    assert decision.deciding_policy_ids == []  # no permit: the default deny
    denied = engine.decide(user("POL", groups=["liaison"]), "invoke", [model("FRA", deniedNations=["POL"])])
    assert not denied.allowed and denied.deciding_policy_ids == ["markings/limit-denied-nations"]


def test_a_nations_permit_cannot_lift_clearance_or_compartments(engine: PolicyEngine) -> None:
    low = engine.decide(user("POL", "NATO RESTRICTED", groups=["liaison"]), "invoke", [model("FRA")])
    assert not low.allowed and low.deciding_policy_ids == ["markings/limit-clearance"]
    atomal = engine.decide(user("POL", groups=["liaison"]), "invoke", [model("FRA", compartments=["ATOMAL"])])
    assert not atomal.allowed and atomal.deciding_policy_ids == ["markings/limit-compartments"]


def test_a_nations_forbid_wins_over_the_base_permit(engine: PolicyEngine) -> None:
    decision = engine.decide(user("EST"), "invoke", [model("FRA", releasableTo=["NATO"])])
    assert not decision.allowed
    assert decision.deciding_policy_ids == ["fra/liaison/no-est-on-models"]
    assert "forbidden by fra/liaison/no-est-on-models" in decision.reasons[0]


def test_rules_apply_only_to_requests_involving_their_nation(engine: PolicyEngine) -> None:
    # FRA forbids EST users on models, but a request between EST and DEU does not involve FRA.
    decision = engine.decide(user("EST"), "invoke", [model("DEU", releasableTo=["NATO"])])
    assert decision.allowed
    assert decision.deciding_policy_ids == ["markings/permit-cleared-releasable-compartmented"]


def test_a_bundle_names_every_nations_rules_in_its_version() -> None:
    base = PolicyBundle.load()
    with_rules = base.with_nation_rules({"FRA": nation_bundle_rules("FRA", [("liaison", LIAISON)])})
    assert with_rules.version != base.version
    assert with_rules.nations_with_rules == {"FRA"}
    assert "fra/liaison/pol-liaison" in with_rules.policies_for(["FRA"])
    assert "fra/liaison" not in with_rules.policies_for(["DEU", "EST"])
