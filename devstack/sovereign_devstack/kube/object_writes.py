"""Create, update (PUT), patch and delete with kube-apiserver's semantics for metadata and subresources.

# k8s docs: /docs/reference/using-api/api-concepts/#resource-versions (optimistic concurrency)
# k8s docs: /docs/reference/using-api/api-concepts/#patch-and-apply
"""

from __future__ import annotations

import contextvars
import copy
import random
from collections.abc import Awaitable, Callable
from typing import Any

from sovereign_devstack.kube import builtin_defaults, errors, validation
from sovereign_devstack.kube.builtin_resources import TOP_LEVEL_FIELDS
from sovereign_devstack.kube.object_deletes import ObjectDeleter
from sovereign_devstack.kube.resource_types import ResourceType
from sovereign_devstack.kube.store import Store, new_uid, now_rfc3339

# (operation, rt, version, subresource, new, old, dry_run) -> raises StatusError to deny
AdmissionHook = Callable[
    [str, ResourceType, str, str | None, dict[str, Any] | None, dict[str, Any] | None, bool], Awaitable[None]
]

SERVER_MANAGED = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "name",
    "namespace",
    "selfLink",
)
_GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # what kube's SimpleNameGenerator picks from


# Warning headers for the current request (a list per request task; see server.py).
WARNINGS: contextvars.ContextVar[list[str]] = contextvars.ContextVar("warnings")
# The request's `fieldValidation` (Strict, Warn, Ignore); Warn is kube-apiserver's default.
# k8s docs: /docs/reference/using-api/api-concepts/#field-validation
FIELD_VALIDATION: contextvars.ContextVar[str] = contextvars.ContextVar("field_validation", default="Warn")


def _schema_admission() -> Any:
    from sovereign_devstack.kube import schema  # the teammate's pure module; imported lazily

    return schema


def _without(obj: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in fields}


