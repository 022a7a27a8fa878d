"""One request after authentication: whom it is charged, what it reserved, its refusal in the audit log.

`_admit` (gateway/_app.py) sets the request's `Admission` (`set_admission`) once the caller is
authenticated; the gateway's error handler then records any refusal of that request (`refusal_recorded`):
400, 403, 413, 429 and the gateway's own 503s, in the gateway nation's log, as a `refusal` record
(`request-refused`: the caller, the route, the status, the OpenAI error code and parameter; never
content). A 403 that follows the request's recorded policy denial is not recorded twice, and nothing more
is attempted once the audit log could not take the request's decision. A refusal before authentication
(401) has no caller to record: it is counted in `ray_sovereign_unauthenticated_requests_total` instead
(gateway/_telemetry.py).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.requests import Request

from sovereign.domain.markings import Principal
from sovereign.telemetry import current_trace_id
from sovereign_serving.audit_writer import AuditClient, AuditUnavailable

from ._errors import GatewayError
from ._ratelimit import Reservation

logger = logging.getLogger("sovereign.gateway")


def is_refusal(status: int) -> bool:
    """A client error other than 401, or the gateway's own 503; not a failure of the model (502)."""
    return (400 <= status < 500 and status != 401) or status == 503


@dataclass
class Admission:
    """An authenticated request: its caller, its token reservation, and what its audit records hold."""

    principal: Principal
    federated: bool
    audit: AuditClient | None
    reservation: Reservation | None = None
    denial_recorded: bool = False  # a denied decision of this request is in the log (its 403 is not again)
    audit_failed: bool = False  # the log did not take this request's decision: no refusal record either


_ADMISSION: ContextVar[Admission | None] = ContextVar("sovereign_admission", default=None)


def current_admission() -> Admission | None:
    """The current request's Admission (None before its caller is authenticated)."""
    return _ADMISSION.get()


def set_admission(admission: Admission | None) -> None:
    _ADMISSION.set(admission)


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
    except AuditUnavailable as failure:
        logger.error("a refusal (%d %s) could not be recorded: %s", error.status, error.code, failure)
