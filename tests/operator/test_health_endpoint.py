"""The operator's /healthz and /readyz (SOVEREIGN_HEALTH_PORT): answered from start by leader and standby
alike, so the Deployment's probes never kill a standby; and the leader's pod label the webhook Service
selects."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import kubernetes
import pytest
from sovereign_devstack.processes import free_loopback_port
from sovereign_operator.health import LEADER_LABEL, HealthServer, LeaderLabel, ObservedLeaseElector

from sovereign.clients.kubernetes import ensure_namespace, load_api_client
from tests.helpers import wait_until
from tests.operator.harness import OperatorProcess, Platform
from tests.servers import KubeAPI


def probe(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


# -- the real operator: one leader, one standby -----------------------------------------------------------


def test_leader_and_standby_both_answer_their_probes(
    platform: Platform, start_operator: Callable[..., OperatorProcess]
) -> None:
    leader_port, standby_port = free_loopback_port(), free_loopback_port()
    leader = start_operator(SOVEREIGN_HEALTH_PORT=str(leader_port))
    leader.wait_for_log("leader: acquired Lease")
    standby = start_operator(SOVEREIGN_HEALTH_PORT=str(standby_port))
    standby.wait_for_log("standby: Lease")
    for port, role in ((leader_port, "leader"), (standby_port, "standby")):
        wait_until(lambda port=port: probe(port, "/readyz")[0] == 200, f"{role} ready", timeout=15)
        status, body = probe(port, "/healthz")
        assert (status, body["ok"], body["role"]) == (200, True, role)
    time.sleep(4)  # longer than the 3 s test Lease: the standby keeps polling and stays healthy
    assert probe(standby_port, "/healthz")[0] == 200 and standby.returncode is None
    assert probe(leader_port, "/nothing")[0] == 404


# -- the pieces ------------------------------------------------------------------------------------------


@pytest.fixture
def elector(kube_api: KubeAPI, request: pytest.FixtureRequest) -> ObservedLeaseElector:
    api = load_api_client(str(kube_api.kubeconfig))
    ensure_namespace(api, "health-tests")
    return ObservedLeaseElector(
        api, "health-tests", "lease-" + request.node.name[5:45].replace("_", "-"), "me", 3
    )


@pytest.fixture
def serve() -> Iterator[Callable[[ObservedLeaseElector], int]]:
    servers: list[HealthServer] = []

    def start(elector: ObservedLeaseElector) -> int:
        servers.append(HealthServer(elector, 0, host="127.0.0.1").start())
        return servers[-1].port

    yield start
    for server in servers:
        server.stop()


def test_before_the_first_round_alive_but_not_ready(
    elector: ObservedLeaseElector, serve: Callable[[ObservedLeaseElector], int]
) -> None:
    port = serve(elector)
    assert probe(port, "/healthz")[0] == 200
    assert probe(port, "/readyz") == (
        503,
        {"ok": False, "role": "standby", "secondsSinceLeaseRound": 0.0, "leaseReachable": False},
    )


def test_a_round_that_acquires_makes_a_ready_leader(
    elector: ObservedLeaseElector, serve: Callable[[ObservedLeaseElector], int]
) -> None:
    port = serve(elector)
    assert elector.try_acquire_or_renew()
    status, body = probe(port, "/readyz")
    assert (status, body["role"], body["leaseReachable"]) == (200, "leader", True)


def test_an_unreachable_api_is_alive_but_not_ready(serve: Callable[[ObservedLeaseElector], int]) -> None:
    configuration = kubernetes.client.Configuration()
    configuration.host = f"http://127.0.0.1:{free_loopback_port()}"  # nothing listens
    elector = ObservedLeaseElector(kubernetes.client.ApiClient(configuration), "ns", "lease", "me", 3)
    port = serve(elector)
    with pytest.raises(Exception):  # noqa: B017 (urllib3's connection error, whatever its class)
        elector.try_acquire_or_renew()
    assert probe(port, "/healthz")[0] == 200  # a restart would not bring the API server back
    assert probe(port, "/readyz")[0] == 503


def test_a_stuck_lease_loop_fails_liveness(
    elector: ObservedLeaseElector, serve: Callable[[ObservedLeaseElector], int]
) -> None:
    port = serve(elector)
    elector.try_acquire_or_renew()
    elector.last_round_at = time.monotonic() - 60  # no round for a minute (the Lease lasts 3 s)
    assert probe(port, "/healthz")[0] == 503


class _RecordingApi(BaseHTTPRequestHandler):
    requests: list[tuple[str, str, str, dict[str, Any]]] = []

    def do_PATCH(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append((self.command, self.path, self.headers["Content-Type"], body))
        reply = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def test_the_leader_label_patches_its_own_pod() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        configuration = kubernetes.client.Configuration()
        configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
        api = kubernetes.client.ApiClient(configuration)
        LeaderLabel(api, "sovereign-system", "operator-0").set(True)
        LeaderLabel(api, "sovereign-system", "operator-0").set(False)
        LeaderLabel(api, None, None).set(True)  # outside a pod: nothing is sent
    finally:
        server.shutdown()
        server.server_close()
    assert [(m, p, b) for m, p, _, b in _RecordingApi.requests] == [
        (
            "PATCH",
            "/api/v1/namespaces/sovereign-system/pods/operator-0",
            {"metadata": {"labels": {LEADER_LABEL: v}}},
        )
        for v in ("true", "false")
    ]
