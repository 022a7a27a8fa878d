"""The Cedar schema and the engine's entities, both generated from the domain model (sovereign.domain).

Markings and principals are described once, as pydantic models; this module maps their fields to Cedar
types (a Classification becomes its integer rank so that `>=` compares levels) and their values to Cedar
attribute values. `sovereign policy schema` writes the result to policies/cedar/schema.cedarschema.json.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sovereign.domain.markings import Classification, Markings, Principal, Resource, ResourceKind
from sovereign.policy_files import CEDAR_DIR

NAMESPACE = "Sovereign"
POLICY_DIR = CEDAR_DIR  # package data (sovereign.policy_files)
SCHEMA_PATH = POLICY_DIR / "schema.cedarschema.json"

# Actions and the resource kinds they apply to. Invoking a model over datasets reads them for the answer.
ACTIONS: dict[str, list[ResourceKind]] = {
    "invoke": [ResourceKind.model, ResourceKind.dataset],
    "read": [ResourceKind.dataset],
}
PRINCIPAL_TYPE = "User"
_RANK = {level: level.rank for level in Classification}


def _cedar_type(annotation: Any) -> dict[str, Any]:
    if annotation is Classification:
        return {"type": "Long"}
    if annotation is str:
        return {"type": "String"}
    if annotation is bool:
        return {"type": "Boolean"}
    origin = typing.get_origin(annotation)
    if origin in (list, set, frozenset):
        (item,) = typing.get_args(annotation)
        return {"type": "Set", "element": _cedar_type(item)}
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"optional attributes are not allowed in the policy model: {annotation}")
    raise TypeError(f"no Cedar type for {annotation!r}")


def cedar_shape(model: type[BaseModel]) -> dict[str, Any]:
    """The Cedar record type of a pydantic model: one required attribute per field, named by its alias."""
    attributes = {
        (field.alias or name): {**_cedar_type(field.annotation), "required": True}
        for name, field in model.model_fields.items()
    }
    return {"type": "Record", "attributes": dict(sorted(attributes.items()))}


def cedar_value(value: Any) -> Any:
    """A Python value of the domain model as a Cedar attribute value."""
    if isinstance(value, Classification):
        return value.rank
    if isinstance(value, list | tuple | set | frozenset):
        return [cedar_value(v) for v in value]
    return value


def cedar_attrs(instance: BaseModel) -> dict[str, Any]:
    return {
        (field.alias or name): cedar_value(getattr(instance, name))
        for name, field in type(instance).model_fields.items()
    }


def build_schema() -> dict[str, Any]:
    """The Cedar schema (JSON form) of the domain model."""
    entity_types: dict[str, Any] = {PRINCIPAL_TYPE: {"shape": cedar_shape(Principal)}}
    for kind in ResourceKind:
        entity_types[kind.value] = {"shape": cedar_shape(Markings)}
    actions = {
        name: {"appliesTo": {"principalTypes": [PRINCIPAL_TYPE], "resourceTypes": [k.value for k in kinds]}}
        for name, kinds in ACTIONS.items()
    }
    return {NAMESPACE: {"entityTypes": entity_types, "actions": actions}}


def render_schema() -> str:
    return json.dumps(build_schema(), indent=2, sort_keys=True) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    path.write_text(render_schema())
    return path


def principal_uid(principal: Principal) -> dict[str, str]:
    return {"type": f"{NAMESPACE}::{PRINCIPAL_TYPE}", "id": f"{principal.issuer_nation}/{principal.sub}"}


def resource_uid(resource: Resource) -> dict[str, str]:
    return {"type": f"{NAMESPACE}::{resource.kind.value}", "id": resource.name}


def action_uid(action: str) -> dict[str, str]:
    return {"type": f"{NAMESPACE}::Action", "id": action}


def principal_entity(principal: Principal) -> dict[str, Any]:
    return {"uid": principal_uid(principal), "attrs": cedar_attrs(principal), "parents": []}


def fast_principal_entity(user: Principal) -> dict[str, Any]:
    """`principal_entity(user)`, without its generic (and, for a Classification, slow) conversion.

    Values of exactly str, bool or int are their own Cedar value and a Classification is its rank, as in
    `cedar_value`; anything else goes through `cedar_value` itself.
    """
    attrs = {}
    for alias, name in _PRINCIPAL_FIELDS:
        value = getattr(user, name)
        kind = value.__class__
        if kind is Classification:
            attrs[alias] = _RANK[value]
        elif kind is str or kind is bool or kind is int:
            attrs[alias] = value
        else:
            attrs[alias] = cedar_value(value)
    return {"uid": principal_uid(user), "attrs": attrs, "parents": []}


_PRINCIPAL_FIELDS = tuple((field.alias or name, name) for name, field in Principal.model_fields.items())


def resource_entity(resource: Resource) -> dict[str, Any]:
    return {"uid": resource_uid(resource), "attrs": cedar_attrs(resource.markings), "parents": []}
