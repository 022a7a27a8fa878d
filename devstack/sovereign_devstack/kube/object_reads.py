"""Get and list, with selectors, pagination and Table output.

# k8s docs: /docs/reference/using-api/api-concepts/#retrieving-large-results-sets-in-chunks
"""

from __future__ import annotations

import base64
import json
from typing import Any

from sovereign_devstack.kube import errors, selectors, tables
from sovereign_devstack.kube.resource_types import ResourceType
from sovereign_devstack.kube.store import Store


def present(rt: ResourceType, version: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the requested version shows it (conversion strategy None: only apiVersion changes)."""
    obj["apiVersion"] = rt.api_version(version)
    obj["kind"] = rt.kind
    return obj


def get_object(
    store: Store, rt: ResourceType, version: str, namespace: str | None, name: str
) -> dict[str, Any]:
    obj = store.get(rt.key, namespace if rt.namespaced else None, name)
    if obj is None:
        raise errors.not_found(rt.group, rt.plural, name)
    return present(rt, version, obj)


def _encode_continue(rv: int, after: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps({"rv": rv, "after": list(after)}).encode()).decode()


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), (data["after"][0], data["after"][1])
    except Exception as exc:
        raise errors.bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion"
        ) from exc


def list_objects(
    store: Store, rt: ResourceType, version: str, namespace: str | None, params: dict[str, str], accept: str
) -> dict[str, Any]:
    matcher = selectors.object_matcher(params)
    items = [o for o in store.list(rt.key, namespace if rt.namespaced else None) if matcher(o)]
    items.sort(key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
    list_meta: dict[str, Any] = {"resourceVersion": str(store.revision)}
    if params.get("continue"):
        rv, after = _decode_continue(params["continue"])
        list_meta["resourceVersion"] = str(rv)
        items = [o for o in items if (o["metadata"].get("namespace") or "", o["metadata"]["name"]) > after]
    limit = int(params.get("limit") or 0)
    if limit > 0 and len(items) > limit:
        last = items[limit - 1]["metadata"]
        list_meta["continue"] = _encode_continue(
            int(list_meta["resourceVersion"]), (last.get("namespace") or "", last["name"])
        )
        list_meta["remainingItemCount"] = len(items) - limit
        items = items[:limit]
    items = [present(rt, version, o) for o in items]
    view = tables.requested_view(accept)
    if view == "Table":
        return tables.table(rt, version, items, list_meta, params.get("includeObject", "Metadata"))
    if view == "PartialObjectMetadataList":
        return {
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": list_meta,
            "items": [tables.partial_metadata(o) for o in items],
        }
    return {
        "kind": f"{rt.kind}List",
        "apiVersion": rt.api_version(version),
        "metadata": list_meta,
        "items": items,
    }


def get_as(
    rt: ResourceType, version: str, obj: dict[str, Any], params: dict[str, str], accept: str
) -> dict[str, Any]:
    if tables.wants_table(accept):
        return tables.table(
            rt,
            version,
            [obj],
            {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
            params.get("includeObject", "Metadata"),
        )
    if tables.requested_view(accept) == "PartialObjectMetadata":
        return tables.partial_metadata(obj)
    return obj
