"""CRD structural schema admission: pruning, defaulting and kube-apiserver-style validation causes.

One Tenant-like schema; every case changes one thing in a valid object and asserts the exact result.
Expected messages follow apiextensions-apiserver (kubeOpenAPIResultToFieldErrors) + kube-openapi.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sovereign_devstack.kube.schema import (
    DUPLICATE,
    INVALID,
    NOT_SUPPORTED,
    REQUIRED,
    TOO_LONG,
    TOO_MANY,
    TYPE_INVALID,
    Cause,
    admit_custom_object,
    admit_custom_object_with_warnings,
    format_invalid_message,
)
from sovereign_devstack.kube.schema_causes import go_float, go_value

QUANTITY = {
    "x-kubernetes-int-or-string": True,
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "pattern": "^[0-9]+(m|Gi)?$",
}

TENANT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["displayName", "tier"],
            "properties": {
                "displayName": {"type": "string", "minLength": 3, "maxLength": 20},
                "slug": {"type": "string", "pattern": "^[a-z]+$"},
                "tier": {"type": "string", "enum": ["bronze", "silver", "gold"]},
                "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
                "weight": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "multipleOf": 0.5},
                "suspended": {"type": "boolean", "default": False},
                "quotas": {"type": "object", "maxProperties": 3, "additionalProperties": QUANTITY},
                "admins": {
                    "type": "array",
                    "maxItems": 2,
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string"},
                            "kind": {"type": "string", "enum": ["User", "Group"], "default": "User"},
                        },
                    },
                },
                "regions": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string"},
                    "x-kubernetes-list-type": "set",
                },
                "network": {
                    "type": "object",
                    "default": {},
                    "properties": {
                        "mtu": {"type": "integer", "format": "int32", "default": 1500},
                        "cidr": {"type": "string", "format": "cidr"},
                    },
                },
                "pools": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"size": {"type": "integer", "default": 1}},
                    },
                },
                "notes": {"type": "string", "nullable": True},
                "expiresAt": {"type": "string", "format": "date-time"},
                "code": {"type": "string", "format": "sovereign-code"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "extra": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"level": {"type": "object", "properties": {"n": {"type": "integer"}}}},
                },
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {"data": {"type": "object", "additionalProperties": {"type": "string"}}},
                },
            },
        },
        "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
    },
}

VALID: dict[str, Any] = {
    "apiVersion": "sovereign.ai/v1",
    "kind": "Tenant",
    "metadata": {"name": "acme", "namespace": "tenants", "labels": {"team": "a"}},
    "spec": {
        "displayName": "Acme Corp",
        "slug": "acme",
        "tier": "gold",
        "quotas": {"cpu": "4", "memory": "8Gi", "gpus": 2},
        "admins": [{"name": "alice"}],
        "regions": ["eu-west"],
    },
}

# What admission adds to VALID: the defaults.
DEFAULTED_SPEC = {
    **VALID["spec"],
    "admins": [{"name": "alice", "kind": "User"}],
    "replicas": 1,
    "suspended": False,
    "network": {"mtu": 1500},
}

_DELETE = object()


def changed(path: str, value: Any) -> dict:
    """A copy of VALID with the dotted ``path`` set (or deleted with _DELETE); ``[i]`` indexes lists."""
    obj = copy.deepcopy(VALID)
    parts = path.replace("[", ".[").split(".")
    node: Any = obj
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node.setdefault(part, {})
    last = parts[-1]
    key: Any = int(last[1:-1]) if last.startswith("[") else last
    if value is _DELETE:
        del node[key]
    else:
        node[key] = value
    return obj


def value_at(obj: Any, path: str) -> Any:
    """The value at a dotted path (``[i]`` indexes lists), or _DELETE when it is absent."""
    node = obj
    for part in path.replace("[", ".[").split("."):
        key: Any = int(part[1:-1]) if part.startswith("[") else part
        if isinstance(node, dict) and key not in node:
            return _DELETE
        node = node[key]
    return node


def table(names: str, rows: list[tuple]) -> pytest.MarkDecorator:
    """parametrize over rows whose first element is the readable test id."""
    return pytest.mark.parametrize(names, [row[1:] for row in rows], ids=[row[0] for row in rows])


def test_valid_object_is_admitted_with_defaults() -> None:
    admitted, causes = admit_custom_object(VALID, TENANT_SCHEMA)
    assert causes == []
    assert admitted == {**VALID, "spec": DEFAULTED_SPEC}


# (id, path changed in VALID, new value, expected causes as (reason, field, message))
# fmt: off
VALIDATION_CASES = [
    ("required", "spec.displayName", _DELETE, [(REQUIRED, "spec.displayName", "Required value")]),
    ("enum", "spec.tier", "platinum", [(NOT_SUPPORTED, "spec.tier",
        'Unsupported value: "platinum": supported values: "bronze", "silver", "gold"')]),
    ("type-string-for-integer", "spec.replicas", "three", [(TYPE_INVALID, "spec.replicas",
        'Invalid value: "string": spec.replicas in body must be of type integer: "string"')]),
    ("type-fraction-for-integer", "spec.replicas", 2.5, [(TYPE_INVALID, "spec.replicas",
        'Invalid value: "number": spec.replicas in body must be of type integer: "number"')]),
    ("integral-float-is-an-integer", "spec.replicas", 3.0, []),
    ("minimum", "spec.replicas", -1, [(INVALID, "spec.replicas",
        "Invalid value: -1: spec.replicas in body should be greater than or equal to 0")]),
    ("maximum", "spec.replicas", 11, [(INVALID, "spec.replicas",
        "Invalid value: 11: spec.replicas in body should be less than or equal to 10")]),
    ("exclusive-minimum", "spec.weight", 0, [(INVALID, "spec.weight",
        "Invalid value: 0: spec.weight in body should be greater than 0")]),
    ("multiple-of", "spec.weight", 0.3, [(INVALID, "spec.weight",
        "Invalid value: 0.3: spec.weight in body should be a multiple of 0.5")]),
    ("pattern", "spec.slug", "Acme", [(INVALID, "spec.slug",
        "Invalid value: \"Acme\": spec.slug in body should match '^[a-z]+$'")]),
    ("min-length", "spec.displayName", "Ac", [(INVALID, "spec.displayName",
        'Invalid value: "Ac": spec.displayName in body should be at least 3 chars long')]),
    ("max-length", "spec.displayName", "x" * 21, [(TOO_LONG, "spec.displayName",
        "Too long: may not be more than 20 bytes")]),
    ("max-items", "spec.admins", [{"name": "a"}, {"name": "b"}, {"name": "c"}], [(TOO_MANY, "spec.admins",
        "Too many: 3: must have at most 2 items")]),
    ("enum-in-array-item", "spec.admins[0].kind", "Robot", [(NOT_SUPPORTED, "spec.admins[0].kind",
        'Unsupported value: "Robot": supported values: "User", "Group"')]),
    ("required-in-array-item", "spec.admins", [{"name": "a"}, {"kind": "Group"}], [(REQUIRED,
        "spec.admins[1].name", "Required value")]),
    ("null-array-item", "spec.admins", [None], [(TYPE_INVALID, "spec.admins[0]",
        'Invalid value: "null": spec.admins[0] in body must be of type object: "null"')]),
    ("min-items", "spec.regions", [], [(INVALID, "spec.regions",
        "Invalid value: 0: spec.regions in body should have at least 1 items")]),
    ("list-type-set-duplicate", "spec.regions", ["eu", "us", "eu"], [(DUPLICATE, "spec.regions[2]",
        'Duplicate value: "eu"')]),
    ("int-or-string-wrong-type", "spec.quotas.cpu", True, [
        (TYPE_INVALID, "spec.quotas.cpu",
         'Invalid value: "boolean": spec.quotas.cpu in body must be of type integer,string: "boolean"'),
        (INVALID, "", 'Invalid value: "": "spec.quotas.cpu" must validate at least one schema (anyOf)'),
        (TYPE_INVALID, "spec.quotas.cpu",
         'Invalid value: "boolean": spec.quotas.cpu in body must be of type integer: "boolean"')]),
    ("additional-properties-pattern", "spec.quotas.memory", "8GB", [(INVALID, "spec.quotas.memory",
        "Invalid value: \"8GB\": spec.quotas.memory in body should match '^[0-9]+(m|Gi)?$'")]),
    ("max-properties", "spec.quotas.disk", "1Gi", [(TOO_MANY, "spec.quotas",
        "Too many: 4: must have at most 3 items")]),
    ("additional-properties-type", "spec.labels", {"team": 5}, [(TYPE_INVALID, "spec.labels.team",
        'Invalid value: "integer": spec.labels.team in body must be of type string: "integer"')]),
    ("format-date-time", "spec.expiresAt", "tomorrow", [(TYPE_INVALID, "spec.expiresAt",
        'Invalid value: "tomorrow": spec.expiresAt in body must be of type date-time: "tomorrow"')]),
    ("format-date-time-valid", "spec.expiresAt", "2026-11-27T05:00:00.5+01:00", []),
    ("format-cidr", "spec.network", {"cidr": "10.0.0.0/33"}, [(TYPE_INVALID, "spec.network.cidr",
        'Invalid value: "10.0.0.0/33": spec.network.cidr in body must be of type cidr: "10.0.0.0/33"')]),
    ("format-int32-is-not-range-checked", "spec.network", {"mtu": 2**40}, []),
    ("unknown-format-is-ignored", "spec.code", "anything at all", []),
    ("object-given-a-string", "spec", "tenant", [(TYPE_INVALID, "spec",
        'Invalid value: "string": spec in body must be of type object: "string"')]),
    ("nullable-null-is-valid", "spec.notes", None, []),
]
# fmt: on


@table("path, value, expected", VALIDATION_CASES)
def test_validation_causes(path: str, value: Any, expected: list[tuple[str, str, str]]) -> None:
    _, causes = admit_custom_object(changed(path, value), TENANT_SCHEMA)
    assert causes == [Cause(*cause) for cause in expected]


# fmt: off
COMPOSITION_CASES = [
    ("one-of-none", {"oneOf": [{"minimum": 5}, {"maximum": 1}]}, 3,
     '"n" must validate one and only one schema (oneOf). Found none valid'),
    ("one-of-two", {"oneOf": [{"minimum": 1}, {"maximum": 5}]}, 3,
     '"n" must validate one and only one schema (oneOf). Found 2 valid alternatives'),
    ("all-of", {"allOf": [{"minimum": 1}, {"maximum": 2}]}, 3, '"n" must validate all the schemas (allOf)'),
    ("not", {"not": {"minimum": 1}}, 3, '"n" must not validate the schema (not)'),
]
# fmt: on


@table("schema, value, message", COMPOSITION_CASES)
def test_composition_adds_a_root_cause(schema: dict, value: int, message: str) -> None:
    root = {"type": "object", "properties": {"n": {"type": "integer", **schema}}}
    _, causes = admit_custom_object({"n": value}, root)
    assert Cause(INVALID, "", f'Invalid value: "": {message}') in causes


def test_list_type_map_reports_duplicate_keys() -> None:
    item = {"type": "object", "properties": {"port": {"type": "integer"}, "protocol": {"type": "string"}}}
    ports_schema = {"type": "array", "items": item, "x-kubernetes-list-type": "map"}
    ports_schema["x-kubernetes-list-map-keys"] = ["port", "protocol"]
    ports = [
        {"port": 80, "protocol": "TCP"},
        {"port": 80, "protocol": "UDP"},
        {"port": 80, "protocol": "TCP"},
    ]
    _, causes = admit_custom_object(
        {"ports": ports}, {"type": "object", "properties": {"ports": ports_schema}}
    )
    assert causes == [Cause(DUPLICATE, "ports[2]", 'Duplicate value: {"port":80,"protocol":"TCP"}')]


CONFIG_MAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": {"a": "b"}}}

# (id, path changed in VALID, new value, value found at that path after admission, pruned paths)
# fmt: off
PRUNING_CASES = [
    ("unknown-spec-field", "spec.color", "blue", _DELETE, {"spec.color"}),
    ("unknown-root-field", "extraRoot", {"a": 1}, _DELETE, {"extraRoot"}),
    ("unknown-status-field", "status", {"phase": "Ready", "debug": True}, {"phase": "Ready"},
     {"status.debug"}),
    ("unknown-field-in-array-item", "spec.admins", [{"name": "a", "nickname": "al"}],
     [{"name": "a", "kind": "User"}], {"spec.admins[0].nickname"}),
    ("metadata-is-never-pruned", "metadata.whatever", {"kept": True}, {"kept": True}, set()),
    ("preserve-unknown-fields-keeps-unknowns", "spec.extra", {"free": {"x": [1]}, "level": {"n": 1}},
     {"free": {"x": [1]}, "level": {"n": 1}}, set()),
    ("preserve-unknown-fields-prunes-inside-known", "spec.extra", {"level": {"n": 1, "junk": 2}},
     {"level": {"n": 1}}, {"spec.extra.level.junk"}),
    ("embedded-resource-keeps-type-and-object-meta", "spec.template", {**CONFIG_MAP, "data": {"k": "v"}},
     {**CONFIG_MAP, "data": {"k": "v"}}, set()),
    ("embedded-resource-prunes-other-unknowns", "spec.template", {**CONFIG_MAP, "binaryData": {}},
     CONFIG_MAP, {"spec.template.binaryData"}),
]
# fmt: on


@table("path, value, admitted_value, pruned", PRUNING_CASES)
def test_pruning(path: str, value: Any, admitted_value: Any, pruned: set[str]) -> None:
    admitted, causes, pruned_paths = admit_custom_object_with_warnings(changed(path, value), TENANT_SCHEMA)
    assert (causes, set(pruned_paths)) == ([], pruned)
    assert value_at(admitted, path) == admitted_value


# (id, path changed in VALID, new value, value found at that path after admission)
# fmt: off
DEFAULTING_CASES = [
    ("non-nullable-null-with-default-is-defaulted", "spec.replicas", None, 1),
    ("explicit-zero-is-kept", "spec.replicas", 0, 0),
    ("non-nullable-null-without-default-is-pruned", "spec.slug", None, _DELETE),
    ("nullable-null-is-kept", "spec.notes", None, None),
    ("null-map-value-is-pruned", "spec.labels", {"team": None, "cost": "x"}, {"cost": "x"}),
    ("default-inside-additional-properties", "spec.pools", {"gpu": {}, "cpu": {"size": 4}},
     {"gpu": {"size": 1}, "cpu": {"size": 4}}),
    ("default-inside-array-items", "spec.admins", [{"name": "a"}, {"name": "g", "kind": "Group"}],
     [{"name": "a", "kind": "User"}, {"name": "g", "kind": "Group"}]),
    ("default-object-is-itself-defaulted", "spec.network", None, {"mtu": 1500}),
    ("given-object-gets-inner-defaults", "spec.network", {"cidr": "10.0.0.0/8"},
     {"cidr": "10.0.0.0/8", "mtu": 1500}),
]
# fmt: on


@table("path, value, admitted_value", DEFAULTING_CASES)
def test_defaulting(path: str, value: Any, admitted_value: Any) -> None:
    admitted, causes = admit_custom_object(changed(path, value), TENANT_SCHEMA)
    assert causes == []
    assert value_at(admitted, path) == admitted_value
    untouched = {k: v for k, v in DEFAULTED_SPEC.items() if k != path.split(".")[1]}
    assert {k: v for k, v in admitted["spec"].items() if k in untouched} == untouched


def test_input_is_not_mutated() -> None:
    obj = changed("spec.color", "blue")
    obj["spec"]["labels"] = {"x": None}
    before = copy.deepcopy(obj)
    admitted, _ = admit_custom_object(obj, TENANT_SCHEMA)
    assert obj == before
    admitted["spec"]["network"]["mtu"] = 9000  # defaults are copies, not the schema's own objects
    assert TENANT_SCHEMA["properties"]["spec"]["properties"]["network"]["default"] == {}


def test_no_schema_admits_everything() -> None:
    assert admit_custom_object({"spec": {"x": 1}}, None) == ({"spec": {"x": 1}}, [])


REQUIRED_CAUSE = Cause(REQUIRED, "spec.displayName", "Required value")
ENUM_CAUSE = Cause(NOT_SUPPORTED, "spec.tier", 'Unsupported value: "x": supported values: "a"')
# fmt: off
MESSAGE_CASES = [
    ("single-cause-unbracketed", [REQUIRED_CAUSE],
     'Tenant.sovereign.ai "acme" is invalid: spec.displayName: Required value'),
    ("several-causes-bracketed", [REQUIRED_CAUSE, ENUM_CAUSE],
     'Tenant.sovereign.ai "acme" is invalid: [spec.displayName: Required value, '
     'spec.tier: Unsupported value: "x": supported values: "a"]'),
    ("repeated-cause-listed-once", [REQUIRED_CAUSE, REQUIRED_CAUSE],
     'Tenant.sovereign.ai "acme" is invalid: spec.displayName: Required value'),
    ("no-causes", [], 'Tenant.sovereign.ai "acme" is invalid'),
]
# fmt: on


@table("causes, message", MESSAGE_CASES)
def test_format_invalid_message(causes: list[Cause], message: str) -> None:
    assert format_invalid_message("Tenant.sovereign.ai", "acme", causes) == message
    assert format_invalid_message("Tenant", "acme", causes, group="sovereign.ai") == message


def test_message_for_a_real_admission_failure() -> None:
    obj = changed("spec.tier", "platinum")
    del obj["spec"]["displayName"]
    _, causes = admit_custom_object(obj, TENANT_SCHEMA)
    assert format_invalid_message("Tenant.sovereign.ai", "acme", causes) == (
        'Tenant.sovereign.ai "acme" is invalid: [spec.tier: Unsupported value: "platinum": supported values: '
        '"bronze", "silver", "gold", spec.displayName: Required value]'
    )


# fmt: off
GO_VALUES = [
    ("float", 1.5, "1.5"), ("integral-float", 2.0, "2"), ("million-float", 1e6, "1e+06"),
    ("large-float", 123456.0, "123456"), ("small-float", 0.0001, "0.0001"), ("tiny-float", 1e-05, "1e-05"),
    ("negative-float", -2.25, "-2.25"), ("bool", True, "true"), ("int", 7, "7"),
    ("string", 'a"b', '"a\\"b"'), ("map-as-sorted-json", {"b": 1, "a": [1]}, '{"a":[1],"b":1}'),
    ("null", None, "null"),
]
# fmt: on


@table("value, text", GO_VALUES)
def test_values_render_like_go(value: Any, text: str) -> None:
    assert go_value(value) == text
    if isinstance(value, float):
        assert go_float(value) == text
