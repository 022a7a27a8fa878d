"""Decision: every model and dataset a request names is decided by the nation's policy, traced, counted and
recorded in the nation's audit log before anything is answered, allowed or denied.

One way for both: the `policy decide` span and metric (`_telemetry.py`), then the record (`record_decision`,
fail closed: without its record, no answer). Only then is a denial turned into the one 403
(`Access.permitted`, `Access.permitted_dataset`).

One exception to "record, then act": a request allowed on the nation's own model, served in this Ray
cluster, may reach that model while its record is on its way (`Decisions.model_begun`), since the record's
round trip to the writer is as long as a small model's answer. Nothing is answered before the record is
durable (`Recording.durable`: a failed record still refuses the request, the model's answer is dropped);
another nation's model, a forwarded call and a dataset never see the request before its record is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import TypeVar

from sovereign.domain.markings import Principal
from sovereign.serving_contract import GatewayDataset
from sovereign.telemetry import current_trace_id
from sovereign_serving.audit_writer import AuditUnavailable

from . import _telemetry as telemetry
from ._access import Access
from ._admission import current_admission
from ._decision_types import DatasetDecision, ModelDecision
from ._errors import unavailable, vault_unavailable
from ._federation import current_link, received_link

T = TypeVar("T")
MAX_RECORDED_NAME = 256  # an audit record's resource names are at most this long

logger = logging.getLogger("sovereign.gateway")

# How a decision is made durable: `record_decision`, or a stand-in where no audit log is kept (tests).
Recorder = Callable[[Access, Principal, ModelDecision | DatasetDecision, bool], Awaitable[None]]


async def record_decision(
    access: Access, principal: Principal, decision: ModelDecision | DatasetDecision, federated: bool
) -> None:
    """The decision, durable in this nation's audit log (and the owner's, when another nation's model
    is served from this Ray cluster). Fail closed: without its record, no answer, allowed or denied.
    A cross-nation call (a federation route's, or one this gateway will forward) carries the request's
    `federationLink`, which the owner's record of the same call carries too."""
    admission = current_admission()
    if admission is None or admission.audit is None:
        return
    remote = not federated and decision.allowed and _reached_remotely(access, decision)
    link = received_link() if federated else current_link() if remote else None
    # The owner's own gateway records a call forwarded to it; only same-cluster owners here.
    owners = [decision.owner] if decision.owner and not remote else []
    try:
        with telemetry.audit_append(access.nation, "decision"):
            await admission.audit.record_decision(
                subject=principal.sub,
                subject_nation=principal.issuer_nation,
                resources=[decision.resource[:MAX_RECORDED_NAME]],
                owners=owners,
                allowed=decision.allowed,
                reason_codes=decision.reason_codes,
                policy_ids=decision.deciding_policy_ids,
                bundle_version=decision.bundle_version,
                federated=federated,
                trace_id=current_trace_id(),
                federation_link=link,
            )
        if not decision.allowed:
            admission.denial_recorded = True  # its 403 is not recorded again as a refusal
    except AuditUnavailable as error:
        logger.error("request refused, its decision could not be recorded: %s", error)
        admission.audit_failed = True
        if error.outage is not None:
            raise vault_unavailable(error.outage) from None
        raise unavailable(
            "the decision cannot be recorded in the audit log, so nothing is served",
            code="audit_unavailable",
        ) from None


def _own_model_here(access: Access, decision: ModelDecision) -> bool:
    """Whether the decided model is the nation's own and served in this Ray cluster (no federationUrl)."""
    found = access.models.get(decision.resource)
    return (
        found is not None
        and found.federation_url is None
        and (decision.owner or "").upper() == access.nation.upper()
    )


def _reached_remotely(access: Access, decision: ModelDecision | DatasetDecision) -> bool:
    """Whether the decided model or dataset is served at its owner's gateway (it has a federationUrl)."""
    catalogue = access.models if isinstance(decision, ModelDecision) else access.datasets
    found = catalogue.get(decision.resource)
    return found is not None and found.federation_url is not None


class Recording:
    """A decision's record on its way to the durable log, in a task of its own: a request cancelled (its
    client gone) does not cancel the record."""

    def __init__(self, record: Awaitable[None] | None) -> None:
        self._task = asyncio.ensure_future(record) if record is not None else None

    async def durable(self) -> None:
        """Returns once the record is durable; raises what recording it raised (503: nothing is served)."""
        if self._task is not None:
            await asyncio.shield(self._task)


DURABLE = Recording(None)  # a record already awaited


@contextlib.asynccontextmanager
async def durable_first(recording: Recording) -> AsyncIterator[None]:
    """Around the checks made after a decision: a refusal they raise (400, 429) waits for the decision's
    record, and a record that failed refuses the request instead (503), as if it had been awaited first."""
    try:
        yield
    except Exception:  # a cancelled request (its client gone) answers nothing: no need to wait
        await recording.durable()
        raise


async def answered_when_durable(recording: Recording, answer: Awaitable[T]) -> T:
    """The model's answer, once the decision's record is durable (the model runs meanwhile). A failed record
    drops the answer and refuses the request; a failed model call is raised once the record is durable."""
    call = asyncio.ensure_future(answer)
    try:
        await recording.durable()
    except BaseException:
        call.cancel()
        with contextlib.suppress(BaseException):
            await call
        raise
    return await call


class Decisions:
    """The request's decisions, each traced, counted and recorded (`record`) before anything is answered."""

    def __init__(self, record: Recorder = record_decision) -> None:
        self._record = record

    async def model_begun(
        self, access: Access, principal: Principal, model: str, federated: bool, *, overlap: bool = True
    ) -> tuple[ModelDecision, Recording]:
        """The decision on the request's model, and its record: already durable, unless the model is the
        nation's own in this cluster and the request was allowed (then the caller calls the model and
        awaits `durable()` before answering anything)."""
        decision = telemetry.decided(
            access.nation, principal, lambda: access.decide_model(principal, model, owned_only=federated)
        )
        record = self._record(access, principal, decision, federated)
        if overlap and decision.allowed and not federated and _own_model_here(access, decision):
            return decision, Recording(record)
        await record
        return decision, DURABLE

    async def datasets(
        self, access: Access, principal: Principal, names: Sequence[str], federated: bool
    ) -> list[GatewayDataset]:
        """Each dataset decided (`read`) like the model; then the one 403 for the first denied (every
        decision is recorded first, so the audit shows them all)."""
        decisions = []
        for name in names:
            decide = partial(access.decide_dataset, principal, name, owned_only=federated)
            decision = telemetry.decided_dataset(access.nation, principal, decide)
            await self._record(access, principal, decision, federated)
            decisions.append(decision)
        return [access.permitted_dataset(principal, decision) for decision in decisions]
