"""Kubernetes validation causes and the Go-style rendering of values inside their messages.

A :class:`Cause` is one ``details.causes`` entry of a 422 Status. Its ``message`` is what
``field.Error.ErrorBody()`` renders in kube-apiserver >= 1.34 (bad values: ``%v`` for numbers and bools,
``%q`` for strings, JSON for everything else; 1.32 printed maps with Go's ``%#v``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# Cause types, as in k8s.io/apimachinery/pkg/util/validation/field (metav1.CauseType).
REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
TYPE_INVALID = "FieldValueTypeInvalid"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
DUPLICATE = "FieldValueDuplicate"

_TITLES = {
    REQUIRED: "Required value",
    INVALID: "Invalid value",
    NOT_SUPPORTED: "Unsupported value",
    TYPE_INVALID: "Invalid value",
    TOO_LONG: "Too long",
    TOO_MANY: "Too many",
    DUPLICATE: "Duplicate value",
}


@dataclass(frozen=True)
class Cause:
    """One entry of a 422 Status' ``details.causes``: ``reason`` is the cause type, ``field`` the path
    (``spec.admins[0].kind``), ``message`` the text without the field (field.Error.ErrorBody())."""

    reason: str
    field: str
    message: str

    def __str__(self) -> str:  # field.Error.Error(): what the aggregated Status message lists
        return f"{self.field}: {self.message}"


_OMIT = object()


def make_cause(reason: str, field: str, bad_value: Any = _OMIT, detail: str = "") -> Cause:
    """Builds a cause the way field.Error.ErrorBody() renders it."""
    body = _TITLES[reason]
    if reason not in (REQUIRED, TOO_LONG) and bad_value is not _OMIT:
        body = f"{body}: {go_value(bad_value)}"
    if detail:
        body += f": {detail}"
    return Cause(reason, field, body)


# --- Go-style rendering of values (fmt %v / %q and encoding/json), so messages match byte for byte ---


def go_quote(text: str) -> str:
    """Go's %q for ordinary strings (printable unicode kept, quotes and backslashes escaped)."""
    return json.dumps(text, ensure_ascii=False)


def go_float(number: float) -> str:
    """Go's %v for a float64: strconv's 'g' with the shortest digits, which switches to the exponent
    form when the decimal exponent is < -4 or >= 6 (so 1e6 prints as ``1e+06``, 123456.0 as ``123456``)."""
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if math.isnan(number):
        return "NaN"
    if number == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(number)).normalize().as_tuple()
    text = "".join(map(str, digits))
    exp10 = len(text) + int(exponent) - 1
    prefix = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if exp10 < 0:
        return f"{prefix}0.{'0' * (-exp10 - 1)}{text}"
    if len(text) <= exp10 + 1:
        return prefix + text + "0" * (exp10 + 1 - len(text))
    return f"{prefix}{text[: exp10 + 1]}.{text[exp10 + 1 :]}"


def go_json(value: Any) -> str:
    """encoding/json.Marshal: compact, map keys sorted."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def go_value(value: Any) -> str:
    """How field.Error renders a bad value: %v for numbers and bools, %q for strings, JSON otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return go_quote(value)
    return go_json(value)


def go_number(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return str(int(value))
    return go_value(value)
