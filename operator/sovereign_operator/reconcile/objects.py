"""Level-based upsert of one Kubernetes object: read it, compare with the manifest, write only if different.

The comparison is "desired is contained in live": fields the API server adds (defaults, uid, status,
resourceVersion) are ignored, while a removed, added or changed field the operator owns counts as drift.
Writing nothing when nothing drifted keeps the steady state free of API writes.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from kubernetes.dynamic import DynamicClient

from sovereign.clients.kubernetes import create_object, merge_patch_object, read_object


class Outcome(StrEnum):
    unchanged = "unchanged"
    created = "created"
    updated = "updated"


def contains(live: Any, desired: Any) -> bool:
    """True if every field of `desired` is in `live` with the same value; lists must match item by item."""
    if isinstance(desired, dict):
        # An empty desired value matches an absent one: the API server omits empty lists and maps.
        return isinstance(live, dict) and all(
            contains(live[k], v) if k in live else v in ({}, []) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(a, b) for a, b in zip(live, desired, strict=True))
        )
    return bool(live == desired)


def ensure_object(dynamic: DynamicClient, desired: dict[str, Any]) -> Outcome:
    """Create `desired`, or merge-patch it onto the live object if any owned field differs."""
    metadata = desired["metadata"]
    live = read_object(
        dynamic, desired["apiVersion"], desired["kind"], metadata["name"], metadata.get("namespace")
    )
    if live is None:
        create_object(dynamic, desired)
        return Outcome.created
    if contains(live, desired):
        return Outcome.unchanged
    merge_patch_object(dynamic, desired)
    return Outcome.updated


def owned_by(manifest: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    """`manifest` with an ownerReference to `owner` (a Tenant), so deleting the owner collects it.

    k8s docs: /docs/concepts/overview/working-with-objects/owners-dependents/ — a cluster-scoped owner may
    own cluster-scoped and namespaced dependents.
    """
    reference = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    metadata = {**manifest["metadata"], "ownerReferences": [reference]}
    return {**manifest, "metadata": metadata}
