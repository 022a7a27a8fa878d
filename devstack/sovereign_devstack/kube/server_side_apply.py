"""An approximation of server-side apply (`kubectl apply --server-side`, PATCH application/apply-patch+yaml).

# k8s docs: /docs/reference/using-api/server-side-apply/
What is kept: apply creates a missing object, merges the applied configuration into a live one (by strategic
merge keys for built-in kinds, as JSON merge for custom resources) and requires a fieldManager.
What is not: managedFields, field ownership and conflicts — so fields dropped from a later applied
configuration are not removed, and `--force-conflicts` has nothing to force.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from sovereign_devstack.kube import errors
from sovereign_devstack.kube.resource_types import ResourceType

APPLY_PATCH = "application/apply-patch+yaml"


def is_apply(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == APPLY_PATCH


def applied_configuration(rt: ResourceType, name: str, text: str, params: dict[str, str]) -> dict[str, Any]:
    if not params.get("fieldManager"):
        raise errors.invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            [
                errors.field_cause(
                    "fieldManager", "Required value: is required for apply patch", "FieldValueRequired"
                )
            ],
        )
    try:
        intent = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise errors.bad_request(f"error decoding YAML: {exc}") from exc
    if not isinstance(intent, dict) or not intent.get("apiVersion") or not intent.get("kind"):
        raise errors.bad_request("apply patches must include apiVersion and kind")
    meta = intent.get("metadata") or {}
    if meta.get("name") not in (None, name):
        raise errors.bad_request(
            f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
        )
    intent.setdefault("metadata", {})["name"] = name
    return intent


def merged(current: dict[str, Any], intent: dict[str, Any], rt: ResourceType) -> dict[str, Any]:
    from sovereign_devstack.kube import patching  # the teammate's pure module

    kind = None if rt.is_custom else rt.kind
    media = (
        patching.STRATEGIC_MERGE_PATCH if patching.supports_strategic_merge(kind) else patching.MERGE_PATCH
    )
    try:
        return patching.apply_patch(current, json.dumps(intent), media, kind)
    except patching.PatchError as exc:
        raise errors.StatusError(exc.status, exc.reason, exc.message, {}) from exc
