"""Kubernetes strategic merge patch for the built-in kinds the devstack serves. Pure; used by .patching.

The algorithm follows k8s.io/apimachinery/pkg/util/strategicpatch (mergeMap / mergeSlice) with the options
the apiserver uses when applying a patch (parallel deletion lists merged, unmatched nulls ignored):
- maps merge recursively; ``null`` deletes a key; lists without a strategy are replaced atomically;
- lists with ``patchStrategy: merge`` merge by ``patchMergeKey`` (lists of scalars merge as sets);
- directives: ``$patch: replace|delete`` in maps, ``$patch: replace|delete`` items in merged lists,
  ``$retainKeys``, ``$deleteFromPrimitiveList/<field>``, ``$setElementOrder/<field>``.
# k8s docs: /docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/ (strategic merge notes)
# design: git.k8s.io/design-proposals-archive/cli/preserve-order-in-strategic-merge-patch.md

The strategies come from the ``patchStrategy``/``patchMergeKey`` tags in k8s.io/api (core/v1, apps/v1,
admissionregistration/v1) and k8s.io/apimachinery (ObjectMeta). One deliberate difference: the apiserver
decodes the merged map into the typed object, which drops ``null``s and ``$`` directives left in newly
added values; this emulator stores plain JSON, so they are dropped here instead.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any


class PatchError(Exception):
    """A patch the apiserver would refuse: ``status`` is the HTTP code, ``reason`` the Status reason."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or {400: "BadRequest", 415: "UnsupportedMediaType", 422: "Invalid"}.get(
            status, "InternalError"
        )


def _bad_request(message: str) -> PatchError:
    return PatchError(400, message, "BadRequest")


def _internal(message: str) -> PatchError:
    # strategicpatch errors the apiserver does not classify reach the client as 500 InternalError.
    return PatchError(500, message, "InternalError")


_PRIMITIVE_LIST_ERROR = "invalid patch format of primitive list"
_RETAIN_KEYS_ERROR = "invalid patch format of retainKeys"
_ORDER_LIST_ERROR = "invalid patch format of setElementOrder list"
_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_PREFIX = "$deleteFromPrimitiveList/"
_ORDER_PREFIX = "$setElementOrder/"


@dataclass(frozen=True)
class Field:
    """Patch metadata of one struct field: the struct type of its value (or of its list items)."""

    type: str | None = None
    strategy: str = ""  # "", "merge", "replace"; retainKeys only matters when kubectl builds the patch
    key: str = ""


_MERGE = "merge"
_META = Field("ObjectMeta")
_CONDITIONS = Field(None, _MERGE, "type")
_STATUS_CONDITIONS = {"conditions": _CONDITIONS}
_POD_TEMPLATE = Field("PodTemplateSpec")

# struct name -> {json field -> Field}. Fields not listed are maps (merged) or atomic lists (replaced).
_TYPES: dict[str, dict[str, Field]] = {
    "ObjectMeta": {"finalizers": Field(None, _MERGE), "ownerReferences": Field(None, _MERGE, "uid")},
    "PodTemplateSpec": {"metadata": _META, "spec": Field("PodSpec")},
    "PodSpec": {
        "volumes": Field(None, _MERGE, "name"),
        "initContainers": Field("Container", _MERGE, "name"),
        "containers": Field("Container", _MERGE, "name"),
        "ephemeralContainers": Field("Container", _MERGE, "name"),
        "imagePullSecrets": Field(None, _MERGE, "name"),
        "hostAliases": Field(None, _MERGE, "ip"),
        "topologySpreadConstraints": Field(None, _MERGE, "topologyKey"),
        "schedulingGates": Field(None, _MERGE, "name"),
        "resourceClaims": Field(None, _MERGE, "name"),
    },
    "Container": {
        "ports": Field(None, _MERGE, "containerPort"),
        "env": Field(None, _MERGE, "name"),
        "volumeMounts": Field(None, _MERGE, "mountPath"),
        "volumeDevices": Field(None, _MERGE, "devicePath"),
    },
    "PodStatus": {
        **_STATUS_CONDITIONS,
        "podIPs": Field(None, _MERGE, "ip"),
        "hostIPs": Field(None, _MERGE, "ip"),
    },
    "Conditions": _STATUS_CONDITIONS,
    "WorkloadSpec": {"template": _POD_TEMPLATE},
    "JobTemplateSpec": {"metadata": _META, "spec": Field("WorkloadSpec")},
    "CronJobSpec": {"jobTemplate": Field("JobTemplateSpec")},
    "ServiceSpec": {"ports": Field(None, _MERGE, "port")},
    "NodeSpec": {"podCIDRs": Field(None, _MERGE)},
    "NodeStatus": {**_STATUS_CONDITIONS, "addresses": Field(None, _MERGE, "type")},
    "Webhook": {"matchConditions": Field(None, _MERGE, "name")},
    "ValidatingAdmissionPolicySpec": {"matchConditions": Field(None, _MERGE, "name")},
    "PodDisruptionBudgetSpec": {"selector": Field(None, "replace")},
}


