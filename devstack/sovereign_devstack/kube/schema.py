"""Admission of custom objects against a CRD's structural ``openAPIV3Schema``, as kube-apiserver does it.

Pure: no HTTP, no kmock. Public API (the devstack API server imports these names):

``admit_custom_object(obj, schema) -> (admitted_obj, causes)``
    Returns a NEW object (``obj`` is not mutated) after, in kube-apiserver's order: pruning unknown fields,
    dropping non-nullable nulls without a default, applying defaults, then validating. ``causes`` is a list
    of :class:`Cause`; when it is non-empty the server answers 422 ``Invalid``, with
    ``details.causes = [{"reason": c.reason, "field": c.field, "message": c.message}, ...]``.
``admit_custom_object_with_warnings(obj, schema) -> (admitted_obj, causes, pruned_paths)``
    The same, plus the pruned field paths, for ``Warning: unknown field "spec.x"`` headers.
``Cause(reason, field, message)``
    Frozen dataclass; ``reason`` is a field.ErrorType (``FieldValueRequired``, ``FieldValueInvalid``,
    ``FieldValueNotSupported``, ``FieldValueTypeInvalid``, ``FieldValueTooLong``, ``FieldValueTooMany``,
    ``FieldValueDuplicate``); ``str(cause)`` is ``"<field>: <message>"``.
``format_invalid_message(kind, name, causes, group="") -> str``
    The 422 Status ``message``: ``Tenant.sovereign.ai "acme" is invalid: [spec.a: Required value, ...]``.

What is validated, and what is not (``x-kubernetes-validations``), is listed in :mod:`.schema_validate`.
# k8s docs: /docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#validation
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from sovereign_devstack.kube.schema_causes import (
    DUPLICATE,
    INVALID,
    NOT_SUPPORTED,
    REQUIRED,
    TOO_LONG,
    TOO_MANY,
    TYPE_INVALID,
    Cause,
)
from sovereign_devstack.kube.schema_prune import apply_defaults, prune_null_fields, prune_unknown_fields
from sovereign_devstack.kube.schema_validate import validate_custom_object

__all__ = [
    "DUPLICATE",
    "INVALID",
    "NOT_SUPPORTED",
    "REQUIRED",
    "TOO_LONG",
    "TOO_MANY",
    "TYPE_INVALID",
    "Cause",
    "admit_custom_object",
    "admit_custom_object_with_warnings",
    "format_invalid_message",
]


def admit_custom_object_with_warnings(obj: dict, schema: dict | None) -> tuple[dict, list[Cause], list[str]]:
    """Prunes, defaults and validates a copy of ``obj``; also returns the pruned paths."""
    admitted = copy.deepcopy(obj)
    if not schema:  # apiextensions.k8s.io/v1 always has one; without it there is nothing to enforce
        return admitted, [], []
    pruned = prune_unknown_fields(admitted, schema)
    # "Null values for fields that either don't specify the nullable flag, or give it a false value,
    # will be pruned before defaulting happens. If a default is present, it will be applied."
    # k8s docs: /docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#defaulting-and-nullable  # noqa: E501
    prune_null_fields(admitted, schema)
    apply_defaults(admitted, schema)
    return admitted, validate_custom_object(admitted, schema), pruned


def admit_custom_object(obj: dict, schema: dict | None) -> tuple[dict, list[Cause]]:
    """Prunes, defaults and validates a copy of ``obj`` against ``schema`` (the CRD version's
    ``schema.openAPIV3Schema``). The caller answers 422 when the returned causes are non-empty."""
    admitted, causes, _ = admit_custom_object_with_warnings(obj, schema)
    return admitted, causes


def format_invalid_message(kind: str, name: str, causes: Iterable[Cause], group: str = "") -> str:
    """kube-apiserver's ``errors.NewInvalid`` message. ``kind`` is the qualified kind as GroupKind prints
    it (``Tenant.sovereign.ai``; plain ``ConfigMap`` for the core group) -- or pass ``group`` separately.
    Like ``field.ErrorList.ToAggregate()``, repeated messages are listed once and a single one is not
    bracketed."""
    qualified = f"{kind}.{group}" if group else kind
    messages: list[str] = []
    for cause in causes:
        text = str(cause)
        if text not in messages:
            messages.append(text)
    if not messages:
        return f'{qualified} "{name}" is invalid'
    body = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    return f'{qualified} "{name}" is invalid: {body}'
