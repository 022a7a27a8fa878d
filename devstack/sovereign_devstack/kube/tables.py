"""Server-side printing: `meta.k8s.io/v1` Tables for `kubectl get`.

# k8s docs: /docs/reference/using-api/api-concepts/#receiving-resources-as-tables
# k8s docs: /docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/
#           #additional-printer-columns
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from jsonpath_ng.ext import parse as parse_jsonpath

from sovereign_devstack.kube.resource_types import ResourceType

NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "priority": 0,
    "description": "Name must be unique within a namespace. "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/"
    "api-conventions.md#names",
}
AGE_COLUMN = {
    "name": "Age",
    "type": "date",
    "format": "",
    "priority": 0,
    "description": "CreationTimestamp is a timestamp representing the server time when this "
    "object was created.",
}


VIEWS = ("Table", "PartialObjectMetadata", "PartialObjectMetadataList")


def requested_view(accept: str) -> str | None:
    """The meta.k8s.io view the client asked for first (`application/json;as=Table;v=v1;g=meta.k8s.io`)."""
    for part in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[-1].strip() for p in part.split(";")[1:]}
        if params.get("as") in VIEWS and params.get("g") == "meta.k8s.io":
            return params["as"]
        if part.split(";")[0].strip() in ("application/json", "*/*", "application/yaml"):
            return None  # a plain representation comes first
    return None


def wants_table(accept: str) -> bool:
    return requested_view(accept) == "Table"


def partial_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """# k8s docs: /docs/reference/using-api/api-concepts/#receiving-resources-as-metadata-only"""
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def human_duration(seconds: float) -> str:
    """Like k8s.io/apimachinery/pkg/util/duration.HumanDuration, which kubectl's AGE shows."""
    s = max(int(seconds), 0)
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    y = d // 365
    return f"{y}y{d % 365}d" if y < 8 and d % 365 else f"{y}y"


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    # Clients (kopf's Events) send RFC 3339 with fractions and offsets; kube-apiserver accepts those too.
    try:
        created = datetime.fromisoformat(timestamp)
    except ValueError:
        return "<invalid>"
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return human_duration((datetime.now(UTC) - created).total_seconds())


@lru_cache(maxsize=512)
def _compiled(path: str) -> Any:
    # kube's JSONPath is relative (".spec.x"); jsonpath-ng wants a root.
    expr = path.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1]
    return parse_jsonpath("$" + expr if expr.startswith(".") or expr.startswith("[") else expr)


def _cell(obj: dict[str, Any], column: dict[str, Any]) -> Any:
    try:
        values = [m.value for m in _compiled(column["jsonPath"]).find(obj)]
    except Exception:  # a broken path prints nothing, as kube does for unresolvable columns
        return None
    if not values:
        return None
    if column.get("type") == "date":
        return age(values[0]) if isinstance(values[0], str) else None
    if len(values) == 1 and isinstance(values[0], (int, float, bool)) and column.get("type") != "string":
        return values[0]
    return ",".join(v if isinstance(v, str) else json.dumps(v) for v in values)


def column_definitions(rt: ResourceType, version: str) -> list[dict[str, Any]]:
    if rt.is_custom:
        columns = rt.printer_columns.get(version) or []
        if not columns:  # CRD defaulting adds an Age column when none are given
            return [NAME_COLUMN, AGE_COLUMN]
        return [NAME_COLUMN] + [
            {
                "name": c["name"],
                "type": c.get("type", "string"),
                "format": c.get("format", ""),
                "description": c.get("description", ""),
                "priority": c.get("priority", 0),
            }
            for c in columns
        ]
    extra = [
        {"name": n, "type": t, "format": "", "description": "", "priority": 0}
        for n, t, _ in rt.builtin_columns
    ]
    return [NAME_COLUMN, *extra, AGE_COLUMN] if rt.name_and_age else extra


def row_cells(rt: ResourceType, version: str, obj: dict[str, Any]) -> list[Any]:
    meta = obj.get("metadata") or {}
    if rt.is_custom:
        columns = rt.printer_columns.get(version) or []
        if not columns:
            return [meta.get("name"), age(meta.get("creationTimestamp"))]
        return [meta.get("name")] + [_cell(obj, c) for c in columns]
    cells = [fn(obj) for _, _, fn in rt.builtin_columns]
    return [meta.get("name"), *cells, age(meta.get("creationTimestamp"))] if rt.name_and_age else cells


def _row_object(obj: dict[str, Any], include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return partial_metadata(obj)


def table(
    rt: ResourceType,
    version: str,
    objects: list[dict[str, Any]],
    list_meta: dict[str, Any],
    include: str = "Metadata",
    headers: bool = True,
) -> dict[str, Any]:
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": row_cells(rt, version, obj)}
        row_object = _row_object(obj, include)
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    result: dict[str, Any] = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": column_definitions(rt, version) if headers else [],
        "rows": rows,
    }
    return result
