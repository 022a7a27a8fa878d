"""The platform's only way to Ray: the Ray dashboard's Serve REST API (what `serve deploy` and KubeRay use).

`PUT /api/serve/applications/` takes a whole `ServeDeploySchema` body and is declarative for the whole Ray
cluster: applications missing from it are deleted. `GET /api/serve/applications/` returns the Serve instance's
details: every application with its status, message and deployments (Ray Serve docs: "Serve REST API").
Connection errors are retried (the dashboard may still be starting); an answer that is not 2xx is not.

Token authentication: Ray 2.60 turns it on for a cluster started with `RAY_AUTH_MODE=token`, and also,
silently, for any `ray start` while `~/.ray/auth_token` exists and `RAY_AUTH_MODE` is unset (a local
`ray.init()` writes that file). The dashboard then answers 401 without `Authorization: Bearer <token>`; pass
the cluster's token as `token`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from sovereign.telemetry import TracedTransport

SERVE_APPLICATIONS_PATH = "/api/serve/applications/"
CONNECT_ATTEMPTS = 5


class RayServeError(RuntimeError):
    """The dashboard answered, but refused or failed the request; the message is Ray's own."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"Ray dashboard answered {status_code}: {message}")
        self.status_code = status_code
        self.message = message


class RayUnavailable(RuntimeError):
    """The Ray dashboard could not be reached."""


_retry_connection_errors = retry(
    retry=retry_if_exception_type((httpx.ConnectError, httpx.ConnectTimeout)),
    stop=stop_after_attempt(CONNECT_ATTEMPTS),
    wait=wait_exponential(multiplier=0.2, max=2.0),
    reraise=True,
)


@_retry_connection_errors
def _request(
    method: str, url: str, headers: dict[str, str], timeout: float, body: Mapping[str, Any] | None
) -> httpx.Response:
    # What httpx.request does, through a transport making each attempt a CLIENT span (sovereign.telemetry).
    with httpx.Client(transport=TracedTransport("ray"), timeout=timeout) as client:
        return client.request(method, url, json=body, headers=headers)


def _call(
    method: str,
    dashboard_url: str,
    token: str | None,
    timeout: float,
    body: Mapping[str, Any] | None = None,
) -> httpx.Response:
    return _dashboard_call(method, dashboard_url, SERVE_APPLICATIONS_PATH, token, timeout, body)


def put_serve_applications(
    dashboard_url: str, body: Mapping[str, Any], *, token: str | None = None, timeout: float = 60.0
) -> None:
    """Deploy `body` (a ServeDeploySchema) as the Ray cluster's whole Serve config; returns once accepted.

    Ray validates the body and answers at once; the applications then deploy in the background (watch
    them with `get_serve_status`). RayServeError carries Ray's message for a refused body.
    """
    _call("PUT", dashboard_url, token, timeout, body)


def get_serve_status(
    dashboard_url: str, *, token: str | None = None, timeout: float = 10.0
) -> dict[str, Any]:
    """The Serve instance's details: `applications` by name, each with status, message and deployments."""
    details = _call("GET", dashboard_url, token, timeout).json()
    if not isinstance(details, dict):
        raise RayServeError(200, f"unexpected answer: {details!r}")
    return details


def application_states(status_json: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """`{application name: (status, message)}` from `get_serve_status`'s answer (pure).

    Statuses are Ray Serve's: NOT_STARTED, DEPLOYING, DEPLOY_FAILED, RUNNING, UNHEALTHY, DELETING.
    """
    applications = status_json.get("applications") or {}
    return {
        str(name): (str(app.get("status", "")), str(app.get("message") or ""))
        for name, app in sorted(applications.items())
    }


# -- Ray Jobs: the dashboard's job server (Ray docs: "Ray Jobs REST API" and its OpenAPI specification) ----

JOBS_PATH = "/api/jobs/"
# Ray's JobStatus values; a job in one of these will not change any more.
JOB_TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


def _dashboard_call(
    method: str,
    dashboard_url: str,
    path: str,
    token: str | None,
    timeout: float,
    body: Mapping[str, Any] | None = None,
) -> httpx.Response:
    """One call of the dashboard's REST API (Serve applications, Jobs) with the cluster's token; an
    unreachable dashboard is RayUnavailable, an error answer RayServeError."""
    url = dashboard_url.rstrip("/") + path
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = _request(method, url, headers, timeout, body)
    except (httpx.ConnectError, httpx.ConnectTimeout) as error:
        raise RayUnavailable(f"Ray dashboard at {dashboard_url} is unreachable: {error}") from error
    if not response.is_success:
        raise RayServeError(response.status_code, response.text.strip() or response.reason_phrase)
    return response


def submit_job(
    dashboard_url: str,
    entrypoint: str,
    *,
    submission_id: str,
    runtime_env: Mapping[str, Any] | None = None,
    metadata: Mapping[str, str] | None = None,
    entrypoint_resources: Mapping[str, float] | None = None,
    token: str | None = None,
    timeout: float = 30.0,
) -> str:
    """Start `entrypoint` as a Ray job (`POST /api/jobs/`; the trailing slash matters); returns its
    submission id. The caller names the job (`submission_id`), so a retried submission of the same job is
    refused by Ray (400, "already exists") instead of running twice. `entrypoint_resources`: custom Ray
    resources the entrypoint itself needs (where it runs), sent only when given."""
    body: dict[str, Any] = {
        "entrypoint": entrypoint,
        "submission_id": submission_id,
        "runtime_env": dict(runtime_env or {}),
        "metadata": dict(metadata or {}),
    }
    if entrypoint_resources:
        body["entrypoint_resources"] = dict(entrypoint_resources)
    answer = _dashboard_call("POST", dashboard_url, JOBS_PATH, token, timeout, body).json()
    return str(answer.get("submission_id") or answer.get("job_id") or submission_id)


def job_status(
    dashboard_url: str, submission_id: str, *, token: str | None = None, timeout: float = 10.0
) -> dict[str, Any] | None:
    """The job's details (`GET /api/jobs/<id>`: status PENDING/RUNNING/SUCCEEDED/FAILED/STOPPED, message,
    start_time, end_time, metadata...), or None when Ray does not know it (404: the cluster restarted)."""
    try:
        details = _dashboard_call("GET", dashboard_url, JOBS_PATH + submission_id, token, timeout).json()
    except RayServeError as error:
        if error.status_code == 404:
            return None
        raise
    if not isinstance(details, dict):
        raise RayServeError(200, f"unexpected answer: {details!r}")
    return details


def job_logs(
    dashboard_url: str, submission_id: str, *, token: str | None = None, timeout: float = 10.0
) -> str:
    """The job driver's whole output so far (`GET /api/jobs/<id>/logs` answers `{"logs": "..."}`)."""
    answer = _dashboard_call("GET", dashboard_url, f"{JOBS_PATH}{submission_id}/logs", token, timeout).json()
    return str(answer.get("logs") or "")
