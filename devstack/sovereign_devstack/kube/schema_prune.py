"""Structural pruning and defaulting of a custom object, as kube-apiserver does before validation.

Pure functions that MUTATE the object they are given (the caller passes a deep copy);
:func:`sovereign_devstack.kube.schema.admit_custom_object` is the non-mutating entry point.

- :func:`prune_unknown_fields` drops fields the schema does not specify and returns their paths (what
  kube-apiserver reports as ``unknown field "spec.foo"`` warnings).
  # k8s docs: /docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#field-pruning
- :func:`prune_null_fields` drops ``null`` object fields whose schema is neither nullable nor defaulted.
- :func:`apply_defaults` sets ``default`` values on missing fields and on non-nullable nulls.
  # k8s docs: /docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#defaulting
  # k8s docs: same page, #defaulting-and-nullable
"""

from __future__ import annotations

import copy
from typing import Any

# apiVersion, kind and metadata are kept at the root and in x-kubernetes-embedded-resource objects: the
# CRD schema does not describe ObjectMeta, the generic metadata code handles it.
# k8s docs: /docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#embedded-resources
_META_FIELDS = frozenset({"apiVersion", "kind", "metadata"})


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _additional_schema(schema: dict) -> tuple[bool, dict | None]:
    """(whether additionalProperties is set, its schema). ``additionalProperties: true`` has no schema,
    so the values below it are pruned like values with no schema at all -- as apiextensions does."""
    additional = schema.get("additionalProperties")
    if additional is None or additional is False:
        return False, None
    return True, additional if isinstance(additional, dict) else None


def prune_unknown_fields(obj: Any, schema: dict | None, *, is_root: bool = True) -> list[str]:
    """Removes, in place, every object field not in ``properties``/``additionalProperties``, except under
    ``x-kubernetes-preserve-unknown-fields: true``. Returns the pruned paths."""
    if is_root:
        schema = {**(schema or {}), "x-kubernetes-embedded-resource": True}
    pruned: list[str] = []
    _prune(obj, schema, "", pruned)
    return pruned


def _prune(value: Any, schema: dict | None, path: str, pruned: list[str]) -> None:
    if schema is not None and schema.get("x-kubernetes-preserve-unknown-fields"):
        _prune_known_only(value, schema, path, pruned)
        return
    if isinstance(value, dict):
        if schema is None:  # an object where the schema says nothing: nothing in it is known
            pruned.extend(_child(path, key) for key in value)
            value.clear()
            return
        embedded = schema.get("x-kubernetes-embedded-resource", False)
        properties = schema.get("properties") or {}
        has_additional, additional = _additional_schema(schema)
        for key in list(value):
            if embedded and key in _META_FIELDS:
                continue
            if key in properties:
                _prune(value[key], properties[key], _child(path, key), pruned)
            elif has_additional:
                _prune(value[key], additional, _child(path, key), pruned)
            else:
                del value[key]
                pruned.append(_child(path, key))
    elif isinstance(value, list):
        items = schema.get("items") if schema is not None else None
        for index, item in enumerate(value):
            _prune(item, items if isinstance(items, dict) else None, f"{path}[{index}]", pruned)


def _prune_known_only(value: Any, schema: dict, path: str, pruned: list[str]) -> None:
    """Below preserve-unknown-fields, unknown fields stay but specified ones are still pruned inside."""
    if isinstance(value, dict):
        embedded = schema.get("x-kubernetes-embedded-resource", False)
        properties = schema.get("properties") or {}
        has_additional, additional = _additional_schema(schema)
        for key, item in value.items():
            if embedded and key in _META_FIELDS:
                continue
            if key in properties:
                _prune(item, properties[key], _child(path, key), pruned)
            elif has_additional:
                _prune(item, additional, _child(path, key), pruned)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _prune_known_only(item, schema["items"], f"{path}[{index}]", pruned)


def _field_schema(schema: dict | None, key: str) -> dict | None:
    if schema is None:
        return None
    properties = schema.get("properties") or {}
    if key in properties:
        return properties[key]
    return _additional_schema(schema)[1]


def prune_null_fields(obj: Any, schema: dict | None) -> None:
    """Removes, in place, object fields that are null while their schema is not nullable and has no
    default ("null values for fields that don't specify nullable: true are pruned before defaulting").
    Nulls in arrays cannot be dropped; validation reports them."""
    if isinstance(obj, dict):
        for key in list(obj):
            subschema = _field_schema(schema, key)
            if (
                obj[key] is None
                and subschema is not None
                and not subschema.get("nullable")
                and "default" not in subschema
            ):
                del obj[key]
            else:
                prune_null_fields(obj[key], subschema)
    elif isinstance(obj, list):
        items = schema.get("items") if schema is not None else None
        for item in obj:
            prune_null_fields(item, items if isinstance(items, dict) else None)


def _is_defaultable_null(value: Any, schema: dict | None) -> bool:
    return value is None and schema is not None and not schema.get("nullable") and "default" in schema


def _default_value(schema: dict) -> Any:
    """A fresh copy of the schema's default, pruned against the schema (apiextensions requires defaults
    to be pruned already, so this only protects against a CRD that skipped that check)."""
    value = copy.deepcopy(schema["default"])
    _prune(value, schema, "", [])
    return value


def apply_defaults(obj: Any, schema: dict | None) -> None:
    """Sets, in place, defaults for missing fields and for non-nullable nulls, in objects, array items
    and additionalProperties values; defaults are themselves defaulted (the recursion visits them)."""
    if schema is None:
        return
    if isinstance(obj, dict):
        properties = schema.get("properties") or {}
        for key, subschema in properties.items():
            if "default" not in subschema:
                continue
            if key not in obj or _is_defaultable_null(obj[key], subschema):
                obj[key] = _default_value(subschema)
        additional = _additional_schema(schema)[1]
        for key in list(obj):
            if key in properties:
                apply_defaults(obj[key], properties[key])
            elif additional is not None:
                if _is_defaultable_null(obj[key], additional):
                    obj[key] = _default_value(additional)
                apply_defaults(obj[key], additional)
    elif isinstance(obj, list):
        items = schema.get("items")
        if not isinstance(items, dict):
            return
        for index, item in enumerate(obj):
            if _is_defaultable_null(item, items):
                obj[index] = _default_value(items)
            apply_defaults(obj[index], items)