def _root(**fields: Field) -> dict[str, Field]:
    return {"metadata": _META, **fields}


_WORKLOAD = _root(spec=Field("WorkloadSpec"), status=Field("Conditions"))
_WEBHOOKS = _root(webhooks=Field("Webhook", _MERGE, "name"))
# Kinds whose patchable fields have no strategy besides ObjectMeta's.
# fmt: off
_METADATA_ONLY = [
    "ConfigMap", "Secret", "ResourceQuota", "LimitRange", "Endpoints", "Event", "Lease",
    "NetworkPolicy", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "PersistentVolume",
    "PriorityClass", "StorageClass", "Ingress", "IngressClass", "CustomResourceDefinition", "APIService",
    "EndpointSlice", "CSIDriver", "RuntimeClass",
]
# fmt: on

# kind -> root fields. Every kind listed here accepts strategic merge patch.
_KINDS: dict[str, dict[str, Field]] = {
    **{kind: _root() for kind in _METADATA_ONLY},
    "ServiceAccount": _root(secrets=Field(None, _MERGE, "name")),
    "Namespace": _root(status=Field("Conditions")),
    "Service": _root(spec=Field("ServiceSpec"), status=Field("Conditions")),
    "Pod": _root(spec=Field("PodSpec"), status=Field("PodStatus")),
    "PodTemplate": _root(template=_POD_TEMPLATE),
    "Node": _root(spec=Field("NodeSpec"), status=Field("NodeStatus")),
    "Deployment": _WORKLOAD,
    "StatefulSet": _WORKLOAD,
    "DaemonSet": _WORKLOAD,
    "ReplicaSet": _WORKLOAD,
    "ReplicationController": _WORKLOAD,
    "Job": _WORKLOAD,
    "CronJob": _root(spec=Field("CronJobSpec")),
    "PersistentVolumeClaim": _root(status=Field("Conditions")),
    "HorizontalPodAutoscaler": _root(status=Field("Conditions")),
    "PodDisruptionBudget": _root(spec=Field("PodDisruptionBudgetSpec"), status=Field("Conditions")),
    "ValidatingWebhookConfiguration": _WEBHOOKS,
    "MutatingWebhookConfiguration": _WEBHOOKS,
    "ValidatingAdmissionPolicy": _root(
        spec=Field("ValidatingAdmissionPolicySpec"), status=Field("Conditions")
    ),
    "ValidatingAdmissionPolicyBinding": _root(),
}


def _plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("endpoints"):
        return lower
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + ("es" if lower.endswith("s") else "s")


_BY_NAME = {name: kind for kind in _KINDS for name in (kind, kind.lower(), _plural(kind))}


def supports_strategic_merge(kind_or_resource: str | None) -> bool:
    """True for the built-in kinds above (by kind, lower-case kind or plural resource). Custom resources
    have no Go struct tags, so kube-apiserver does not serve strategic merge patch for them (415)."""
    return bool(kind_or_resource) and kind_or_resource in _BY_NAME


def strategic_merge_patch(target: dict, patch: dict, kind: str | None) -> dict:
    """Applies a decoded strategic merge patch to a copy of ``target``."""
    if not supports_strategic_merge(kind):
        raise PatchError(
            415,
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json",
            "UnsupportedMediaType",
        )
    fields = _KINDS[_BY_NAME[kind]]  # type: ignore[index]
    return _merge_map(copy.deepcopy(target), copy.deepcopy(patch), fields)


def _fields_of(field: Field) -> dict[str, Field]:
    return _TYPES.get(field.type or "", {})


