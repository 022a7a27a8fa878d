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
failure raises `AuditUnavailable`: the caller refuses the request (fail closed); its `outage` says when the
cause is the nation's Vault being sealed or unreachable (a new data key was needed: a writer holding one keeps
appending meanwhile), and the next append once Vault is back succeeds. The client batches: records
for one nation that arrive while a call to its writer is in flight go together in the next call
(`append_many`, one fsync for the lot), the same group commit as AuditLog's, one level up, since an actor
call costs both processes far more than the fsync it would share. `record_refusal` writes a refusal after
authentication (a `refusal` record: status and codes, no content) to the gateway nation's log only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hvac
import ray
from pydantic import TypeAdapter
from ray.exceptions import RayActorError, RayError

from sovereign.audit import (
    DECISIONS_STREAM,
    REFUSAL_EVENT,
    AuditActor,
    AuditDecision,
    AuditLog,
    AuditRecord,
    stream_directory,
)
from sovereign.clients.vault import VAULT_ERRORS, VaultUnavailable, classify_vault_error
from sovereign.domain.nations import GATEWAY_ACTOR_NAMESPACE, audit_writer_name
from sovereign.serving_contract import AuditSink
from sovereign_serving.nation_vault import (
    RENEW_AT_FRACTION,  # noqa: F401  (where it was)
    vault_outage,
)
from sovereign_serving.nation_vault import NationVault as _NationVault

logger = logging.getLogger("sovereign.gateway.audit")

AUDIT_NAMESPACE = GATEWAY_ACTOR_NAMESPACE  # the QuotaKeepers' namespace: every gateway's helper actors
WRITER_CONCURRENCY = 64  # appends in flight at once; they share fsyncs (group commit)
MAX_BATCH = 256  # records per writer call from one client: bounds a call's size and a failure's reach
WRITER_TIMEOUT_SECONDS = 30.0  # a writer call (its restart included) taking longer is a refusal, not a wait


_RECORDS = TypeAdapter(list[AuditRecord])


class AuditUnavailable(RuntimeError):
    """A decision could not be recorded durably; the request it belongs to must be refused.

    `outage`: set when the cause is the nation's Vault being sealed or unreachable (no data key could be
    made), so the gateway can say so (503 `vault_sealed` / `vault_unreachable`).
    """

    def __init__(self, message: str, outage: VaultUnavailable | None = None) -> None:
        super().__init__(message)
        self.outage = outage


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
    federation_link: str | None = None,
) -> AuditRecord:
    """One policy decision as `nation`'s log holds it (pure). `gateway`: the nation whose gateway decided;
    `federation_link`: the id that the caller's and the owner's records of one cross-nation call share."""
    details: dict[str, str | bool] = {"gateway": gateway, "federated": federated}
    if federation_link:
        details["federationLink"] = federation_link[:128]
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


