"""Admission: who is asking (a user's token, or on a federation route a peer gateway's assertion), one request
of their quotas, their tokens reserved and settled, and every refusal after that in the audit log.

`Gate.admit` authenticates the caller and charges it one request (its user's, its nation's and, from another
nation, this nation's cap on it: `_ratelimit.py`), then sets the request's `Admission`; from there on the
gateway's error handler records any refusal of that request (`refusal_recorded`): 400, 403, 413, 429 and the
gateway's own 503s, in the gateway nation's log, as a `refusal` record (`request-refused`: the caller, the
route, the status, the OpenAI error code and parameter; never content). A 403 that follows the request's
recorded policy denial is not recorded twice, and nothing more is attempted once the audit log could not
take the request's decision. A refusal before authentication (401) has no caller to record: it is counted in
`ray_sovereign_unauthenticated_requests_total` instead (gateway/_telemetry.py).

The body is read once (up to MAX_BODY_BYTES, 413 beyond), after the caller is charged on the public routes
(refusals cost the caller too) and before on the federation routes (the assertion is signed for it), and
handed on as bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.requests import Request

from sovereign.domain.markings import Principal
from sovereign.identity.federation_assertions import ReplayCache
from sovereign.telemetry import current_trace_id
from sovereign_serving.audit_writer import AuditClient, AuditUnavailable

from . import _telemetry as telemetry
from ._access import Access
from ._errors import GatewayError
from ._federation import set_link
from ._openai import read_body
from ._ratelimit import QuotaClient, Reservation
from ._routes import Operation

logger = logging.getLogger("sovereign.gateway")


def is_refusal(status: int) -> bool:
    """A client error other than 401, or the gateway's own 503; not a failure of the model (502)."""
    return (400 <= status < 500 and status != 401) or status == 503


@dataclass(frozen=True)
class Configured:
    """What the gateway's current valid config gives each request: who may do what, and its nation's
    quota and audit clients (None: the config turns audit off)."""

    access: Access
    quota: QuotaClient
    audit: AuditClient | None


@dataclass
class Admission:
    """An authenticated request: its caller, its token reservation, and what its audit records hold."""

    principal: Principal
    federated: bool
    audit: AuditClient | None
    quota: QuotaClient
    reservation: Reservation | None = None
    denial_recorded: bool = False  # a denied decision of this request is in the log (its 403 is not again)
    audit_failed: bool = False  # the log did not take this request's decision: no refusal record either


@dataclass(frozen=True)
class Admitted:
    """The caller of an admitted request, the config it is served under, and its body's bytes."""

    access: Access
    principal: Principal
    body: bytes


_ADMISSION: ContextVar[Admission | None] = ContextVar("sovereign_admission", default=None)


def current_admission() -> Admission | None:
    """The current request's Admission (None before its caller is authenticated)."""
    return _ADMISSION.get()


def set_admission(admission: Admission | None) -> None:
    _ADMISSION.set(admission)


class Gate:
    """A replica's admission of requests under its current config (`configured`: 503 when there is none)."""

    def __init__(self, configured: Callable[[], Configured]) -> None:
        self._configured = configured
        self._replay = ReplayCache()  # the jtis of peer gateways' assertions this replica accepted

    async def admit(self, request: Request, operation: Operation, federated: bool) -> Admitted:
        """The authenticated caller, charged one request; from here on a refusal is audited. The body is
        read for every operation but the model list."""
        set_admission(None)
        current = self._configured()
        access = current.access
        authorization = request.headers.get("authorization")
        body = b""
        if federated:

            async def peer_gateway() -> Principal:
                nonlocal body
                body = await read_body(request)  # the assertion is signed for these bytes
                return await self._peer_gateway(current, operation, authorization, body)

            principal = await telemetry.authenticated(access.nation, peer_gateway)
        else:
            set_link(None)  # a new one if the request reaches another nation's gateway
            principal = await telemetry.authenticated(
                access.nation, lambda: access.authenticate(authorization)
            )
        set_admission(Admission(principal, federated, current.audit, current.quota))
        await current.quota.admit(principal.issuer_nation, principal.sub)
        if not federated and operation is not Operation.MODELS:
            body = await read_body(request)
        return Admitted(access, principal, body)

    async def _peer_gateway(
        self, current: Configured, operation: Operation, authorization: str | None, body: bytes
    ) -> Principal:
        """A federation route's caller: a peer nation's gateway assertion for this route and exactly this
        body, never a user's token, used once by the nation's gateway (the replica's cache, then the nation's
        QuotaKeeper); its link id goes into the records."""
        verified = current.access.authenticate_gateway(authorization, operation.path, body, self._replay)
        await current.quota.first_use(verified.jti, verified.expires_at)
        set_link(verified.link)
        return verified.principal


async def reserve(tokens: int) -> None:
    """The request's tokens reserved from its caller's quotas before the model runs (429 if they do not
    fit); `charge` settles them."""
    admission = current_admission()
    if admission is not None:
        principal = admission.principal
        admission.reservation = await admission.quota.reserve(principal.issuer_nation, principal.sub, tokens)


def charge(tokens: int | None) -> None:
    """Settle the request's reservation with the tokens it used (None: unknown, so it pays what it
    reserved)."""
    admission = current_admission()
    if admission is not None and admission.reservation is not None:
        admission.quota.settle(admission.reservation, tokens)


async def refusal_recorded(request: Request, error: GatewayError) -> None:
    """The refusal of an authenticated request, durable in the gateway nation's log (when it keeps one).

    The refusal stands whatever happens here; a record that cannot be made is logged (by its status and
    code) and the refusal is answered all the same.
    """
    admission = current_admission()
    if admission is None or admission.audit is None or not is_refusal(error.status):
        return
    if admission.audit_failed or (error.status == 403 and admission.denial_recorded):
        return
    route = getattr(request.scope.get("route"), "path", None)
    principal = admission.principal
    try:
        with telemetry.audit_append(admission.audit.nation, "refusal"):
            await admission.audit.record_refusal(
                subject=principal.sub,
                subject_nation=principal.issuer_nation,
                status=error.status,
                code=error.code,
                param=error.param,
                route=route if isinstance(route, str) else None,
                federated=admission.federated,
                trace_id=current_trace_id(),
            )
    except AuditUnavailable as error_:
        logger.error("a refusal (%d %s) could not be recorded: %s", error.status, error.code, error_)
