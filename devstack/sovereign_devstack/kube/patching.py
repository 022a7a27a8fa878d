"""The PATCH bodies kube-apiserver accepts, applied to a plain JSON object. Pure: no HTTP, no kmock.

Public API (the devstack API server imports these names):

``apply_patch(target, patch_body, content_type, kind) -> dict``
    Returns a NEW object; ``target`` is never mutated. ``patch_body`` is the raw request body (bytes/str)
    or an already-decoded JSON value. ``content_type`` may carry parameters (``; charset=utf-8``).
    ``kind`` is the object's kind (``ConfigMap``) or resource (``configmaps``); ``None`` or an unknown
    kind means a custom resource, for which strategic merge patch is refused with 415 like kube does
    (pass ``None`` for a custom resource whose kind happens to equal a built-in one).
``PatchError(status, message, reason)``
    ``.status`` is the HTTP code, ``.reason`` the Status reason (``BadRequest``, ``Invalid``,
    ``UnsupportedMediaType``, ``RequestEntityTooLarge``, ``InternalError``), ``.message`` the text.
``supports_strategic_merge(kind_or_resource) -> bool`` and ``accepted_patch_types(kind_or_resource)``.

Content types:
- ``application/merge-patch+json``: RFC 7386, null deletes; a body that is not a JSON object -> 400.
- ``application/json-patch+json``: RFC 6902 via the ``jsonpatch`` library; an undecodable body -> 400,
  an operation that does not apply (failed ``test``, missing path) -> 422, like the apiserver's handler.
- ``application/strategic-merge-patch+json``: see :mod:`.patching_strategic`.
- anything else -> 415 listing the accepted types (server-side apply is not implemented here).
# k8s docs: /docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch

from sovereign_devstack.kube.patching_strategic import (
    PatchError,
    strategic_merge_patch,
    supports_strategic_merge,
)

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "PatchError",
    "accepted_patch_types",
    "apply_patch",
    "supports_strategic_merge",
]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

# The apiserver caps JSON patches at this many operations (413 above it).
_MAX_JSON_PATCH_OPERATIONS = 10000
_JSON_PATCH_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})


def accepted_patch_types(kind_or_resource: str | None) -> list[str]:
    """The patch content types served for this kind, in kube-apiserver's order."""
    types = [JSON_PATCH, MERGE_PATCH]
    if supports_strategic_merge(kind_or_resource):
        types.append(STRATEGIC_MERGE_PATCH)
    return types


def apply_patch(target: dict, patch_body: bytes | str | Any, content_type: str, kind: str | None) -> dict:
    """Applies a PATCH request body to a copy of ``target`` and returns it."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    accepted = accepted_patch_types(kind)
    if media_type not in accepted:
        raise PatchError(
            415,
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(accepted),
            "UnsupportedMediaType",
        )
    if media_type == MERGE_PATCH:
        return _merge_patch_document(target, patch_body)
    if media_type == JSON_PATCH:
        return _json_patch_document(target, patch_body)
    patch = _decode(patch_body, "error decoding patch")
    if not isinstance(patch, dict):
        raise PatchError(400, "error decoding patch: patch is not a JSON object", "BadRequest")
    return strategic_merge_patch(target, patch, kind)


def _decode(body: bytes | str | Any, prefix: str) -> Any:
    if not isinstance(body, bytes | bytearray | str):
        return copy.deepcopy(body)
    try:
        return json.loads(body)
    except ValueError as error:
        raise PatchError(400, f"{prefix}: {error}", "BadRequest") from error


# --- RFC 7386 JSON merge patch ---
# k8s docs: /docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/
#   (section "Use a JSON merge patch to update a Deployment"); RFC 7386


def _merge_patch_document(target: dict, body: bytes | str | Any) -> dict:
    try:
        patch = _decode(body, "Invalid JSON Patch")
    except PatchError as error:
        raise PatchError(400, "Invalid JSON Patch", "BadRequest") from error
    if not isinstance(patch, dict):
        # evanphx/json-patch's MergePatch turns a non-object patch into ErrBadJSONPatch -> 400.
        raise PatchError(400, "Invalid JSON Patch", "BadRequest")
    return json_merge_patch(target, patch)


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` removes a member, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


# --- RFC 6902 JSON patch ---


def _json_patch_document(target: dict, body: bytes | str | Any) -> dict:
    operations = _decode(body, "error decoding patch")
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise PatchError(
            400, "json: cannot unmarshal patch: expected a JSON array of operations", "BadRequest"
        )
    if len(operations) > _MAX_JSON_PATCH_OPERATIONS:
        raise PatchError(
            413,
            f"The allowed maximum operations in a JSON patch is {_MAX_JSON_PATCH_OPERATIONS}, "
            f"got {len(operations)}",
            "RequestEntityTooLarge",
        )
    result: Any = copy.deepcopy(target)
    for operation in operations:
        # One at a time, so the error can name the failing operation like evanphx/json-patch does.
        op, path = operation.get("op"), operation.get("path")
        try:
            result = jsonpatch.JsonPatch([operation]).apply(result, in_place=True)
        except jsonpatch.JsonPatchTestFailed as error:
            raise PatchError(422, f"testing value {path} failed: test failed", "Invalid") from error
        except jsonpatch.InvalidJsonPatch as error:
            # evanphx/json-patch (the apiserver's library) words an unknown op as "Unexpected kind".
            known = op in _JSON_PATCH_OPS
            text = f"{op} operation is invalid: {error}" if known else f"Unexpected kind: {op}"
            raise PatchError(422, text, "Invalid") from error
        except (jsonpatch.JsonPatchConflict, jsonpatch.JsonPointerException) as error:
            raise PatchError(422, f"{op} operation does not apply: {error}: {path}", "Invalid") from error
        except (TypeError, KeyError, IndexError) as error:
            raise PatchError(422, f"{op} operation does not apply: {error!r}: {path}", "Invalid") from error
    if not isinstance(result, dict):
        raise PatchError(422, "the patched document is not a JSON object", "Invalid")
    return result