def refusal_record(
    nation: str,
    *,
    subject: str,
    subject_nation: str,
    status: int,
    code: str | None,
    param: str | None,
    route: str | None,
    federated: bool,
    trace_id: str | None,
    time_: datetime | None = None,
) -> AuditRecord:
    """One refusal after authentication as the gateway nation's log holds it (pure): who, the route, the
    status, the OpenAI error code and parameter it named; names and codes only, never content."""
    details: dict[str, str | int | bool] = {"gateway": nation, "federated": federated, "status": status}
    for name, value in (("code", code), ("param", param), ("route", route), ("traceId", trace_id)):
        if value:
            details[name] = value[:256]
    return AuditRecord(
        time=time_ or datetime.now(UTC),
        nation=nation,
        kind="refusal",
        event=REFUSAL_EVENT,
        actor=AuditActor(sub=subject, nation=subject_nation),
        details=details,
    )


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=WRITER_CONCURRENCY)
class AuditWriter:
    """The one writer of a nation's `decisions` log (a named actor; threaded, so appends share fsyncs)."""

    def __init__(self, nation: str, sink: dict[str, Any]) -> None:
        self.nation = nation
        self._guard = threading.Lock()
        self._sink: AuditSink | None = None
        self._vault: _NationVault | None = None
        self._log: AuditLog | None = None
        self._counting = threading.Lock()  # not _guard: a reconfigure holds that while the old log drains
        self._calls = self._received = 0
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
        return self.append_many([record_json])[0]

    def append_many(self, records_json: list[str]) -> list[int]:
        """Append records (their JSON) in order; returns their seqs once all are fsync'd (one fsync)."""
        with self._counting:
            self._calls += 1
            self._received += len(records_json)
        # Validated here too: records come from other processes. One parse of a JSON array is a little
        # cheaper than one per record; a record that does not validate fails the whole batch.
        records = _RECORDS.validate_json("[" + ",".join(records_json) + "]")
        if len(records) != len(records_json):  # an item holding two values would otherwise pass the join
            raise ValueError(f"{len(records_json)} records sent, {len(records)} parsed")
        log, vault, sink = self._writable_log(), self._vault, self._sink
        assert vault is not None and sink is not None
        try:
            try:
                return log.append_many(records)
            except hvac.exceptions.Forbidden:
                # The Vault token expired or was revoked early: log in again (re-reading the token file)
                # once. A data key is made before the record it seals, so nothing was sealed, unless the key
                # was due for rotation mid-batch: then the records sealed before it are appended again (a
                # duplicate, never a loss).
                vault.forget()
                return log.append_many(records)
        except VAULT_ERRORS as error:
            # Vault sealed or down while a new data key was needed: nothing of this batch is acknowledged,
            # and the log stays open (a failed data key seals nothing), so the next append after Vault is
            # back succeeds. A writer still holding a data key keeps appending meanwhile.
            outage = classify_vault_error(error, sink.vault_addr)
            if outage is None:
                raise
            logger.error("%s's audit log cannot make a data key: %s", self.nation, outage)
            if outage is error:
                raise
            raise outage from error

    def _writable_log(self) -> AuditLog:
        """The log, opened again when a write of it failed (a full disk, an I/O error): an AuditLog appends
        nothing after a failed write, and reopening it removes a torn last line (never acknowledged), so the
        chain goes on from its last whole record once the cause is gone. Until then this raises (refused)."""
        with self._guard:
            log, vault, sink = self._log, self._vault, self._sink
            assert log is not None and vault is not None and sink is not None
            if log.failed is None:
                return log
            logger.error("%s's audit log failed to write (%s): reopening it", self.nation, log.failed)
            with contextlib.suppress(OSError):
                log.close()
            directory = stream_directory(Path(sink.directory), self.nation, DECISIONS_STREAM)
            self._log = AuditLog(directory, self.nation, vault.client, transit_mount=sink.transit_mount)
            return self._log

    def stats(self) -> dict[str, int]:
        """Calls to `append`/`append_many` and the records they brought, since the actor started."""
        with self._counting:
            return {"calls": self._calls, "records": self._received}

    def last_seq(self) -> int:
        assert self._log is not None
        return self._log.last_seq


