"""The operator's own health endpoint, served from start, whether this process leads or stands by.

kopf's liveness endpoint (`SOVEREIGN_LIVENESS_PORT`) only exists while kopf runs, i.e. while leading: a
Deployment's liveness probe on it would kill every standby. This one (`SOVEREIGN_HEALTH_PORT`) answers:
- `/healthz`: the process is alive — the Lease loop (a standby's wait or the leader's renewal) has made a
  round recently, whether or not the API server answered it (a restart would not bring the API back);
- `/readyz`: ready to act or to take over — the last Lease round reached the API server.
k8s docs: /docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/.

While it leads, the pod is also labelled `sovereign.ai/leader=true` (`LeaderLabel`), which the chart's
webhook Service selects: only the leader runs kopf, so only the leader serves the admission webhook.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubernetes.client import ApiClient, CoreV1Api

from sovereign_operator.leader import LeaseElector

log = logging.getLogger("sovereign_operator.health")

LEADER_LABEL = "sovereign.ai/leader"
STUCK_AFTER_ROUNDS = 4  # missed Lease rounds before the process counts as stuck


class ObservedLeaseElector(LeaseElector):
    """A LeaseElector that records when each round ended and whether it reached the API server."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started_at = time.monotonic()
        self.last_round_at: float | None = None
        self.last_round_reached_api = False
        self.leading = False

    def try_acquire_or_renew(self) -> bool:
        reached = False
        try:
            self.leading = super().try_acquire_or_renew()
            reached = True
            return self.leading
        finally:
            self.last_round_at, self.last_round_reached_api = time.monotonic(), reached

    def health(self) -> tuple[bool, bool, dict[str, Any]]:
        """(alive, ready, details) as of now."""
        now = time.monotonic()
        stuck_after = max(self.renew_interval * STUCK_AFTER_ROUNDS, self.duration_seconds)
        since = now - (self.last_round_at if self.last_round_at is not None else self.started_at)
        alive = since <= stuck_after
        ready = alive and self.last_round_at is not None and self.last_round_reached_api
        details = {
            "role": "leader" if self.leading else "standby",
            "secondsSinceLeaseRound": round(since, 1),
            "leaseReachable": self.last_round_reached_api,
        }
        return alive, ready, details


class HealthServer:
    """`/healthz` and `/readyz` over HTTP on a thread of its own (the main thread blocks on the Lease)."""

    def __init__(self, elector: ObservedLeaseElector, port: int, host: str = "0.0.0.0") -> None:
        elector_ref = elector

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                alive, ready, details = elector_ref.health()
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    status, body = (200 if alive else 503), {"ok": alive, **details}
                elif path == "/readyz":
                    status, body = (200 if ready else 503), {"ok": ready, **details}
                else:
                    status, body = 404, {"ok": False, "error": "only /healthz and /readyz are served"}
                self._reply(status, json.dumps(body).encode())

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # a probe every few seconds would drown the operator's log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class LeaderLabel:
    """Labels this pod `sovereign.ai/leader=true|false` (needs `patch` on pods in its namespace)."""

    def __init__(self, api: ApiClient, namespace: str | None, name: str | None) -> None:
        self.api, self.namespace, self.name = api, namespace, name

    def set(self, leading: bool) -> None:
        if not (self.namespace and self.name):
            return  # outside a pod (devstack): nothing to label
        body = {"metadata": {"labels": {LEADER_LABEL: "true" if leading else "false"}}}
        try:
            CoreV1Api(self.api).patch_namespaced_pod(self.name, self.namespace, body)
        except Exception as error:  # the webhook Service then misses this pod; the operator still works
            log.error("could not label pod %s/%s %s: %s", self.namespace, self.name, body, error)
