"""Leader election with a `coordination.k8s.io/v1` Lease: only the holder runs kopf; a standby waits.

k8s docs: /docs/concepts/architecture/leases/ (leader election). As client-go's leaderelection does, a
candidate judges expiry by its own clock: a Lease whose record has not changed for leaseDurationSeconds
since this process first saw it is expired, whatever the writer's clock said. Every write carries the
resourceVersion that was read, so of two candidates writing at once one gets 409 Conflict and re-reads.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import ApiClient

from sovereign.clients.kubernetes import LeaseConflict, read_lease, write_lease
from sovereign.telemetry import untraced

log = logging.getLogger("sovereign_operator.leader")


def default_identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _micro_time() -> str:
    # MicroTime: RFC 3339 with microseconds (k8s API reference: meta/v1 MicroTime).
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    def __init__(self, api: ApiClient, namespace: str, name: str, identity: str, duration: float) -> None:
        self.api, self.namespace, self.name, self.identity = api, namespace, name, identity
        self.duration_seconds = max(1, round(duration))
        self.renew_interval = self.duration_seconds / 3
        self._observed_version: str | None = None
        self._observed_at = 0.0  # monotonic time the current record was first seen
        self._last_renewed = 0.0
        self._leading = False
        self._last_holder: str | None = None

    # -- one attempt ---------------------------------------------------------------------------

    def try_acquire_or_renew(self) -> bool:
        # Housekeeping every few seconds: no spans (they would bury the reconciles' traces).
        with untraced():
            return self._try_acquire_or_renew()

    def _try_acquire_or_renew(self) -> bool:
        """One read-compare-write round; True if this process holds the Lease afterwards."""
        lease = read_lease(self.api, self.namespace, self.name)
        now = time.monotonic()
        if lease is None:
            return self._write(self._body(None, transitions=0, acquired=True))
        spec = lease.get("spec") or {}
        version = lease["metadata"].get("resourceVersion")
        if version != self._observed_version:
            self._observed_version, self._observed_at = version, now
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or self.duration_seconds)
        expired = now - self._observed_at > duration
        if holder and holder != self.identity and not expired:
            if holder != self._last_holder:
                log.info("standby: Lease %s/%s is held by %s", self.namespace, self.name, holder)
                self._last_holder = holder
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
        return self._write(
            self._body(lease, transitions=transitions, acquired=holder != self.identity, spec=spec)
        )

    def _body(
        self,
        lease: dict[str, Any] | None,
        transitions: int,
        acquired: bool,
        spec: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        now = _micro_time()
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if lease is not None:
            metadata["resourceVersion"] = lease["metadata"]["resourceVersion"]
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration_seconds,
                "acquireTime": now if acquired else (spec or {}).get("acquireTime", now),
                "renewTime": now,
                "leaseTransitions": transitions,
            },
        }

    def _write(self, body: dict[str, Any]) -> bool:
        try:
            written = write_lease(self.api, self.namespace, body)
        except LeaseConflict:
            return False  # someone wrote first; the next round re-reads
        self._observed_version = written["metadata"].get("resourceVersion")
        self._observed_at = self._last_renewed = time.monotonic()
        if not self._leading:
            log.info("leader: acquired Lease %s/%s as %s", self.namespace, self.name, self.identity)
            self._leading = True
        return True

    # -- loops -----------------------------------------------------------------------------------

    def wait_for_leadership(self) -> None:
        """Block until this process holds the Lease (a standby retries every renew interval)."""
        while True:
            try:
                if self.try_acquire_or_renew():
                    return
            except Exception as error:  # API unreachable: keep trying, as a standby has nothing to lose
                log.warning("standby: cannot reach the Lease: %s", error)
            time.sleep(self.renew_interval)

    def keep_renewing(self, stop: threading.Event, lost: threading.Event) -> None:
        """Renew every third of the duration; set `lost` and `stop` once the Lease cannot be kept."""
        while not stop.wait(self.renew_interval):
            try:
                if self.try_acquire_or_renew():
                    continue
                reason = "another process holds it"
            except Exception as error:
                if time.monotonic() - self._last_renewed < self.duration_seconds:
                    log.warning("leader: renewing the Lease failed, retrying: %s", error)
                    continue
                reason = f"not renewed within {self.duration_seconds}s ({error})"
            log.error("leader: lost Lease %s/%s: %s", self.namespace, self.name, reason)
            self._leading = False
            lost.set()
            stop.set()
            return

    def release(self) -> None:
        """On a clean exit, hand the Lease over at once (client-go: ReleaseOnCancel)."""
        if not self._leading:
            return
        try:
            lease = read_lease(self.api, self.namespace, self.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                body = self._body(
                    lease, transitions=int(lease["spec"].get("leaseTransitions") or 0), acquired=False
                )
                body["spec"].update(holderIdentity="", leaseDurationSeconds=1)
                write_lease(self.api, self.namespace, body)
                log.info("leader: released Lease %s/%s", self.namespace, self.name)
        except Exception as error:  # the Lease then simply expires
            log.warning("leader: could not release the Lease: %s", error)
        self._leading = False
