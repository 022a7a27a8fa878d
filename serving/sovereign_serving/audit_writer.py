"""The gateway side of a nation's audit log: one writer actor per nation, and a client for gateway replicas.

`AuditWriter` is a named, detached Ray actor per nation (get-or-create by name, like the QuotaKeeper in
gateway/_ratelimit.py): the only process appending to `<audit dir>/<nation>/decisions/` (an AuditLog takes
an exclusive flock). It is a threaded actor, so concurrent appends wait together in AuditLog's group commit
and share one fsync. It logs in to Vault as the nation (Kubernetes auth, role `tenant-<nation>`) with the
ServiceAccount token read from `AuditSink.token_file`, and logs in again, re-reading the file, before the
Vault token expires or after a 403. Data keys are cached and rotated by AuditLog (one data key per 10,000
records: 2 Vault calls), so Vault is not on the request path.

`AuditClient` is what a replica calls: `await record_decision(...)` returns once the record is durable in
the gateway nation's log and, when the model belongs to another nation served in the same Ray cluster
(local-ray), in the owner's log too. On kuberay the owner's models are reached through the owner's gateway
(`federated`), which decides again and records in its own log, so nothing crosses clusters here. Any
failure raises `AuditUnavailable`: the caller refuses the request (fail closed).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hvac
import ray
from ray.exceptions import RayActorError, RayError

from sovereign.audit import (
    DECISIONS_STREAM,
    AuditActor,
    AuditDecision,
    AuditLog,
    AuditRecord,
    stream_directory,
)
from sovereign.clients import vault as vault_client
from sovereign_serving.config import AuditSink

logger = logging.getLogger("sovereign.gateway.audit")

AUDIT_NAMESPACE = "sovereign-gateway"  # the QuotaKeepers' namespace: every gateway's helper actors
WRITER_CONCURRENCY = 64  # appends in flight at once; they share fsyncs (group commit)
# Log in again when this share of the Vault token's TTL has passed.
# Vault docs: /vault/docs/concepts/tokens#ttl
RENEW_AT_FRACTION = 0.75


class AuditUnavailable(RuntimeError):
    """A decision could not be recorded durably; the request it belongs to must be refused."""


def audit_writer_name(nation: str) -> str:
    return f"{nation.lower()}-audit-writer"


def decision_record(
    nation: str,
    *,
    subject: str,
    subject_nation: str,
    resources: Sequence[str],
    allowed: bool,
    reason_codes: Sequence[str],
    policy_ids: Sequence[str],
    bundle_version: str,
    federated: bool,
    trace_id: str | None,
    gateway: str,
    time_: datetime | None = None,
) -> AuditRecord:
    """One policy decision as `nation`'s log holds it (pure). `gateway`: the nation whose gateway decided."""
    details: dict[str, str | bool] = {"gateway": gateway, "federated": federated}
    if reason_codes:
        details["reasonCodes"] = ",".join(reason_codes)[:256]
    if trace_id:
        details["traceId"] = trace_id[:256]
    return AuditRecord(
        time=time_ or datetime.now(UTC),
        nation=nation,
        kind="decision",
        event="policy-decision",
        actor=AuditActor(sub=subject, nation=subject_nation),
        resources=list(resources),
        decision=AuditDecision(
            outcome="allowed" if allowed else "denied",
            policy_ids=list(policy_ids),
            bundle_version=bundle_version,
        ),
        details=details,
    )


class _NationVault:
    """A Vault client logged in as the nation, renewed from the token file when due or after a 403."""

    def __init__(self, sink: AuditSink) -> None:
        self._sink = sink
        self._client: hvac.Client | None = None
        self._login_again_at = 0.0
        self._guard = threading.Lock()

    def client(self) -> hvac.Client:
        with self._guard:
            if self._client is None or time.monotonic() >= self._login_again_at:
                jwt = Path(self._sink.token_file).read_text().strip()  # re-read: the file is refreshed
                client, ttl = vault_client.kubernetes_login(
                    self._sink.vault_addr, self._sink.auth_mount, self._sink.role, jwt
                )
                self._client = client
                renew_in = ttl * RENEW_AT_FRACTION if ttl > 0 else float("inf")  # no TTL: until a 403
                self._login_again_at = time.monotonic() + renew_in
            return self._client

    def forget(self) -> None:
        with self._guard:
            self._client = None


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=WRITER_CONCURRENCY)
class AuditWriter:
    """The one writer of a nation's `decisions` log (a named actor; threaded, so appends share fsyncs)."""

    def __init__(self, nation: str, sink: dict[str, Any]) -> None:
        self.nation = nation
        self._guard = threading.Lock()
        self._sink: AuditSink | None = None
        self._vault: _NationVault | None = None
        self._log: AuditLog | None = None
        self.configure(sink)

    def configure(self, sink: dict[str, Any]) -> None:
        """Open (or reopen, when the sink changed) the nation's decisions log."""
        wanted = AuditSink.model_validate(sink)
        with self._guard:
            if wanted == self._sink and self._log is not None:
                return
            if self._log is not None:
                self._log.close()
            vault = _NationVault(wanted)
            directory = stream_directory(Path(wanted.directory), self.nation, DECISIONS_STREAM)
            self._log = AuditLog(directory, self.nation, vault.client, transit_mount=wanted.transit_mount)
            self._sink, self._vault = wanted, vault

    def append(self, record_json: str) -> int:
        """Append one record (its JSON); returns its seq once it is fsync'd."""
        record = AuditRecord.model_validate_json(record_json)
        log, vault = self._log, self._vault
        assert log is not None and vault is not None
        try:
            return log.append(record)
        except hvac.exceptions.Forbidden:
            # The Vault token expired or was revoked early: log in again (re-reading the token file) once.
            # Nothing was sealed: the data key is made before the record is.
            vault.forget()
            return log.append(record)

    def last_seq(self) -> int:
        assert self._log is not None
        return self._log.last_seq


