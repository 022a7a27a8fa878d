"""The published bundle round-trips, refuses a torn copy, and a stale bundle denies everything."""

from __future__ import annotations

import pytest

from sovereign.domain.markings import Markings, Principal, Resource, ResourceKind
from sovereign.policy.bundle import BundleError, PolicyBundle
from sovereign.policy.engine import PolicyEngine
from sovereign.policy.nation_rules import nation_bundle_rules

ALICE = Principal(sub="alice", nationality="FRA", clearance="NATO SECRET", issuer_nation="FRA")
ANALYST = Resource(
    kind=ResourceKind.model, name="fra/analyst", markings=Markings(owner="FRA", classification="NATO SECRET")
)
RULES = nation_bundle_rules("FRA", [("p", '@id("x") forbid (principal, action, resource) when { false };')])


def test_configmap_data_round_trips_with_its_version() -> None:
    bundle = PolicyBundle.load().with_nation_rules({"FRA": RULES})
    data = bundle.to_configmap_data()
    assert data["version"] == bundle.version and "nation-fra.cedar" in data
    assert PolicyBundle.from_configmap_data(data) == bundle


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d.update({"base.cedar": d["base.cedar"] + "\npermit (principal, action, resource);"}),
            "does not match its version",
        ),
        (lambda d: d.pop("nation-fra.cedar"), "does not match its version"),
        (lambda d: d.pop("version"), "has no 'version'"),
        (lambda d: d.update({"extra.txt": "x"}), "unexpected entry 'extra.txt'"),
    ],
    ids=["edited-base", "torn", "no-version", "unexpected-entry"],
)
def test_a_torn_or_edited_bundle_is_refused(edit, message: str) -> None:
    data = PolicyBundle.load().with_nation_rules({"FRA": RULES}).to_configmap_data()
    edit(data)
    with pytest.raises(BundleError, match=message):
        PolicyBundle.from_configmap_data(data)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bundle_not_confirmed_in_time_denies() -> None:
    clock = FakeClock()
    engine = PolicyEngine(PolicyBundle.load(), stale_after=30, clock=clock)
    assert engine.decide(ALICE, "invoke", [ANALYST]).allowed
    clock.now += 31
    decision = engine.decide(ALICE, "invoke", [ANALYST])  # cached allow must not survive staleness
    assert not decision.allowed
    assert (
        "stale policy bundle" in decision.reasons[0]
        and "not confirmed current for 31s" in decision.reasons[0]
    )
    engine.confirm_current(engine.bundle.version)
    assert engine.decide(ALICE, "invoke", [ANALYST]).allowed


def test_a_superseded_bundle_denies_until_replaced() -> None:
    engine = PolicyEngine(PolicyBundle.load())
    newer = PolicyBundle.load().with_nation_rules({"FRA": RULES})
    engine.confirm_current(newer.version)
    decision = engine.decide(ALICE, "invoke", [ANALYST])
    assert not decision.allowed
    current = engine.bundle.version
    assert decision.reasons == [
        f"stale policy bundle: deciding with {current} but the current bundle is {newer.version}"
    ]
    assert PolicyEngine(newer).decide(ALICE, "invoke", [ANALYST]).allowed
