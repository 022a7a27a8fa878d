"""The background controllers kube-controller-manager and kube-apiserver run that the devstack needs:
garbage collection by ownerReferences, namespace termination, CRD cleanup, default ServiceAccounts.

# k8s docs: /docs/concepts/architecture/garbage-collection/
# k8s docs: /docs/concepts/overview/working-with-objects/namespaces/ (namespace deletion)
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sovereign_devstack.kube import crds, errors
from sovereign_devstack.kube.builtin_defaults import NAMESPACE_FINALIZER
from sovereign_devstack.kube.object_writes import ObjectWriter
from sovereign_devstack.kube.resource_types import Registry, ResourceType
from sovereign_devstack.kube.store import Store

log = logging.getLogger("sovereign_devstack.kube.controllers")
NS_KEY = ("", "namespaces")
SA_KEY = ("", "serviceaccounts")
RESYNC_SECONDS = 2.0
EVENT_KEYS = (("", "events"), ("events.k8s.io", "events"))
EVENT_TTL_SECONDS = 3600  # kube-apiserver's --event-ttl default


class Controllers:
    def __init__(self, store: Store, registry: Registry, writer: ObjectWriter) -> None:
        self.store, self.registry, self.writer = store, registry, writer
        self._task: asyncio.Task[None] | None = None
        self._last_event_expiry = time.monotonic()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.store.changed.wait(), timeout=RESYNC_SECONDS)
            self.store.changed.clear()
            try:
                await self.reconcile()
            except Exception:
                log.exception("controller pass failed")

    async def reconcile(self) -> None:
        # Passes repeat while they change something, so cascades settle promptly.
        for _ in range(20):
            revision = self.store.revision
            await self._namespaces()
            await self._crd_cleanup()
            await self._dependents()
            if self.store.revision == revision:
                break
        if time.monotonic() - self._last_event_expiry > 60:
            self._last_event_expiry = time.monotonic()
            self._expire_events()

    def _expire_events(self) -> None:
        """Events live for an hour, as with kube-apiserver's --event-ttl (operators post many)."""
        cutoff = (datetime.now(UTC) - timedelta(seconds=EVENT_TTL_SECONDS)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for key in EVENT_KEYS:
            for namespace, name in self.store.keys(key):
                obj = self.store.get(key, namespace, name)
                if obj and obj["metadata"].get("creationTimestamp", "") < cutoff:
                    self.store.remove(key, namespace, name)

    def _rt(self, key: tuple[str, str]) -> ResourceType | None:
        return self.registry.get(*key)

    async def _delete(self, rt: ResourceType, obj: dict[str, Any], policy: str = "Background") -> None:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and policy == "Background":
            return
        with contextlib.suppress(errors.StatusError):
            await self.writer.delete(
                rt, rt.storage_version, meta.get("namespace"), meta["name"], {"propagationPolicy": policy}
            )

    def _update(self, rt: ResourceType, obj: dict[str, Any], change: Any) -> None:
        old = self.store.get(rt.key, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if old is None:
            return
        new = copy.deepcopy(old)
        change(new)
        if new != old:
            self.writer.commit(rt, old, new)

    async def _namespaces(self) -> None:
        ns_rt = self._rt(NS_KEY)
        sa_rt = self._rt(SA_KEY)
        assert ns_rt is not None and sa_rt is not None
        for ns in self.store.list(NS_KEY):
            name = ns["metadata"]["name"]
            if not ns["metadata"].get("deletionTimestamp"):
                if self.store.get(SA_KEY, name, "default") is None:
                    # The ServiceAccount controller gives every namespace a `default` account.
                    with contextlib.suppress(errors.StatusError):
                        await self.writer.create(sa_rt, "v1", name, {"metadata": {"name": "default"}})
                continue
            contents = list(self.store.iter_namespace(name))
            for key, obj in contents:
                rt = self._rt(key)
                if rt is not None:
                    await self._delete(rt, obj)
            if not contents and NAMESPACE_FINALIZER in (ns.get("spec") or {}).get("finalizers", []):

                def finalize(o: dict[str, Any]) -> None:
                    o["spec"]["finalizers"] = [f for f in o["spec"]["finalizers"] if f != NAMESPACE_FINALIZER]

                self._update(ns_rt, ns, finalize)

    async def _crd_cleanup(self) -> None:
        crd_rt = self._rt(crds.CRD_KEY)
        assert crd_rt is not None
        for crd in self.store.list(crds.CRD_KEY):
            if not crd["metadata"].get("deletionTimestamp"):
                continue
            if crds.CLEANUP_FINALIZER not in (crd["metadata"].get("finalizers") or []):
                continue
            served = crds.resource_type(crd)
            rt = self._rt(served.key)
            objects = self.store.list(served.key)
            if rt is not None:
                for obj in objects:
                    await self._delete(rt, obj)
            if not objects:

                def release(o: dict[str, Any]) -> None:
                    o["metadata"]["finalizers"] = [
                        f for f in o["metadata"]["finalizers"] if f != crds.CLEANUP_FINALIZER
                    ]
                    o["status"] = crds.terminating_status(o)

                self._update(crd_rt, crd, release)

    def _dependents_of(self, uid: str) -> list[tuple[ResourceType, dict[str, Any]]]:
        found = []
        for key, obj in self.store.scan():
            rt = self._rt(key)
            if rt is not None and any(
                ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or []
            ):
                found.append((rt, copy.deepcopy(obj)))
        return found

    async def _dependents(self) -> None:
        for key, raw in self.store.scan():
            meta = raw["metadata"]
            refs = meta.get("ownerReferences") or []
            finalizers = meta.get("finalizers") or []
            rt = self._rt(key)
            if rt is None or not (refs or (meta.get("deletionTimestamp") and finalizers)):
                continue
            # The scan may hold a state replaced earlier in this pass (e.g. orphaned): act on the current one.
            obj = self.store.get(key, meta.get("namespace"), meta["name"])
            if obj is None:
                continue
            meta = obj["metadata"]
            refs = meta.get("ownerReferences") or []
            finalizers = meta.get("finalizers") or []
            if meta.get("deletionTimestamp") and "orphan" in finalizers:
                await self._orphan(rt, obj)
            elif meta.get("deletionTimestamp") and "foregroundDeletion" in finalizers:
                await self._foreground(rt, obj)
            if refs and not any(self.store.exists_uid(ref.get("uid", "")) for ref in refs):
                await self._delete(rt, obj)  # every owner is gone: collect the dependent

    async def _orphan(self, rt: ResourceType, owner: dict[str, Any]) -> None:
        uid = owner["metadata"]["uid"]
        for dep_rt, dep in self._dependents_of(uid):

            def strip(o: dict[str, Any], uid: str = uid) -> None:
                o["metadata"]["ownerReferences"] = [
                    r for r in o["metadata"]["ownerReferences"] if r["uid"] != uid
                ]
                if not o["metadata"]["ownerReferences"]:
                    del o["metadata"]["ownerReferences"]

            self._update(dep_rt, dep, strip)
        self._update(
            rt,
            owner,
            lambda o: o["metadata"].__setitem__(
                "finalizers", [f for f in o["metadata"]["finalizers"] if f != "orphan"]
            ),
        )

    async def _foreground(self, rt: ResourceType, owner: dict[str, Any]) -> None:
        dependents = self._dependents_of(owner["metadata"]["uid"])
        for dep_rt, dep in dependents:
            await self._delete(dep_rt, dep, "Foreground")
        if not dependents:
            self._update(
                rt,
                owner,
                lambda o: o["metadata"].__setitem__(
                    "finalizers", [f for f in o["metadata"]["finalizers"] if f != "foregroundDeletion"]
                ),
            )