class AuditClient:
    """A gateway replica's side of the audit writers: its own nation's, and same-cluster owners'."""

    def __init__(self, nation: str, sink: AuditSink) -> None:
        self.nation, self.sink = nation.upper(), sink
        self._writers: dict[str, ray.actor.ActorHandle] = {}

    def _own_writer(self) -> ray.actor.ActorHandle:
        options: dict[str, Any] = {
            "name": audit_writer_name(self.nation),
            "namespace": AUDIT_NAMESPACE,
            "get_if_exists": True,
            "lifetime": "detached",
        }
        if self.sink.ray_resource:
            options["resources"] = {self.sink.ray_resource: 0.001}
        return AuditWriter.options(**options).remote(self.nation, self.sink.model_dump(by_alias=True))

    async def configure(self, sink: AuditSink | None = None) -> None:
        """Create (or find) the nation's writer and hand it the sink; call from the gateway's reconfigure."""
        self.sink = sink or self.sink
        actor = await asyncio.to_thread(self._own_writer)
        await actor.configure.remote(self.sink.model_dump(by_alias=True))
        self._writers[self.nation] = actor

    async def _writer(self, nation: str) -> ray.actor.ActorHandle:
        actor = self._writers.get(nation)
        if actor is not None:
            return actor
        if nation == self.nation:
            await self.configure()
            return self._writers[nation]
        try:  # another nation's writer: its own gateway made it, with its own sink (never made from here)
            actor = await asyncio.to_thread(ray.get_actor, audit_writer_name(nation), AUDIT_NAMESPACE)
        except ValueError as error:
            missing = f"the audit writer of {nation} is not running in this Ray cluster"
            raise AuditUnavailable(missing) from error
        self._writers[nation] = actor
        return actor

    async def _append(self, nation: str, record: AuditRecord) -> int:
        payload = record.model_dump_json(by_alias=True)
        for attempt in range(2):
            try:
                actor = await self._writer(nation)
                return int(await actor.append.remote(payload))
            except RayActorError:
                logger.warning("the audit writer of %s is unreachable (attempt %d)", nation, attempt + 1)
                self._writers.pop(nation, None)
            except AuditUnavailable:
                raise
            except (RayError, OSError) as error:
                # The writer ran but could not make the record durable (Vault refused, disk failed, ...).
                failed = f"{nation}'s audit log did not record the decision: {error}"
                raise AuditUnavailable(failed) from error
        raise AuditUnavailable(f"the audit writer of {nation} is unavailable")

    async def record_decision(
        self,
        *,
        subject: str,
        subject_nation: str,
        resources: Sequence[str],
        owners: Sequence[str] = (),
        allowed: bool,
        reason_codes: Sequence[str] = (),
        policy_ids: Sequence[str] = (),
        bundle_version: str,
        federated: bool = False,
        trace_id: str | None = None,
    ) -> None:
        """Record one decision; returns once it is durable in every log it belongs to, else raises
        AuditUnavailable.

        `owners`: the nations owning `resources`, as the gateway's config knows them (never guessed from a
        requested name: a request for an unknown model must not reach, or fail on, some nation's log). The
        record goes to this gateway's nation's log and, unless `federated` (the owner's gateway decides and
        records itself), to every other owner's log (same Ray cluster: its writer must be running).
        """
        others = set() if federated else {owner.upper() for owner in owners} - {self.nation}
        nations = [self.nation, *sorted(others)]
        try:
            records = [
                decision_record(
                    nation,
                    subject=subject,
                    subject_nation=subject_nation,
                    resources=resources,
                    allowed=allowed,
                    reason_codes=reason_codes,
                    policy_ids=policy_ids,
                    bundle_version=bundle_version,
                    federated=federated,
                    trace_id=trace_id,
                    gateway=self.nation,
                )
                for nation in nations
            ]
        except ValueError as error:  # a record that does not validate (e.g. a subject too long)
            raise AuditUnavailable(f"the decision could not be recorded: {error}") from error
        await asyncio.gather(*(self._append(record.nation, record) for record in records))