class AuditClient:
    """A gateway replica's side of the audit writers: its own nation's, and same-cluster owners'."""

    def __init__(self, nation: str, sink: AuditSink) -> None:
        self.nation, self.sink = nation.upper(), sink
        self._writers: dict[str, ray.actor.ActorHandle] = {}
        # Per nation: records waiting for the next writer call, and the task making the calls (if any).
        self._pending: dict[str, list[tuple[str, asyncio.Future[int]]]] = {}
        self._senders: dict[str, asyncio.Task[None]] = {}

    def _own_writer(self) -> ray.actor.ActorHandle:
        options: dict[str, Any] = {
            "name": audit_writer_name(self.nation),
            "namespace": AUDIT_NAMESPACE,
            "get_if_exists": True,
            "lifetime": "detached",
            # No task events: every decision is an append, and Ray's GCS would keep each call's events (as
            # for the gateway's QuotaKeeper).
            "enable_task_events": False,
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
        """Queue the record for `nation`'s writer; returns its seq once its batch is durable."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(nation, []).append((record.model_dump_json(by_alias=True), future))
        sender = self._senders.get(nation)
        if sender is None or sender.done():
            # A task of its own, not the caller's: a caller cancelled (client gone) must not cancel the
            # call carrying other callers' records.
            self._senders[nation] = asyncio.create_task(self._send(nation))
        return await future

    async def _send(self, nation: str) -> None:
        """Send `nation`'s pending records, one writer call at a time, until none is left."""
        queue = self._pending.setdefault(nation, [])
        batch: list[tuple[str, asyncio.Future[int]]] = []
        try:
            while queue:
                batch = queue[:MAX_BATCH]
                del queue[:MAX_BATCH]
                try:
                    seqs = await self._append_many(nation, [payload for payload, _ in batch])
                except AuditUnavailable as error:
                    for _, future in batch:  # every caller of a failed batch is refused
                        if not future.done():
                            failed = AuditUnavailable(str(error), error.outage)
                            failed.__cause__ = error.__cause__
                            future.set_exception(failed)
                    continue
                for (_, future), seq in zip(batch, seqs, strict=True):
                    if not future.done():
                        future.set_result(seq)
        except BaseException as error:  # cancelled (loop closing) or a bug: fail closed, leave no waiter
            for _, future in [*batch, *queue]:
                if not future.done():
                    future.set_exception(AuditUnavailable(f"the audit writer of {nation} was not reached"))
            queue.clear()
            if not isinstance(error, Exception):
                raise
            logger.exception("sending records to the audit writer of %s failed", nation)

    async def _append_many(self, nation: str, payloads: list[str]) -> list[int]:
        for attempt in range(2):
            try:
                seqs = await asyncio.wait_for(self._call_writer(nation, payloads), WRITER_TIMEOUT_SECONDS)
            except TimeoutError as error:  # a writer restarting that never comes back: refused, not hung
                late = f"the audit writer of {nation} did not answer within {WRITER_TIMEOUT_SECONDS:.0f} s"
                raise AuditUnavailable(late) from error
            except RayActorError:
                logger.warning("the audit writer of %s is unreachable (attempt %d)", nation, attempt + 1)
                self._writers.pop(nation, None)
                continue
            except AuditUnavailable:
                raise
            except (RayError, OSError) as error:
                # The writer ran but could not make the records durable (Vault refused, disk failed, ...).
                failed = f"{nation}'s audit log did not record the decision: {error}"
                raise AuditUnavailable(failed, vault_outage(error)) from error
            if len(seqs) != len(payloads):
                answered = f"{nation}'s audit writer answered {len(seqs)} seqs for {len(payloads)} records"
                raise AuditUnavailable(answered)
            return seqs
        raise AuditUnavailable(f"the audit writer of {nation} is unavailable")

    async def _call_writer(self, nation: str, payloads: list[str]) -> list[int]:
        actor = await self._writer(nation)
        return [int(seq) for seq in await actor.append_many.remote(payloads)]

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
        federation_link: str | None = None,
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
                    federation_link=federation_link,
                )
                for nation in nations
            ]
        except ValueError as error:  # a record that does not validate (e.g. a subject too long)
            raise AuditUnavailable(f"the decision could not be recorded: {error}") from error
        outcomes = await asyncio.gather(
            *(self._append(record.nation, record) for record in records), return_exceptions=True
        )
        for outcome in outcomes:  # the gateway nation's own failure first, whichever came back first
            if isinstance(outcome, BaseException):
                raise outcome

    async def record_refusal(
        self,
        *,
        subject: str,
        subject_nation: str,
        status: int,
        code: str | None,
        param: str | None = None,
        route: str | None = None,
        federated: bool = False,
        trace_id: str | None = None,
    ) -> None:
        """Record one refusal after authentication (400, 403, 413, 429, the gateway's own 503s) in this
        gateway nation's log only; returns once it is durable, else raises AuditUnavailable."""
        try:
            record = refusal_record(
                self.nation,
                subject=subject,
                subject_nation=subject_nation,
                status=status,
                code=code,
                param=param,
                route=route,
                federated=federated,
                trace_id=trace_id,
            )
        except ValueError as error:
            raise AuditUnavailable(f"the refusal could not be recorded: {error}") from error
        await self._append(self.nation, record)
