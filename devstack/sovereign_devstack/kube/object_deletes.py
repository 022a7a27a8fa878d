"""Delete with kube-apiserver's semantics: preconditions, finalizers, deletionTimestamp, propagation policy.

# k8s docs: /docs/concepts/overview/working-with-objects/finalizers/
# k8s docs: /docs/concepts/architecture/garbage-collection/#cascading-deletion
The dependents themselves are handled by controllers.py, as kube-controller-manager's garbage collector does.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

from sovereign_devstack.kube import errors
from sovereign_devstack.kube.resource_types import ResourceType
from sovereign_devstack.kube.store import Store, now_rfc3339


class ObjectDeleter:
    store: Store
    admission: Callable[..., Awaitable[None]] | None

    def _notify(self, rt: ResourceType, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        raise NotImplementedError

    @staticmethod
    def _namespace_pending(rt: ResourceType, obj: dict[str, Any]) -> bool:
        """A namespace stays until its `kubernetes` finalizer (spec.finalizers) is removed."""
        return rt.key == ("", "namespaces") and bool((obj.get("spec") or {}).get("finalizers"))

    async def delete(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        options: dict[str, Any],
        dry_run: bool = False,
    ) -> tuple[bool, dict[str, Any]]:
        """Returns (deleted_now, object). With finalizers the object is only marked for deletion."""
        old = self.store.get(rt.key, namespace, name)
        if old is None:
            raise errors.not_found(rt.group, rt.plural, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise errors.conflict(
                rt.group,
                rt.plural,
                name,
                f"Precondition failed: UID in precondition: "
                f"{pre['uid']}, UID in object meta: {old['metadata']['uid']}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.group, rt.plural, name, errors.STALE)
        if self.admission:
            await self.admission("DELETE", rt, version, None, None, old, dry_run)
        old = self.store.get(rt.key, namespace, name)
        if old is None:
            raise errors.not_found(rt.group, rt.plural, name)
        # k8s docs: /docs/concepts/architecture/garbage-collection/#cascading-deletion
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        new = copy.deepcopy(old)
        meta = new["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        elif policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        if finalizers:
            meta["finalizers"] = finalizers
        if rt.key == ("", "namespaces"):
            new["status"] = {**(new.get("status") or {}), "phase": "Terminating"}
        if not finalizers and not self._namespace_pending(rt, new):
            if dry_run:
                return True, old
            gone = self.store.remove(rt.key, namespace, name)
            self._notify(rt, old, None)
            return True, gone or old
        if meta.get("deletionTimestamp"):
            if new == old or dry_run:
                return False, old
            return False, self.store.put(rt.key, new, "MODIFIED", old)
        meta["deletionTimestamp"] = now_rfc3339()
        meta["deletionGracePeriodSeconds"] = 0
        if dry_run:
            return False, new
        stored = self.store.put(rt.key, new, "MODIFIED", old)
        self._notify(rt, old, stored)
        return False, stored
