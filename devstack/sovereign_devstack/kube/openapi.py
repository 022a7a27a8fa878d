"""A minimal OpenAPI v3 document set: enough for kubectl to see that every resource supports the
`fieldValidation` query parameter, so it validates server-side (no client-side schema download).

# k8s docs: /docs/concepts/overview/kubernetes-api/#openapi-v3
# k8s docs: /docs/reference/using-api/api-concepts/#field-validation
Schemas are not published (`kubectl explain` has nothing to show); the paths carry only the PATCH
operations with their x-kubernetes-group-version-kind, which is what kubectl's query-param check reads.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sovereign_devstack.kube import errors
from sovereign_devstack.kube.resource_types import Registry, ResourceType

_QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force")


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _gv_hash(registry: Registry, group: str, version: str) -> str:
    kinds = ",".join(sorted(f"{rt.plural}:{rt.kind}" for rt in registry.in_group_version(group, version)))
    return hashlib.sha256(kinds.encode()).hexdigest()[:32].upper()


def root(registry: Registry) -> dict[str, Any]:
    paths = {}
    for group, versions in registry.groups().items():
        for version in versions:
            gv = _gv_path(group, version)
            paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={_gv_hash(registry, group, version)}"}
    return {"paths": paths}


def _patch_operation(rt: ResourceType, version: str) -> dict[str, Any]:
    return {
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": version, "kind": rt.kind},
        "x-kubernetes-action": "patch",
        "operationId": f"patch{rt.kind}",
        "parameters": [
            {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
            for name in _QUERY_PARAMS
        ],
        "responses": {"200": {"description": "OK"}},
    }


def group_version(registry: Registry, group: str, version: str) -> dict[str, Any]:
    types = registry.in_group_version(group, version)
    if not types:
        raise errors.page_not_found()
    prefix = "/" + _gv_path(group, version)
    paths: dict[str, Any] = {}
    for rt in types:
        if "patch" not in rt.verbs:
            continue
        scope = f"{prefix}/namespaces/{{namespace}}" if rt.namespaced else prefix
        paths[f"{scope}/{rt.plural}/{{name}}"] = {"patch": _patch_operation(rt, version)}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def document(registry: Registry, path: str) -> dict[str, Any]:
    parts = path.strip("/").split("/")[2:]  # after "openapi/v3"
    if path.rstrip("/") == "/openapi/v3":
        return root(registry)
    if len(parts) == 2 and parts[0] == "api":
        return group_version(registry, "", parts[1])
    if len(parts) == 3 and parts[0] == "apis":
        return group_version(registry, parts[1], parts[2])
    raise errors.page_not_found()
