"""The Ray client against a real local Ray cluster: deploy, fail to deploy, delete, through its dashboard.

Ray is started with `ray start --head --block` in a process group of its own, every port chosen free (outside
Ray's worker port range 10002-19999, where the dashboard refuses to start), and that group alone is stopped.
The cluster runs with Ray's token authentication (`RAY_AUTH_MODE=token` and a token of the test's own: set
explicitly, because Ray 2.60 otherwise turns it on by itself whenever ~/.ray/auth_token exists).
The test applications live in tests/ray_apps/, given to Ray as a `local://` working_dir (the Serve config
accepts only remote or `local://` URIs there; this machine is the only node).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sovereign_devstack.processes import free_loopback_port

from sovereign.clients.ray import (
    RayServeError,
    RayUnavailable,
    application_states,
    get_serve_status,
    put_serve_applications,
)
from sovereign.serving_contract import AIR_GAP_ENV
from tests.helpers import wait_until

RAY_APPS = Path(__file__).resolve().parent / "ray_apps"
RAY = Path(sys.executable).parent / "ray"
RAY_WORKER_PORTS = range(10002, 20000)


def ray_free_port() -> int:
    while True:
        port = free_loopback_port()
        if port not in RAY_WORKER_PORTS:
            return port


@dataclass(frozen=True)
class LocalRay:
    dashboard_url: str
    serve_port: int
    token: str


def _stop_process_group(process: subprocess.Popen[bytes]) -> None:
    # Only the group this test started: SIGTERM, a short grace, then SIGKILL (ray start --block's own
    # shutdown takes ~30 s; nothing of a test cluster needs to survive).
    for sig, grace in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def local_ray() -> Iterator[LocalRay]:
    # A short temp dir: Ray puts Unix sockets under it (at most 107 characters).
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    dashboard_port, serve_port = ray_free_port(), ray_free_port()
    ports = {
        "--port": ray_free_port(),
        "--dashboard-port": dashboard_port,
        "--ray-client-server-port": ray_free_port(),
        "--dashboard-agent-listen-port": ray_free_port(),
        "--dashboard-agent-grpc-port": ray_free_port(),
        "--metrics-export-port": ray_free_port(),
        "--runtime-env-agent-port": ray_free_port(),
        "--node-manager-port": ray_free_port(),
        "--object-manager-port": ray_free_port(),
    }
    command = [str(RAY), "start", "--head", "--block", "--num-cpus", "2", "--disable-usage-stats"]
    command += ["--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--temp-dir", temp_dir]
    for flag, port in ports.items():
        command += [flag, str(port)]
    log = open(Path(temp_dir) / "ray-start.log", "wb")  # noqa: SIM115  (closed below)
    token = secrets.token_hex(32)
    environment = {**os.environ, **AIR_GAP_ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    environment.pop("RAY_AUTH_TOKEN_PATH", None)
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=environment
    )
    dashboard_url = f"http://127.0.0.1:{dashboard_port}"

    def dashboard_up() -> bool:
        assert process.poll() is None, (Path(temp_dir) / "ray-start.log").read_text()
        try:
            get_serve_status(dashboard_url, token=token, timeout=2.0)
        except RayServeError as error:
            assert error.status_code >= 500, error  # 401/403: the token is wrong, waiting will not help
            return False
        except (RayUnavailable, httpx.HTTPError):
            return False
        return True

    try:
        started = time.monotonic()
        wait_until(dashboard_up, "the Ray dashboard", timeout=90, interval=0.5)
        print(f"local Ray dashboard up in {time.monotonic() - started:.1f}s")
        yield LocalRay(dashboard_url, serve_port, token)
    finally:
        _stop_process_group(process)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def echo_app(
    name: str = "echo", import_path: str = "echo_app:app", route_prefix: str | None = "/echo"
) -> Any:
    return {
        "name": name,
        "route_prefix": route_prefix,
        "import_path": import_path,
        "runtime_env": {"working_dir": f"local://{RAY_APPS}", "env_vars": dict(AIR_GAP_ENV)},
    }


def body(ray: LocalRay, *applications: dict[str, Any]) -> dict[str, Any]:
    return {"http_options": {"host": "127.0.0.1", "port": ray.serve_port}, "applications": list(applications)}


def settled(ray: LocalRay, name: str) -> tuple[str, str] | None:
    state = application_states(get_serve_status(ray.dashboard_url, token=ray.token)).get(name)
    return state if state and state[0] in ("RUNNING", "DEPLOY_FAILED", "UNHEALTHY") else None


def test_deploy_read_status_fail_and_delete(local_ray: LocalRay) -> None:
    started = time.monotonic()
    put_serve_applications(local_ray.dashboard_url, token=local_ray.token, body=body(local_ray, echo_app()))
    assert wait_until(lambda: settled(local_ray, "echo"), "echo settled", timeout=120) == ("RUNNING", "")
    print(f"echo RUNNING {time.monotonic() - started:.1f}s after the PUT")
    status = get_serve_status(local_ray.dashboard_url, token=local_ray.token)
    assert set(status["applications"]["echo"]["deployments"]) == {"Echo"}
    assert status["applications"]["echo"]["deployments"]["Echo"]["status"] == "HEALTHY"
    # The runtime environment reaches the replicas: the air-gap variables are set where the model runs.
    answer = httpx.get(f"http://127.0.0.1:{local_ray.serve_port}/echo", timeout=30)
    assert answer.json() == AIR_GAP_ENV

    # An application whose import fails: DEPLOY_FAILED with Ray's message; the other one keeps running.
    broken = echo_app("broken", "broken_app:app", route_prefix=None)
    put_serve_applications(
        local_ray.dashboard_url, token=local_ray.token, body=body(local_ray, echo_app(), broken)
    )
    state, message = wait_until(lambda: settled(local_ray, "broken"), "broken settled", timeout=120)
    assert state == "DEPLOY_FAILED"
    assert "broken_app refuses to import" in message
    assert application_states(get_serve_status(local_ray.dashboard_url, token=local_ray.token))["echo"] == (
        "RUNNING",
        "",
    )

    # Declarative: an application missing from the body is deleted.
    put_serve_applications(local_ray.dashboard_url, token=local_ray.token, body=body(local_ray, echo_app()))
    wait_until(
        lambda: (
            "broken"
            not in application_states(get_serve_status(local_ray.dashboard_url, token=local_ray.token))
        ),
        "broken deleted",
        timeout=60,
    )
    assert application_states(get_serve_status(local_ray.dashboard_url, token=local_ray.token)) == {
        "echo": ("RUNNING", "")
    }
    print(f"deploy, failure and deletion in {time.monotonic() - started:.1f}s")


def test_refused_body_raises_with_rays_message(local_ray: LocalRay) -> None:
    with pytest.raises(RayServeError) as refused:
        put_serve_applications(
            local_ray.dashboard_url, {"applications": [{"name": "no-import-path"}]}, token=local_ray.token
        )
    assert refused.value.status_code == 400
    assert "import_path" in refused.value.message


def test_missing_or_wrong_token_is_refused(local_ray: LocalRay) -> None:
    before = application_states(get_serve_status(local_ray.dashboard_url, token=local_ray.token))
    with pytest.raises(RayServeError, match="Missing authentication token") as missing:
        get_serve_status(local_ray.dashboard_url)
    assert missing.value.status_code == 401
    with pytest.raises(RayServeError) as wrong:
        put_serve_applications(local_ray.dashboard_url, {"applications": []}, token="0" * 64)
    assert wrong.value.status_code == 403
    # The refused PUT (an empty body would delete everything) changed nothing.
    assert application_states(get_serve_status(local_ray.dashboard_url, token=local_ray.token)) == before


def test_unreachable_dashboard_is_retried_then_reported() -> None:
    url = f"http://127.0.0.1:{ray_free_port()}"
    started = time.monotonic()
    with pytest.raises(RayUnavailable, match="unreachable"):
        get_serve_status(url)
    assert time.monotonic() - started > 0.5  # retried with backoff, not failed at once


STATUS = {
    "applications": {
        "fra-gateway": {"status": "RUNNING", "message": "", "deployments": {}},
        "fra-analyst": {"status": "DEPLOY_FAILED", "message": "sha256 mismatch: model.safetensors"},
        "deu-gateway": {"status": "DEPLOYING", "message": None},
    }
}


@pytest.mark.parametrize(
    ("status_json", "expected"),
    [
        pytest.param({"applications": {}}, {}, id="no-applications"),
        pytest.param({"controller_info": {}}, {}, id="serve-not-started"),
        pytest.param(
            STATUS,
            {
                "deu-gateway": ("DEPLOYING", ""),
                "fra-analyst": ("DEPLOY_FAILED", "sha256 mismatch: model.safetensors"),
                "fra-gateway": ("RUNNING", ""),
            },
            id="status-and-message-per-application",
        ),
    ],
)
def test_application_states(status_json: dict[str, Any], expected: dict[str, tuple[str, str]]) -> None:
    assert application_states(status_json) == expected