class ObjectWriter(ObjectDeleter):
    def __init__(self, store: Store, admission: AdmissionHook | None = None) -> None:
        self.store = store
        self.admission = admission
        self.after_write: list[
            Callable[[ResourceType, dict[str, Any] | None, dict[str, Any] | None], None]
        ] = []

    # ---- checks shared by all writes
    def _check_namespace(self, rt: ResourceType, namespace: str | None, name: str, creating: bool) -> None:
        if not rt.namespaced:
            return
        ns = self.store.get(("", "namespaces"), None, namespace or "")
        if ns is None:
            raise errors.not_found("", "namespaces", namespace or "")
        if creating and ns["metadata"].get("deletionTimestamp"):
            # NamespaceLifecycle admission. k8s docs: /docs/concepts/overview/working-with-objects/namespaces/
            exc = errors.forbidden(
                rt.group,
                rt.plural,
                name,
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )
            exc.details["causes"] = [
                {
                    "reason": "NamespaceTerminating",
                    "field": "metadata.namespace",
                    "message": f"namespace {namespace} is being terminated",
                }
            ]
            raise exc

    def _admit_schema(self, rt: ResourceType, version: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Prune unknown fields, apply defaults and validate against the CRD's openAPIV3Schema."""
        if not rt.is_custom:
            known = {"apiVersion", "kind", "metadata", *TOP_LEVEL_FIELDS.get(rt.key, ())}
            pruned = [field for field in obj if field not in known]
            self._report_pruned(rt, version, pruned)
            return {k: v for k, v in obj.items() if k in known}
        schema = rt.schemas.get(version)
        if schema is None:
            return obj
        module = _schema_admission()
        new_obj, causes, pruned = module.admit_custom_object_with_warnings(obj, schema)
        if causes:
            name = obj.get("metadata", {}).get("name", "")
            raise errors.invalid(
                rt.group,
                rt.kind,
                name,
                [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes],
                message=module.format_invalid_message(rt.kind, name, causes, group=rt.group),
            )
        self._report_pruned(rt, version, pruned)
        return new_obj

    @staticmethod
    def _report_pruned(rt: ResourceType, version: str, pruned: list[str]) -> None:
        # k8s docs: /docs/reference/using-api/api-concepts/#field-validation (Strict refuses, Warn warns).
        if pruned and FIELD_VALIDATION.get() == "Strict":
            unknown = ", ".join(f'unknown field "{field}"' for field in pruned)
            raise errors.bad_request(
                f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: '
                f"strict decoding error: {unknown}"
            )
        warnings = WARNINGS.get(None) if FIELD_VALIDATION.get() == "Warn" else None
        for field in pruned if warnings is not None else ():
            warnings.append(f'unknown field "{field}"')

    def _check_body(self, rt: ResourceType, version: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the object provided is unrecognized (must be of type object)")
        expected = rt.api_version(version)
        if body.get("apiVersion") and body["apiVersion"] != expected:
            raise errors.bad_request(
                f"the API version in the data ({body['apiVersion']}) does not match the "
                f"expected API version ({expected})"
            )
        if body.get("kind") and body["kind"] != rt.kind:
            raise errors.bad_request(
                f"the kind in the data ({body['kind']}) does not match the expected kind ({rt.kind})"
            )
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = expected, rt.kind
        if not isinstance(obj.get("metadata") or {}, dict):
            raise errors.bad_request("metadata must be an object")
        obj["metadata"] = obj.get("metadata") or {}
        return obj

    # ---- create
    async def create(
        self, rt: ResourceType, version: str, namespace: str | None, body: Any, dry_run: bool = False
    ) -> dict[str, Any]:
        obj = self._check_body(rt, version, body)
        meta = obj["metadata"]
        if rt.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace or meta.get("namespace")
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            # k8s docs: /docs/reference/using-api/api-concepts/#generated-values
            meta["name"] = meta["generateName"] + "".join(random.choices(_GENERATE_CHARS, k=5))
        name = meta.get("name") or ""
        if not name:
            raise errors.invalid(
                rt.group,
                rt.kind,
                "",
                [
                    errors.field_cause(
                        "metadata.name",
                        "Required value: name or generateName is required",
                        "FieldValueRequired",
                    )
                ],
            )
        validation.check_name(rt, name)
        validation.check_metadata(rt, obj)
        self._check_namespace(rt, meta.get("namespace"), name, creating=True)
        if self.store.get(rt.key, meta.get("namespace"), name) is not None:
            raise errors.already_exists(rt.group, rt.plural, name)
        for field in (
            "uid",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ):
            meta.pop(field, None)
        if rt.has_status and rt.is_custom:
            obj.pop("status", None)  # k8s docs: CRD status subresource — create ignores status
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        builtin_defaults.on_create(rt, obj)
        obj = self._admit_schema(rt, version, obj)
        if self.admission:
            await self.admission("CREATE", rt, version, None, obj, None, dry_run)
        if self.store.get(rt.key, meta.get("namespace"), name) is not None:  # lost a race during admission
            raise errors.already_exists(rt.group, rt.plural, name)
        if dry_run:
            return obj
        stored = self.store.put(rt.key, obj, "ADDED")
        self._notify(rt, None, stored)
        return stored

    # ---- update (PUT), also the tail of PATCH
    async def update(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        body: Any,
        subresource: str | None = None,
        dry_run: bool = False,
        make_body: Callable[[dict[str, Any]], Any] | None = None,
        precondition_rv: str | None = None,
    ) -> dict[str, Any]:
        """Replace the object; `make_body(current)` builds the body from the current state (for PATCH)."""
        for _attempt in range(10):
            old = self.store.get(rt.key, namespace, name)
            if old is None:
                raise errors.not_found(rt.group, rt.plural, name)
            raw = make_body(copy.deepcopy(old)) if make_body else body
            new = self._check_body(rt, version, raw)
            if new["metadata"].get("name", name) != name:
                raise errors.bad_request(
                    f"the name of the object ({new['metadata'].get('name')}) does not "
                    f"match the name on the URL ({name})"
                )
            # A PUT is conditional on the resourceVersion it carries; a PATCH only if its body names one.
            wanted_rv = precondition_rv if make_body else new["metadata"].get("resourceVersion")
            if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt.group, rt.plural, name, errors.STALE)
            new = self._merge_server_fields(rt, old, new, subresource)
            if new is None:
                return old
            new = self._admit_schema(rt, version, new)
            if self._same(old, new):
                return old  # no-op writes keep the resourceVersion, as etcd3 storage does
            self._bump_generation(rt, old, new)
            if self.admission:
                await self.admission("UPDATE", rt, version, subresource, new, old, dry_run)
            current = self.store.get(rt.key, namespace, name)
            if current is None:
                raise errors.not_found(rt.group, rt.plural, name)
            if current["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"]:
                if wanted_rv:
                    raise errors.conflict(rt.group, rt.plural, name, errors.STALE)
                continue  # someone wrote meanwhile: redo the unconditional update on the new state
            if dry_run:
                return new
            return self.commit(rt, old, new)
        raise errors.conflict(rt.group, rt.plural, name, errors.STALE)

    def _merge_server_fields(
        self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any], subresource: str | None
    ) -> dict[str, Any] | None:
        meta = new["metadata"]
        for field in SERVER_MANAGED:
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
            else:
                meta.pop(field, None)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if subresource == "status":
            # k8s docs: CRD #status-subresource — PUT/PATCH on /status changes only .status.
            result = copy.deepcopy(old)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
            return result
        if subresource == "finalize" and rt.key == ("", "namespaces"):
            result = copy.deepcopy(old)
            result.setdefault("spec", {})["finalizers"] = (new.get("spec") or {}).get("finalizers") or []
            return result
        if subresource:
            raise errors.page_not_found()
        if rt.has_status:
            # ...and updates of the main resource ignore .status.
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        if rt.key == ("", "namespaces"):
            new["spec"] = old.get("spec", {})  # spec.finalizers only change through /finalize
        builtin_defaults.on_write(rt, new)
        validation.check_metadata(rt, new)
        if old["metadata"].get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old["metadata"].get("finalizers") or [])
            if added:
                raise errors.invalid(
                    rt.group,
                    rt.kind,
                    meta["name"],
                    [
                        errors.field_cause(
                            "metadata.finalizers",
                            f"Forbidden: no new finalizers can be added if the object is being "
                            f"deleted, found new finalizers {sorted(added)}",
                            "FieldValueForbidden",
                        )
                    ],
                )
        return new

    @staticmethod
    def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
        strip = ("resourceVersion", "managedFields")
        return _without(old, "metadata") == _without(new, "metadata") and _without(
            old["metadata"], *strip
        ) == _without(new["metadata"], *strip)

    @staticmethod
    def _bump_generation(rt: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
        # k8s docs: CRD #status-subresource — generation increments for all changes except to .metadata
        # and .status (with the status subresource; without it .status is ordinary content).
        ignored = ("metadata", "status") if rt.has_status else ("metadata",)
        if _without(old, *ignored) != _without(new, *ignored):
            new["metadata"]["generation"] = int(old["metadata"].get("generation") or 1) + 1

    def commit(self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        """Store an update; an object being deleted whose last finalizer went away is removed."""
        meta = new["metadata"]
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not self._namespace_pending(rt, new)
        ):
            self.store.put(rt.key, new, "MODIFIED", old)
            gone = self.store.remove(rt.key, meta.get("namespace"), meta["name"])
            self._notify(rt, old, None)
            return gone or new
        stored = self.store.put(rt.key, new, "MODIFIED", old)
        self._notify(rt, old, stored)
        return stored

    def _notify(self, rt: ResourceType, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        for hook in self.after_write:
            hook(rt, old, new)
