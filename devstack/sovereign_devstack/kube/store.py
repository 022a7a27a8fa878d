"""Objects in memory, the cluster-wide resourceVersion counter, and a bounded event history for watches.

# k8s docs: /docs/reference/using-api/api-concepts/#resource-versions
One counter for all resources (as etcd's revision): every write takes the next number, lists report the
current one, and watches resume from any number still in the history.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ResourceKey = tuple[str, str]  # (group, plural)
ObjectKey = tuple[str | None, str]  # (namespace or None, name)

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
    def __init__(self) -> None:
        self.revision = 0
        self._objects: dict[ResourceKey, dict[ObjectKey, dict[str, Any]]] = {}
        self._by_uid: dict[str, tuple[ResourceKey, ObjectKey]] = {}
        self.history: deque[Event] = deque(maxlen=HISTORY_SIZE)
        self._subscribers: set[asyncio.Queue[Event | None]] = set()  # None ends a watch
        self.changed = asyncio.Event()  # wakes the garbage collector

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
        self.revision += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self.revision)
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
        obj = self._objects.get(resource, {}).pop((namespace, name), None)
        if obj is None:
            return None
        self._by_uid.pop(obj["metadata"].get("uid", ""), None)
        self.revision += 1
        # k8s docs: /docs/reference/using-api/api-concepts/#watch-bookmarks — a DELETED event carries
        # the object as last seen, at the revision of the deletion.
        obj["metadata"]["resourceVersion"] = str(self.revision)
        self._emit(Event(self.revision, resource, "DELETED", copy.deepcopy(obj), None))
        return copy.deepcopy(obj)

    def drop_resource(self, resource: ResourceKey) -> None:
        """Forget a whole resource (a CRD went away after its objects were deleted)."""
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

    def events_since(self, rv: int, resource: ResourceKey) -> list[Event] | None:
        """Events after `rv` for a resource, or None if the history no longer reaches back that far."""
        if rv < self.revision and self.history and self.history[0].rv > rv + 1:
            return None
        return [e for e in self.history if e.rv > rv and e.resource == resource]

    def _emit(self, event: Event) -> None:
        self.history.append(event)
        for queue in self._subscribers:
            queue.put_nowait(event)
        self.changed.set()