def _kind_of(value: Any) -> str:
    # reflect.TypeOf on decoded JSON: numbers are all float64 there, so int and float are one kind here.
    if isinstance(value, dict | list | str | bool):
        return type(value).__name__
    return "number" if isinstance(value, int | float) else "null"


def _clean(value: Any) -> tuple[Any, bool]:
    """removeDirectives + discardNullValuesFromPatch: (value, keep)."""
    if isinstance(value, dict):
        if _DIRECTIVE in value:
            return None, False
        cleaned = {}
        for key, item in value.items():
            if item is None or key.startswith(("$retainKeys", _DELETE_PREFIX, _ORDER_PREFIX)):
                continue
            item, keep = _clean(item)
            if keep:
                cleaned[key] = item
        return cleaned, True
    if isinstance(value, list):
        return [item for item, keep in map(_clean, value) if keep], True
    return value, True


def _merge_map(original: dict, patch: dict, fields: dict[str, Field]) -> dict:
    if _DIRECTIVE in patch:
        directive = patch.pop(_DIRECTIVE)
        if directive == "replace":
            return _clean(patch)[0]
        if directive == "delete":
            return {}
        raise _internal(f"unknown patch type: {directive} in map: {patch}")
    _apply_retain_keys(original, patch)
    _apply_element_orders(original, patch, fields)
    for key, patch_value in patch.items():
        is_delete_list = key.startswith(_DELETE_PREFIX)
        if is_delete_list:
            key = key[len(_DELETE_PREFIX) :]
        elif key.startswith("$deleteFromPrimitiveList"):
            raise _bad_request(_PRIMITIVE_LIST_ERROR)
        if patch_value is None:
            original.pop(key, None)
            continue
        if key not in original or _kind_of(original[key]) != _kind_of(patch_value):
            if not is_delete_list:
                value, keep = _clean(patch_value)
                if keep:
                    original[key] = value
                else:
                    original.pop(key, None)
            continue
        field = fields.get(key, Field())
        if isinstance(patch_value, dict):
            original[key] = (
                _clean(patch_value)[0]
                if field.strategy == "replace"
                else _merge_map(original[key], patch_value, _fields_of(field))
            )
        elif isinstance(patch_value, list):
            if field.strategy == _MERGE or is_delete_list:
                original[key] = _merge_list(original[key], patch_value, field, is_delete_list)
            else:
                original[key] = _clean(patch_value)[0]
        else:
            original[key] = patch_value
    return original


def _apply_retain_keys(original: dict, patch: dict) -> None:
    """``$retainKeys``: keep only the listed keys of the live map (e.g. a Deployment's strategy)."""
    if _RETAIN_KEYS not in patch:
        return
    retained = patch.pop(_RETAIN_KEYS)
    if not isinstance(retained, list):
        raise _bad_request(_RETAIN_KEYS_ERROR)
    for key, value in patch.items():
        directive = key.startswith(("$deleteFromPrimitiveList", "$setElementOrder"))
        if value is not None and not directive and key not in retained:
            raise _bad_request(_RETAIN_KEYS_ERROR)
    for key in list(original):
        if key not in retained:
            del original[key]


def _merge_value(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, dict) else item


def _index(items: list, value: Any, key: str) -> int:
    wanted = _merge_value(value, key)
    return next((i for i, item in enumerate(items) if _merge_value(item, key) == wanted), -1)


def _element_kind(*lists: list | None) -> str | None:
    kinds = {_kind_of(item) for items in lists for item in items or []}
    if "list" in kinds:
        raise PatchError(422, "lists of lists are not supported", "Invalid")
    if len(kinds) > 1:
        raise _internal(f"list element types are not identical: {list(lists)}")
    return kinds.pop() if kinds else None


def _merge_list(original: Any, patch: Any, field: Field, is_delete_list: bool) -> list:
    if not isinstance(original, list) or not isinstance(patch, list):
        raise _internal(f"expected a []interface {{}}, but received a {type(patch).__name__}")
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    key = field.key
    if kind != "dict":
        if is_delete_list:
            return [item for item in original if item not in patch]
        merged = _dedupe(original + patch)
        key = ""
    else:
        if not key:
            raise _internal(f"cannot merge lists without merge key for {field.type or 'field'}")
        original, patch = _apply_list_directives(original, patch, key)
        merged = list(original)  # new items are appended to the copy: the live order stays the live one
        for item in patch:
            if key not in item:
                raise _internal(f"map: {item} does not contain declared merge key: {key}")
            position = _index(merged, item, key)
            if position >= 0:
                merged[position] = _merge_map(merged[position], item, _fields_of(field))
            else:
                merged.append(_clean(item)[0])
    in_patch = [item for item in merged if _index(patch, item, key) >= 0]
    server_only = [item for item in merged if _index(patch, item, key) < 0]
    return _normalize_order(in_patch, server_only, patch, original, key)


