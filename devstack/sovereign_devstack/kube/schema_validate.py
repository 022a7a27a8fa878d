"""Value validation of a custom object against a CRD ``openAPIV3Schema``, with kube-apiserver's causes
(:mod:`.schema_causes` renders them).

Pure functions, no I/O. The public entry point is :func:`validate_custom_object`; most callers want
:func:`sovereign_devstack.kube.schema.admit_custom_object`, which prunes and defaults first.

The checks and their order follow kube-openapi's ``validate.SchemaValidator`` (type, anyOf/oneOf/allOf/not,
string, format, number, array, enum, object) and the causes follow apiextensions-apiserver's
``kubeOpenAPIResultToFieldErrors``, which turns each kube-openapi error into a ``field.Error``:
Required -> ``Required value``; enum -> ``Unsupported value: "x": supported values: "a", "b"``;
maxLength -> ``Too long: may not be more than N bytes``; maxItems/maxProperties -> ``Too many: N: must
have at most M items``; wrong type or format -> ``Invalid value: "string": <path> in body must be of type
integer: "string"``; everything else -> ``Invalid value: <value>: <path> in body should ...``.
# k8s docs: /docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#validation

Not checked here: ``x-kubernetes-validations`` (CEL rules) are ignored for now; metadata.name and the
apiVersion/kind/metadata of embedded resources are the server's job; ``int32``/``int64``/``float``/
``double`` formats accept any integer/number, exactly like kube-apiserver (it does no range check).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
from typing import Any

from sovereign_devstack.kube.schema_causes import (
    DUPLICATE,
    INVALID,
    NOT_SUPPORTED,
    REQUIRED,
    TOO_LONG,
    TOO_MANY,
    TYPE_INVALID,
    Cause,
    go_json,
    go_number,
    go_quote,
    make_cause,
)

# --- formats: the ones apiextensions-apiserver registers; unknown formats are ignored like kube does ---
# k8s docs: /docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#format

_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,255}}$){_LABEL}(?:\.{_LABEL})*\.?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h|d|w))+$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


_FORMATS = {
    "date-time": _DATE_TIME.match,
    "datetime": _DATE_TIME.match,
    "date": _DATE.match,
    "uuid": _UUID.match,
    "ipv4": lambda s: _is_ip(s, 4),
    "ipv6": lambda s: _is_ip(s, 6),
    "cidr": _is_cidr,
    "hostname": _HOSTNAME.match,
    "email": _EMAIL.match,
    "byte": _is_base64,
    "duration": _DURATION.match,
    "mac": _MAC.match,
    "password": lambda s: True,
}


# --- the validator ---


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _schema_types(schema: dict) -> list[str]:
    if schema.get("x-kubernetes-int-or-string"):
        return ["integer", "string"]
    declared = schema.get("type")
    return [declared] if declared else []


def _type_matches(value: Any, actual: str, types: list[str]) -> bool:
    if actual in types:
        return True
    if actual == "number" and "integer" in types and float(value).is_integer():
        return True
    return actual == "integer" and "number" in types


def _equal(left: Any, right: Any) -> bool:
    """JSON equality: true and 1 are different values."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_equal(a, b) for a, b in zip(left, right, strict=True))
    return (type(left) is type(right) or {type(left), type(right)} <= {int, float}) and left == right


def validate_custom_object(obj: Any, schema: dict | None) -> list[Cause]:
    """All causes for ``obj`` (already pruned and defaulted) against ``schema``, schema errors first and
    then x-kubernetes-list-type duplicates, like the custom resource strategy."""
    if not schema:
        return []
    return _validate(obj, schema, "") + _validate_list_types(obj, schema, "")


def _validate(value: Any, schema: dict, path: str) -> list[Cause]:
    causes: list[Cause] = []
    types = _schema_types(schema)
    if value is None:
        if types and not schema.get("nullable"):
            causes.append(_type_cause(path, types, "null"))
        return causes + _check_enum(value, schema, path)
    actual = _json_type(value)
    if types and not _type_matches(value, actual, types):
        causes.append(_type_cause(path, types, actual))
    causes += _check_composition(value, schema, path)
    if isinstance(value, str):
        causes += _check_string(value, schema, path)
    if actual in ("integer", "number"):
        causes += _check_number(value, schema, path)
    if isinstance(value, list):
        causes += _check_array(value, schema, path)
    causes += _check_enum(value, schema, path)
    if isinstance(value, dict):
        causes += _check_object(value, schema, path)
    return causes


def _type_cause(path: str, types: list[str], actual: str) -> Cause:
    detail = f"{path} in body must be of type {','.join(types)}: {go_quote(actual)}"
    return make_cause(TYPE_INVALID, path, actual, detail)


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return make_cause(INVALID, path, value, f"{path} in body {detail}")


def _matches(pattern: str, value: str) -> bool:
    """Unanchored search like Go's regexp.MatchString; a pattern Python cannot compile (RE2 and Python
    syntax differ in corners) is not enforced rather than failing the request."""
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return True


def _check_string(value: str, schema: dict, path: str) -> list[Cause]:
    causes = []
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        limit = schema["maxLength"]
        causes.append(
            make_cause(TOO_LONG, path, detail=f"may not be more than {limit} byte{'s' * (limit != 1)}")
        )
    if "minLength" in schema and len(value) < schema["minLength"]:
        causes.append(_invalid(path, value, f"should be at least {schema['minLength']} chars long"))
    if "pattern" in schema and not _matches(schema["pattern"], value):
        causes.append(_invalid(path, value, f"should match '{schema['pattern']}'"))
    check = _FORMATS.get(schema.get("format", ""))
    if check is not None and not check(value):
        fmt = schema["format"]
        causes.append(
            make_cause(TYPE_INVALID, path, value, f"{path} in body must be of type {fmt}: {go_quote(value)}")
        )
    return causes


