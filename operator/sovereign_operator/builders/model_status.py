"""A ModelDeployment's status from where it runs (pure): conditions, endpoint and the Ray application's state.

Conditions (kstatus): Admitted (its nation's Tenant is Ready and its spec is served), IntegrityVerified (every
file matched its sha256 before loading: the model server refuses to start otherwise), Ready (the Ray Serve
application is RUNNING and every gateway routes to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sovereign_operator.builders.conditions import Condition, merge_conditions, status_is_ready

ADMITTED = "Admitted"
INTEGRITY_VERIFIED = "IntegrityVerified"
READY = "Ready"
MESSAGE_LIMIT = 1024  # Ray's messages carry tracebacks; keep the status readable
# How the model server names a failed weight check (serving/sovereign_serving/integrity.py: IntegrityError).
INTEGRITY_FAILURE_MARKERS = ("IntegrityError", "integrity check failed")


# Not one of Ray Serve's statuses: the serving pass gives it to every application when the runtime cannot be
# reached or refuses the configuration.
RUNTIME_UNAVAILABLE = "RUNTIME_UNAVAILABLE"


@dataclass(frozen=True)
class Placement:
    """Where the operator put a model: not served (and why), or its Ray application's state."""

    served: bool
    reason: str = ""  # why not served (CamelCase) when served is False
    message: str = ""
    application: str = ""
    app_status: str = ""  # Ray Serve's: NOT_STARTED, DEPLOYING, DEPLOY_FAILED, RUNNING, UNHEALTHY, DELETING
    app_message: str = ""
    endpoint: str = ""


def model_deployment_status(
    placement: Placement, live_status: dict[str, Any], generation: int | None, routed: bool = True
) -> dict[str, Any]:
    """The status to store (whole; compare with the live one before writing).

    `routed`: every gateway runs the configuration that routes to the model (`ServingPlan.routed`). A model
    becomes Ready only then, so that a request through any nation's endpoint answers; once Ready it stays so
    while its application runs (a gateway taking a later configuration still routes to it)."""
    if not placement.served:
        conditions = [
            Condition(ADMITTED, False, placement.reason, placement.message),
            Condition(INTEGRITY_VERIFIED, None, "NotStarted", "the model is not deployed"),
            Condition(READY, False, placement.reason, placement.message),
        ]
        return {
            "conditions": merge_conditions(live_status.get("conditions"), conditions, generation),
            "observedGeneration": generation,
            "endpoint": None,
            "rayApplication": None,
            "rayApplicationStatus": None,
            "rayApplicationMessage": None,
        }
    status, message = placement.app_status or "NOT_STARTED", _short(placement.app_message)
    integrity_failed = status == "DEPLOY_FAILED" and any(m in message for m in INTEGRITY_FAILURE_MARKERS)
    if status == "RUNNING":
        integrity = Condition(INTEGRITY_VERIFIED, True, "DigestsMatch", "every file matched its sha256")
        if routed or status_is_ready(live_status):
            ready = Condition(READY, True, "Running", f"serving at {placement.endpoint}")
        else:
            ready = Condition(READY, False, "Routing", "running: waiting for every gateway to route to it")
    elif integrity_failed:
        integrity = Condition(INTEGRITY_VERIFIED, False, "DigestMismatch", message)
        ready = Condition(READY, False, "IntegrityCheckFailed", message)
    elif status == RUNTIME_UNAVAILABLE:
        integrity = Condition(INTEGRITY_VERIFIED, None, "NotVerified", "the serving runtime is unavailable")
        ready = Condition(READY, False, "RuntimeUnavailable", message or "the serving runtime is unavailable")
    elif status in ("DEPLOY_FAILED", "UNHEALTHY"):
        integrity = Condition(INTEGRITY_VERIFIED, None, "NotVerified", "the model server did not start")
        ready = Condition(READY, False, _camel(status), message or f"Ray application is {status}")
    else:
        integrity = Condition(INTEGRITY_VERIFIED, None, "Verifying", "checked when the model server starts")
        ready = Condition(READY, False, _camel(status), message or f"Ray application is {status}")
    conditions = [
        Condition(ADMITTED, True, "Deployed", f"Ray Serve application {placement.application}"),
        integrity,
        ready,
    ]
    return {
        "conditions": merge_conditions(live_status.get("conditions"), conditions, generation),
        "observedGeneration": generation,
        "endpoint": placement.endpoint,
        "rayApplication": placement.application,
        "rayApplicationStatus": status,
        "rayApplicationMessage": message,
    }


def _short(message: str) -> str:
    # Ray's messages end with the exception that says what went wrong: keep the end.
    message = message.strip()
    return message if len(message) <= MESSAGE_LIMIT else "…" + message[-(MESSAGE_LIMIT - 1) :]


def _camel(status: str) -> str:
    return "".join(part.capitalize() for part in status.split("_"))
