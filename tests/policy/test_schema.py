"""The Cedar schema is generated from the domain model; the committed file must not be stale."""

from __future__ import annotations

import json

import cedarpy
from pydantic import BaseModel

from sovereign.domain.markings import Markings, Principal
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.schema import NAMESPACE, SCHEMA_PATH, build_schema, render_schema


def test_committed_schema_is_generated_from_the_domain_model() -> None:
    assert SCHEMA_PATH.read_text() == render_schema(), "stale schema: run `sovereign policy schema`"


def _aliases(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_every_field_of_the_domain_model_is_a_required_cedar_attribute() -> None:
    types = build_schema()[NAMESPACE]["entityTypes"]
    for kind in ("Model", "Dataset"):
        attributes = types[kind]["shape"]["attributes"]
        assert set(attributes) == _aliases(Markings)
        assert all(a["required"] for a in attributes.values())
    assert set(types["User"]["shape"]["attributes"]) == _aliases(Principal)


def test_classification_and_clearance_are_integer_ranks() -> None:
    types = build_schema()[NAMESPACE]["entityTypes"]
    assert types["Model"]["shape"]["attributes"]["classification"]["type"] == "Long"
    assert types["User"]["shape"]["attributes"]["clearance"]["type"] == "Long"


def test_base_policies_validate_against_the_schema_and_carry_ids() -> None:
    bundle = PolicyBundle.load()
    assert bundle.validate() == []
    static = json.loads(cedarpy.policies_to_json_str(bundle.policies))["staticPolicies"]
    ids = [body["annotations"]["id"] for body in static.values()]
    assert len(ids) == len(set(ids))
    for policy_id, body in zip(ids, static.values(), strict=True):
        assert policy_id.startswith("markings/") and policy_id == policy_id.lower()
        assert (body["effect"] == "forbid") == policy_id.startswith("markings/limit-")
    # One permit: one positive condition.
    assert sum(body["effect"] == "permit" for body in static.values()) == 1
    assert all(c["kind"] == "when" for body in static.values() for c in body["conditions"])
