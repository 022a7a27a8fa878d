"""Watch streams: newline-delimited `{type, object}` events, resumable from any resourceVersion in history.

# k8s docs: /docs/reference/using-api/api-concepts/#efficient-detection-of-changes
# k8s docs: /docs/reference/using-api/api-concepts/#semantics-for-watch
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import time
from typing import Any

import aiohttp.web

from sovereign_devstack.kube import errors, selectors, tables
from sovereign_devstack.kube.object_reads import present
from sovereign_devstack.kube.resource_types import ResourceType
from sovereign_devstack.kube.store import Event, Store

log = logging.getLogger("sovereign_devstack.kube.watch")
DEFAULT_TIMEOUT = 1800.0  # kube-apiserver's --min-request-timeout
BOOKMARK_EVERY = 30.0


class WatchStream:
    def __init__(
        self,
        store: Store,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str | None,
        params: dict[str, str],
        accept: str,
    ) -> None:
        self.store, self.rt, self.version = store, rt, version
        self.namespace = namespace if rt.namespaced else None
        self.params = params
        self.table = tables.wants_table(accept)
        self.table_headers_sent = False
        self.bookmarks = params.get("allowWatchBookmarks") == "true"
        field_selector = params.get("fieldSelector") or ""
        if name:  # a watch on a named URL is a watch with a metadata.name field selector
            field_selector = ",".join(filter(None, [field_selector, f"metadata.name={name}"]))
        self.matches = selectors.object_matcher({**params, "fieldSelector": field_selector})

    def _visible(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.matches(obj)

    def _translate(self, event: Event) -> tuple[str, dict[str, Any]] | None:
        """Selector-filtered watches see objects enter (ADDED) and leave (DELETED) the selection."""
        now, before = self._visible(event.object), self._visible(event.old)
        if event.type == "MODIFIED":
            if now and not before:
                return "ADDED", event.object
            if before and not now:
                return "DELETED", event.object
        return (event.type, event.object) if now else None

    def _render(self, kind: str, obj: dict[str, Any]) -> bytes:
        obj = present(self.rt, self.version, copy.deepcopy(obj))
        if self.table and kind != "BOOKMARK":
            obj = tables.table(
                self.rt,
                self.version,
                [obj],
                {"resourceVersion": obj["metadata"]["resourceVersion"]},
                self.params.get("includeObject", "Metadata"),
                headers=not self.table_headers_sent,
            )
            self.table_headers_sent = True
        return json.dumps({"type": kind, "object": obj}).encode() + b"\n"

    def _bookmark(self, extra: dict[str, str] | None = None) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(self.store.revision)}
        if extra:
            meta["annotations"] = extra
        return (
            json.dumps(
                {
                    "type": "BOOKMARK",
                    "object": {
                        "kind": self.rt.kind,
                        "apiVersion": self.rt.api_version(self.version),
                        "metadata": meta,
                    },
                }
            ).encode()
            + b"\n"
        )

    async def serve(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        queue = self.store.subscribe()  # before the snapshot: nothing written in between is missed
        try:
            initial = self._initial()
            await response.prepare(raw_request)
            for chunk in initial:
                await response.write(chunk)
            await self._follow(raw_request, response, queue)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception as exc:  # the stream has started: report in-band, as kube does, and end it
            if not response.prepared:
                raise
            log.exception("watch failed")
            status = errors.internal(repr(exc)).status_body()
            with contextlib.suppress(ConnectionError, RuntimeError):
                await response.write(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
        finally:
            self.store.unsubscribe(queue)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response

    def _initial(self) -> list[bytes]:
        self.snapshot_rv = self.store.revision  # events up to here are in the initial chunks
        rv = self.params.get("resourceVersion") or ""
        send_initial = self.params.get("sendInitialEvents") == "true"
        if rv in ("", "0") or send_initial:
            # No resourceVersion: the current state as synthetic ADDED events, then changes.
            chunks = [
                self._render("ADDED", obj)
                for obj in self.store.list(self.rt.key, self.namespace)
                if self._visible(obj)
            ]
            if send_initial and self.bookmarks:
                chunks.append(self._bookmark({"k8s.io/initial-events-end": "true"}))
            return chunks
        try:
            since = int(rv)
        except ValueError as exc:
            raise errors.bad_request(f'invalid resource version "{rv}"') from exc
        events = self.store.events_since(since, self.rt.key)
        if events is None:
            status = errors.gone(f"too old resource version: {since} ({self.store.oldest_watchable()})")
            return [json.dumps({"type": "ERROR", "object": status.status_body()}).encode() + b"\n"]
        chunks = []
        for event in events:
            translated = self._translate(event)
            if translated:
                chunks.append(self._render(*translated))
        return chunks

    async def _follow(
        self,
        raw_request: aiohttp.web.BaseRequest,
        response: aiohttp.web.StreamResponse,
        queue: asyncio.Queue[Event | None],
    ) -> None:
        timeout = float(self.params.get("timeoutSeconds") or DEFAULT_TIMEOUT)
        deadline = time.monotonic() + timeout
        last_sent = time.monotonic()
        skip_until = self.snapshot_rv
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                event = await asyncio.wait_for(queue.get(), timeout=min(remaining, 5.0))
            except TimeoutError:
                transport = raw_request.transport
                if transport is None or transport.is_closing():
                    break
                if self.bookmarks and not self.table and time.monotonic() - last_sent > BOOKMARK_EVERY:
                    await response.write(self._bookmark())
                    last_sent = time.monotonic()
                continue
            if event is None:  # the server is shutting down
                break
            if event.rv <= skip_until or event.resource != self.rt.key:
                continue
            translated = self._translate(event)
            if translated:
                await response.write(self._render(*translated))
                last_sent = time.monotonic()
        if self.bookmarks and not self.table:
            with contextlib.suppress(ConnectionError):
                await response.write(self._bookmark())
