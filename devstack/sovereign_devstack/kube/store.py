"""Objects in memory, the cluster-wide resourceVersion counter, and a bounded event history for watches.

# k8s docs: /docs/reference/using-api/api-concepts/#resource-versions
One counter for all resources (as etcd's revision): every write takes the next number, lists report the
current one, and watches resume from any number still in the history.

With a data dir (persistence.DataDir) every write is on disk before it is applied and acknowledged, and a new
Store starts from what is there: same objects, uids and revision counter. The watch history starts empty, so
a watch resuming from before the restart gets 410 Gone and its client relists
# k8s docs: /docs/reference/using-api/api-concepts/#efficient-detection-of-changes
"""

from __future__ import annotations

import asyncio
import copy
import logging
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sovereign_devstack.kube.persistence import DataDir

ResourceKey = tuple[str, str]  # (group, plural)
ObjectKey = tuple[str | None, str]  # (namespace or None, name)

log = logging.getLogger("sovereign_devstack.kube.store")

HISTORY_SIZE = 10_000  # events kept for watch resumption; older resourceVersions get 410 Gone


@dataclass(frozen=True)
class Event:
    rv: int
    resource: ResourceKey
    type: str  # ADDED, MODIFIED, DELETED
    object: dict[str, Any]
    old: dict[str, Any] | None  # the previous state, so selector-filtered watches can see objects leave


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid() -> str:
    return str(uuid.uuid4())


class Store:
    def __init__(self, data_dir: DataDir | None = None) -> None:
        self.revision = 0
        self._objects: dict[ResourceKey, dict[ObjectKey, dict[str, Any]]] = {}
        self._by_uid: dict[str, tuple[ResourceKey, ObjectKey]] = {}
        self.history: deque[Event] = deque(maxlen=HISTORY_SIZE)
        self._subscribers: set[asyncio.Queue[Event | None]] = set()  # None ends a watch
        self.changed = asyncio.Event()  # wakes the garbage collector
        self._data_dir = data_dir
        if data_dir is not None:
            restored = data_dir.load()
            self.revision = restored.revision
            self._objects = restored.objects
            for resource, items in self._objects.items():
                for key, obj in items.items():
                    self._by_uid[obj["metadata"]["uid"]] = (resource, key)
            data_dir.compact(self.revision, self.scan())  # folds the journal in, drops a torn last record
            self.changed.set()  # the controllers take up where they were (e.g. namespaces being deleted)

    # Reading. Callers get deep copies so nothing outside mutates stored state.
    def get(self, resource: ResourceKey, namespace: str | None, name: str) -> dict[str, Any] | None:
        obj = self._objects.get(resource, {}).get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, resource: ResourceKey, namespace: str | None = None) -> list[dict[str, Any]]:
        items = self._objects.get(resource, {})
        keys = sorted(k for k in items if namespace is None or k[0] == namespace)
        return [copy.deepcopy(items[k]) for k in keys]

    def keys(self, resource: ResourceKey) -> list[ObjectKey]:
        return list(self._objects.get(resource, {}))

    def resources(self) -> list[ResourceKey]:
        return list(self._objects)

    def exists_uid(self, uid: str) -> bool:
        return uid in self._by_uid

    def iter_namespace(self, namespace: str) -> Iterator[tuple[ResourceKey, dict[str, Any]]]:
        for resource, items in list(self._objects.items()):
            for (ns, _), obj in list(items.items()):
                if ns == namespace:
                    yield resource, obj

    def scan(self) -> Iterator[tuple[ResourceKey, dict[str, Any]]]:
        """Every stored object, uncopied: for read-only sweeps by the controllers (never mutate them)."""
        for resource, items in list(self._objects.items()):
            yield from ((resource, obj) for obj in list(items.values()))

    # Writing. Each write takes the next revision, records an event and wakes the watchers.
    def put(
        self, resource: ResourceKey, obj: dict[str, Any], event_type: str, old: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self.revision + 1)
        self._persist({"rev": self.revision + 1, "resource": list(resource), "object": obj})
        self.revision += 1
        key = (meta.get("namespace"), meta["name"])
        self._objects.setdefault(resource, {})[key] = obj
        self._by_uid[meta["uid"]] = (resource, key)
        self._emit(
            Event(
                self.revision,
                resource,
                event_type,
                copy.deepcopy(obj),
                copy.deepcopy(old) if old is not None else None,
            )
        )
        return copy.deepcopy(obj)

    def remove(self, resource: ResourceKey, namespace: str | None, name: str) -> dict[str, Any] | None:
        if (namespace, name) not in self._objects.get(resource, {}):
            return None
        self._persist({"rev": self.revision + 1, "resource": list(resource), "deleted": [namespace, name]})
        obj = self._objects[resource].pop((namespace, name))
        self._by_uid.pop(obj["metadata"].get("uid", ""), None)
        self.revision += 1
        # k8s docs: /docs/reference/using-api/api-concepts/#watch-bookmarks — a DELETED event carries
        # the object as last seen, at the revision of the deletion.
        obj["metadata"]["resourceVersion"] = str(self.revision)
        self._emit(Event(self.revision, resource, "DELETED", copy.deepcopy(obj), None))
        return copy.deepcopy(obj)

    def drop_resource(self, resource: ResourceKey) -> None:
        """Forget a whole resource (a CRD went away after its objects were deleted)."""
        if resource in self._objects:
            self._persist({"rev": self.revision, "resource": list(resource), "dropped": True})
        for obj in self._objects.pop(resource, {}).values():
            self._by_uid.pop(obj["metadata"].get("uid", ""), None)

    # Watching.
    def subscribe(self) -> asyncio.Queue[Event | None]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        self._subscribers.discard(queue)

    def close(self) -> None:
        """End every watch (a None event), so that shutdown does not wait for long-running streams."""
        for queue in self._subscribers:
            queue.put_nowait(None)

    def oldest_watchable(self) -> int:
        """The oldest resourceVersion a watch can resume from: every later event is in the history."""
        return self.history[0].rv - 1 if self.history else self.revision

    def events_since(self, rv: int, resource: ResourceKey) -> list[Event] | None:
        """Events after `rv` for a resource, or None if the history no longer reaches back that far."""
        if rv < self.oldest_watchable():
            return None
        return [e for e in self.history if e.rv > rv and e.resource == resource]

    def _persist(self, record: dict[str, Any]) -> None:
        """Journal one write before it is applied: nothing is acknowledged that is not on disk."""
        if self._data_dir is None:
            return
        self._data_dir.append(record)

    def _emit(self, event: Event) -> None:
        self.history.append(event)
        for queue in self._subscribers:
            queue.put_nowait(event)
        self.changed.set()
        if self._data_dir is not None and self._data_dir.needs_compaction():
            try:  # the write is already on disk: a failed compaction only leaves the journal longer
                self._data_dir.compact(self.revision, self.scan())
            except OSError:
                log.exception("compacting the data dir failed")