def _dedupe(items: list) -> list:
    """strategicpatch's deduplicateScalars, whose order quirk (the last element fills the hole) shows
    only before the final ordering pass; kept simple: first occurrence wins."""
    result: list = []
    for item in items:
        if item not in result:
            result.append(item)
    return result


def _apply_list_directives(original: list, patch: list, key: str) -> tuple[list, list]:
    """``{"$patch": "delete", key: v}`` removes matching items; ``{"$patch": "replace"}`` makes the
    patch's other items the whole list."""
    plain, replace = [], False
    for item in patch:
        if not isinstance(item, dict) or _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete":
            if key not in item:
                raise _internal(f"map: {item} does not contain declared merge key: {key}")
            original = [entry for entry in original if _merge_value(entry, key) != item[key]]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _internal("merging lists cannot yet be specified in the patch")
        else:
            raise _internal(f"unknown patch type: {directive} in map: {item}")
    if replace:
        return [_clean(item)[0] for item in plain], []
    return original, plain


def _normalize_order(
    in_patch: list, server_only: list, patch_order: list, server_order: list, key: str
) -> list:
    """Patch items in patch order, live-only items in live order, interleaved by live position
    (strategicpatch's normalizeElementOrder + mergeSortedSlice). When a patch both deletes and adds list
    items, Go's in-place slice edits can make the added items visible in the live order, depending on
    the slice's spare capacity; this port behaves as if there were none."""

    def by(order: list):
        return lambda item: i if (i := _index(order, item, key)) >= 0 else len(order)

    right = sorted(in_patch, key=by(patch_order))
    left = sorted(server_only, key=by(server_order))
    merged, i, j = [], 0, 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            merged.append(left[i])
            i += 1
        elif i >= len(left):
            merged.append(right[j])
            j += 1
        else:
            li, ri = _index(server_order, left[i], key), _index(server_order, right[j], key)
            if li >= 0 and ri >= 0 and li < ri:
                merged.append(left[i])
                i += 1
            else:
                merged.append(right[j])
                j += 1
    return merged


def _check_order(patched: list, order: list, key: str) -> None:
    """The patch list must be a subsequence of the $setElementOrder list (deletions aside)."""
    items = [item for item in patched if not (isinstance(item, dict) and _DIRECTIVE in item)]
    position = 0
    for entry in order:
        if position < len(items) and _merge_value(items[position], key) == _merge_value(entry, key):
            position += 1
    if position < len(items):
        raise _internal(
            f"The order in patch list:\n{patched}\n doesn't match $setElementOrder list:\n{order}\n"
        )


def _apply_element_orders(original: dict, patch: dict, fields: dict[str, Field]) -> None:
    """``$setElementOrder/<field>``: merge that list now and order it as the directive says."""
    for directive_key in [k for k in patch if k.startswith("$setElementOrder")]:
        order = patch.pop(directive_key)
        if not directive_key.startswith(_ORDER_PREFIX) or not isinstance(order, list):
            raise _bad_request(_ORDER_LIST_ERROR)
        name = directive_key[len(_ORDER_PREFIX) :]
        field = fields.get(name, Field())
        live, patched = original.get(name), patch.get(name)
        if (
            live is not None
            and not isinstance(live, list)
            or patched is not None
            and not isinstance(patched, list)
        ):
            raise _internal(f"expected a list for {name}")
        if patched:
            _check_order(patched, order, field.key)
        if live is not None and patched is not None:
            merged = (
                _merge_list(live, patched, field, False) if field.strategy == _MERGE else _clean(patched)[0]
            )
        elif patched is not None:
            merged = _clean(patched)[0]
        elif live is not None:
            merged = live
        else:
            continue
        key = field.key if _element_kind(live, patched) == "dict" else ""
        in_order = [item for item in merged if _index(order, item, key) >= 0]
        server_only = [item for item in merged if _index(order, item, key) < 0]
        original[name] = _normalize_order(in_order, server_only, order, live or [], key)
        patch.pop(name, None)