def _check_number(value: float | int, schema: dict, path: str) -> list[Cause]:
    causes = []
    factor = schema.get("multipleOf")
    if factor and (value / factor) != math.trunc(value / factor):
        causes.append(_invalid(path, value, f"should be a multiple of {go_number(factor)}"))
    if "maximum" in schema:
        limit = schema["maximum"]
        if schema.get("exclusiveMaximum") and value >= limit:
            causes.append(_invalid(path, value, f"should be less than {go_number(limit)}"))
        elif value > limit:
            causes.append(_invalid(path, value, f"should be less than or equal to {go_number(limit)}"))
    if "minimum" in schema:
        limit = schema["minimum"]
        if schema.get("exclusiveMinimum") and value <= limit:
            causes.append(_invalid(path, value, f"should be greater than {go_number(limit)}"))
        elif value < limit:
            causes.append(_invalid(path, value, f"should be greater than or equal to {go_number(limit)}"))
    return causes


def _check_array(value: list, schema: dict, path: str) -> list[Cause]:
    causes = []
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            causes += _validate(item, items, f"{path}[{index}]")
    if "minItems" in schema and len(value) < schema["minItems"]:
        causes.append(_invalid(path, len(value), f"should have at least {schema['minItems']} items"))
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        causes.append(_too_many(path, len(value), schema["maxItems"]))
    if schema.get("uniqueItems") and any(
        _equal(value[i], value[j]) for i in range(len(value)) for j in range(i + 1, len(value))
    ):
        causes.append(_invalid(path, "", "shouldn't contain duplicates"))
    return causes


def _too_many(path: str, actual: int, limit: int) -> Cause:
    return make_cause(TOO_MANY, path, actual, f"must have at most {limit} item{'s' * (limit != 1)}")


def _check_enum(value: Any, schema: dict, path: str) -> list[Cause]:
    allowed = schema.get("enum")
    if not allowed or any(_equal(value, candidate) for candidate in allowed):
        return []
    # NotSupported quotes each allowed value; non-strings are JSON-encoded first.
    shown = ", ".join(go_quote(v if isinstance(v, str) else go_json(v)) for v in allowed)
    return [make_cause(NOT_SUPPORTED, path, value, f"supported values: {shown}")]


def _check_object(value: dict, schema: dict, path: str) -> list[Cause]:
    causes = []
    size = len(value)
    if "minProperties" in schema and size < schema["minProperties"]:
        causes.append(_invalid(path, size, f"should have at least {schema['minProperties']} properties"))
    if "maxProperties" in schema and size > schema["maxProperties"]:
        causes.append(_too_many(path, size, schema["maxProperties"]))
    properties = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for key, item in value.items():
        if key in properties:
            continue
        if additional is False:
            causes.append(
                make_cause(INVALID, path, key, f"{_child(path, key)} in body is a forbidden property")
            )
        elif isinstance(additional, dict):
            causes += _validate(item, additional, _child(path, key))
    for key, subschema in properties.items():
        if key in value:
            causes += _validate(value[key], subschema, _child(path, key))
    for key in schema.get("required") or []:
        if key not in value:
            causes.append(make_cause(REQUIRED, _child(path, key)))
    return causes


def _composite(path: str, detail: str) -> Cause:
    # Not a *Validation error in kube-openapi: reported at the root field path with an empty value.
    return make_cause(INVALID, "", "", f"{go_quote(path)} {detail}")


def _check_composition(value: Any, schema: dict, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if schema.get("anyOf"):
        results = [_validate(value, sub, path) for sub in schema["anyOf"]]
        if all(results):
            causes.append(_composite(path, "must validate at least one schema (anyOf)"))
            causes += min(results, key=len)
    if schema.get("oneOf"):
        results = [_validate(value, sub, path) for sub in schema["oneOf"]]
        valid = sum(1 for result in results if not result)
        if valid != 1:
            found = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
            causes.append(_composite(path, f"must validate one and only one schema (oneOf). {found}"))
            if valid == 0:
                causes += min(results, key=len)
    if schema.get("allOf"):
        results = [_validate(value, sub, path) for sub in schema["allOf"]]
        for result in results:
            causes += result
        valid = sum(1 for result in results if not result)
        if valid != len(results):
            suffix = ". None validated" if valid == 0 else ""
            causes.append(_composite(path, f"must validate all the schemas (allOf){suffix}"))
    if isinstance(schema.get("not"), dict) and not _validate(value, schema["not"], path):
        causes.append(_composite(path, "must not validate the schema (not)"))
    return causes


# --- x-kubernetes-list-type: set and map lists must not repeat an element or a key ---
# k8s docs: /docs/reference/using-api/server-side-apply/#merge-strategy


def _validate_list_types(value: Any, schema: dict, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            subschema = properties.get(key, additional if isinstance(additional, dict) else None)
            if subschema:
                causes += _validate_list_types(item, subschema, _child(path, key))
    elif isinstance(value, list):
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set":
            causes += _duplicates(path, value, lambda item: item)
        elif list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            causes += _duplicates(
                path,
                value,
                lambda item: {k: item[k] for k in keys if k in item} if isinstance(item, dict) else item,
            )
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                causes += _validate_list_types(item, items, f"{path}[{index}]")
    return causes


def _duplicates(path: str, items: list, identity) -> list[Cause]:
    causes, seen = [], []
    for index, item in enumerate(items):
        key = identity(item)
        if any(_equal(key, earlier) for earlier in seen):
            causes.append(make_cause(DUPLICATE, f"{path}[{index}]", key))
        else:
            seen.append(key)
    return causes
