"""Fail closed: invalid input, unknown resources, engine errors and missing attributes deny with a reason."""

from __future__ import annotations

import cedarpy
import pytest

from sovereign.domain.markings import Markings, Principal, Resource, ResourceKind
from sovereign.policy import engine as engine_module
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.engine import PolicyEngine, decide
from sovereign.policy.schema import action_uid, principal_entity, principal_uid, resource_entity, resource_uid

ALICE = Principal(sub="alice", nationality="FRA", clearance="NATO SECRET", issuer_nation="FRA")
ANALYST = Resource(
    kind=ResourceKind.model, name="fra/analyst", markings=Markings(owner="FRA", classification="NATO SECRET")
)


def test_the_baseline_is_allowed() -> None:
    assert decide(ALICE, "invoke", [ANALYST]).allowed


@pytest.mark.parametrize(
    ("principal", "resources", "reason"),
    [
        (
            {"sub": "a", "nationality": "FRA", "issuerNation": "FRA"},
            [ANALYST],
            "invalid principal: clearance",
        ),
        ({**ALICE.model_dump(by_alias=True), "clearance": "TOP SECRET"}, [ANALYST], "invalid principal"),
        ({**ALICE.model_dump(by_alias=True), "nationality": "XXX"}, [ANALYST], "invalid principal"),
        (ALICE, [], "no resource"),
        (ALICE, ["fra/unknown"], "unknown resource 'fra/unknown'"),
        (
            ALICE,
            [{"kind": "Model", "name": "fra/x", "markings": {"owner": "FRA", "releasableTo": []}}],
            "invalid resource: markings.classification",
        ),
        (
            ALICE,
            [{"kind": "Model", "name": "fra/x", "markings": {"owner": "FRA", "classification": "SECRET"}}],
            "invalid resource",
        ),
        (
            ALICE,
            [
                ANALYST,
                ANALYST.model_copy(
                    update={"markings": Markings(owner="FRA", classification="NATO RESTRICTED")}
                ),
            ],
            "conflicting markings",
        ),
    ],
    ids=[
        "missing-clearance",
        "unknown-clearance",
        "unknown-nation",
        "no-resource",
        "unknown-resource-name",
        "resource-missing-classification",
        "resource-unknown-classification",
        "same-resource-two-markings",
    ],
)
def test_invalid_requests_are_denied_with_a_reason(principal, resources, reason: str) -> None:
    decision = decide(principal, "invoke", resources)
    assert not decision.allowed
    assert decision.marking is None
    assert reason in decision.reasons[0]


def test_an_action_that_does_not_apply_to_the_resource_is_denied() -> None:
    decision = decide(ALICE, "read", [ANALYST])  # read applies to datasets only
    assert not decision.allowed and "policy evaluation error" in decision.reasons[0]


def test_an_unknown_action_is_denied() -> None:
    decision = decide(ALICE, "delete", [ANALYST])
    assert not decision.allowed and decision.reasons


def test_a_known_resource_name_is_resolved_from_the_catalogue() -> None:
    engine = PolicyEngine(PolicyBundle.load(), catalogue={ANALYST.name: ANALYST})
    assert engine.decide(ALICE, "invoke", ["fra/analyst"]).allowed
    assert not engine.decide(ALICE, "invoke", ["fra/analyst", "deu/other"]).allowed


def test_an_engine_error_is_a_deny(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = PolicyEngine(PolicyBundle.load())

    def broken(*_args, **_kwargs):
        raise RuntimeError("engine exploded")

    monkeypatch.setattr(engine_module.cedarpy, "is_authorized_batch", broken)
    decision = engine.decide(ALICE, "invoke", [ANALYST])
    assert not decision.allowed and "engine exploded" in decision.reasons[0]


def test_an_unavailable_bundle_is_a_deny(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken():
        raise ValueError("bundle missing")

    monkeypatch.setattr(engine_module, "default_engine", broken)
    decision = decide(ALICE, "invoke", [ANALYST])
    assert not decision.allowed and "bundle missing" in decision.reasons[0]


def test_a_bundle_that_does_not_validate_is_refused() -> None:
    bundle = PolicyBundle.load()
    bad = PolicyBundle(
        schema=bundle.schema, base="permit(principal, action, resource) when { resource.level > 1 };"
    )
    with pytest.raises(ValueError, match="does not validate"):
        PolicyEngine(bad)


def test_cedar_itself_rejects_an_entity_missing_its_classification() -> None:
    # The measured pitfall: without the schema a resource missing classification slipped through a forbid.
    engine = PolicyEngine(PolicyBundle.load())
    entity = resource_entity(ANALYST)
    del entity["attrs"]["classification"]
    request = {
        "principal": principal_uid(ALICE),
        "action": action_uid("invoke"),
        "resource": resource_uid(ANALYST),
        "context": {},
    }
    schema = cedarpy.Schema.from_json_str(engine.bundle.schema)
    result = cedarpy.is_authorized(request, engine.bundle.policies, [principal_entity(ALICE), entity], schema)
    assert result.decision != cedarpy.Decision.Allow
    assert any("classification" in str(e) for e in result.diagnostics.errors)


def test_decisions_are_cached_per_bundle_version(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = PolicyEngine(PolicyBundle.load())
    first = engine.decide(ALICE, "invoke", [ANALYST])
    calls = []
    real = engine_module.cedarpy.is_authorized_batch
    monkeypatch.setattr(
        engine_module.cedarpy, "is_authorized_batch", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    assert engine.decide(ALICE, "invoke", [ANALYST]) is first
    assert calls == []
    # Another principal attribute is another key.
    engine.decide(ALICE.model_copy(update={"compartments": ["ATOMAL"]}), "invoke", [ANALYST])
    assert calls == [1]
    # A new bundle (another version) never reuses the old decisions.
    base = PolicyBundle.load()
    newer = PolicyEngine(PolicyBundle(schema=base.schema, base=base.base + "\n// v2\n"))
    assert newer.bundle.version != engine.bundle.version
    newer.decide(ALICE, "invoke", [ANALYST])
    assert calls == [1, 1]
