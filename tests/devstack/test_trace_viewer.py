"""The devstack's trace viewer (sovereign_devstack.trace_viewer): how `sovereign up` finds and starts Phoenix.

The suite never installs Phoenix (~850 MB, see the Makefile's `viewer`). What runs here instead: Phoenix's
command line and environment checked as data, and the devstack's viewer path (start, reuse, stop, the
endpoint handed to each component, spans exported over OTLP/HTTP) run for real with a stand-in viewer: the
project's own OTLP receiver, started through the same SOVEREIGN_PHOENIX hook with Phoenix's variables. That
Phoenix itself receives and shows the spans was checked by hand (README, "Reading traces"), not here.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from sovereign_devstack import stack
from sovereign_devstack.cli import up as devstack_commands
from sovereign_devstack.operator_identity import OperatorIdentity
from sovereign_devstack.processes import ServiceSpec, ServiceStartError, is_running, read_pid, stop_service
from sovereign_devstack.services import TRACE_VIEWER_SERVICE, phoenix_spec
from sovereign_devstack.stack import DevstackState, load_state, start_trace_viewer, stop_devstack
from sovereign_devstack.trace_viewer import (
    PHOENIX_AIR_GAP_ENV,
    PHOENIX_ENV_VAR,
    find_phoenix,
    not_found_message,
    trace_env,
)


def write_executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def phoenix_stand_in(directory: Path) -> Path:
    """An executable called like Phoenix (`phoenix serve`, configured by PHOENIX_* variables) that runs the
    project's OTLP receiver on $PHOENIX_PORT and records the environment it was given (names and the
    PHOENIX_* / OTEL_* values only) in $PHOENIX_WORKING_DIR/environment.json."""
    return write_executable(
        directory / "phoenix",
        f"""#!{sys.executable}
import json, os, sys
if sys.argv[1:] != ["serve"]:
    sys.exit(f"usage: phoenix serve (got {{sys.argv[1:]}})")
work = os.environ["PHOENIX_WORKING_DIR"]
seen = {{k: v for k, v in os.environ.items() if k.startswith(("PHOENIX_", "OTEL_"))}}
with open(os.path.join(work, "environment.json"), "w") as out:
    json.dump(seen, out)
os.execv(sys.executable, [sys.executable, "-m", "sovereign_devstack.otlp_receiver",
                          "--port", os.environ["PHOENIX_PORT"]])
""",
    )


def bare_state(state_dir: Path) -> DevstackState:
    state = DevstackState(
        external=False,
        kube_url="http://127.0.0.1:1",
        kubeconfig=str(state_dir / "kubeconfig"),
        vault_addr="http://127.0.0.1:2",
        vault_token="unused",
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    stack.save_state(state_dir, state)
    return state


def test_find_phoenix_order(tmp_path: Path) -> None:
    project = tmp_path / "project"
    beside = write_executable(project / ".venv-viewer" / "bin" / "phoenix", "#!/bin/sh\n")
    on_path = write_executable(tmp_path / "bin" / "phoenix", "#!/bin/sh\n")
    chosen = write_executable(tmp_path / "elsewhere" / "phoenix", "#!/bin/sh\n")
    path = {"PATH": str(on_path.parent)}

    assert find_phoenix({**path, PHOENIX_ENV_VAR: str(chosen)}, project) == chosen
    assert find_phoenix(path, project) == beside
    assert find_phoenix(path, tmp_path / "no-viewer-venv") == on_path
    assert find_phoenix({"PATH": str(tmp_path / "empty")}, tmp_path / "no-viewer-venv") is None
    # A SOVEREIGN_PHOENIX naming nothing is reported, never silently replaced by another phoenix.
    missing = {**path, PHOENIX_ENV_VAR: str(tmp_path / "missing")}
    assert find_phoenix(missing, project) is None
    assert PHOENIX_ENV_VAR in not_found_message(missing) and "make viewer" in not_found_message(missing)
    assert "make viewer" in not_found_message({})


def test_phoenix_runs_on_loopback_with_every_outbound_feature_off(tmp_path: Path) -> None:
    spec = phoenix_spec(Path("/opt/phoenix"), 16006, 14317, tmp_path / "trace-viewer")
    assert spec.argv == ["/opt/phoenix", "serve"]
    assert spec.health_url == "http://127.0.0.1:16006/healthz"
    env = spec.env or {}
    assert env["PHOENIX_HOST"] == "127.0.0.1" and env["PHOENIX_PORT"] == "16006"
    assert env["PHOENIX_GRPC_PORT"] == "14317"  # never the fixed 4317: several devstacks on one machine
    assert env["PHOENIX_WORKING_DIR"] == str(tmp_path / "trace-viewer")
    # The two look-ups seen at start (github.com, mintlify.app) and the web UI's fonts and pixels.
    assert env["PHOENIX_ALLOW_EXTERNAL_RESOURCES"] == "false"
    assert env["PHOENIX_TELEMETRY_ENABLED"] == "false"
    assert env["PHOENIX_DISABLE_AGENT_ASSISTANT"] == "true"
    assert PHOENIX_AIR_GAP_ENV.items() <= env.items()
    assert trace_env("http://127.0.0.1:16006") == {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:16006"}
    assert trace_env(None) == {}


@pytest.mark.process
def test_viewer_start_reuse_spans_and_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state_dir = tmp_path / "state"
    state = bare_state(state_dir)
    progress: list[str] = []
    state = start_trace_viewer(state_dir, state, phoenix_stand_in(tmp_path / "bin"), progress.append)
    try:
        url = state.trace_viewer_url
        assert url and url.startswith("http://127.0.0.1:")
        assert load_state(state_dir) == state and TRACE_VIEWER_SERVICE in state.services
        pid = read_pid(state_dir, TRACE_VIEWER_SERVICE)
        assert pid and is_running(pid)
        assert any("its first start creates its database" in line for line in progress)
        seen = json.loads((state_dir / "trace-viewer" / "environment.json").read_text())
        assert PHOENIX_AIR_GAP_ENV.items() <= seen.items() and seen["PHOENIX_HOST"] == "127.0.0.1"

        # A component given trace_env(url) exports its spans there over OTLP/HTTP.
        sender = (
            "from sovereign.telemetry import configure_tracing, flush_tracing, span\n"
            "assert configure_tracing('sovereign-operator')\n"
            "with span('reconcile Tenant', attributes={'sovereign.tenant': 'fra'}):\n"
            "    pass\n"
            "flush_tracing()\n"
        )
        env = {**os.environ, **trace_env(url)}
        subprocess.run([sys.executable, "-c", sender], env=env, check=True, timeout=60)
        spans = httpx.get(f"{url}/spans", timeout=5).json()
        assert [(s["name"], s["service"], s["attributes"]) for s in spans] == [
            ("reconcile Tenant", "sovereign-operator", {"sovereign.tenant": "fra"})
        ]

        # A second `up` reuses the running viewer.
        assert start_trace_viewer(state_dir, state, Path("/nonexistent"), progress.append) == state
        assert read_pid(state_dir, TRACE_VIEWER_SERVICE) == pid
        # A viewer that died is started again on its former port: the operator and Ray keep their endpoint.
        stop_service(state_dir, TRACE_VIEWER_SERVICE)
        again = start_trace_viewer(state_dir, state, phoenix_stand_in(tmp_path / "bin"), progress.append)
        assert again.trace_viewer_url == url and read_pid(state_dir, TRACE_VIEWER_SERVICE) != pid
        pid = read_pid(state_dir, TRACE_VIEWER_SERVICE)
    finally:
        stopped = stop_devstack(state_dir)
    assert stopped == [TRACE_VIEWER_SERVICE] and not is_running(pid)


@pytest.mark.process
def test_a_failed_first_start_leaves_no_half_made_database(tmp_path: Path) -> None:
    """NOTES: a Phoenix start killed mid-migration left its database unusable; the next start must not
    inherit it."""
    broken = write_executable(
        tmp_path / "bin" / "phoenix",
        '#!/bin/sh\necho half > "$PHOENIX_WORKING_DIR/phoenix.db"\necho "migration failed" >&2\nexit 3\n',
    )
    state_dir = tmp_path / "state"
    with pytest.raises(ServiceStartError, match="migration failed"):
        start_trace_viewer(state_dir, bare_state(state_dir), broken, lambda _: None, timeout=20)
    assert not (state_dir / "trace-viewer").exists()
    assert not list(state_dir.glob("*.pid"))


def test_the_operator_and_the_ray_head_get_the_viewer_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked on the specs `up` would start (start_service recorded instead of run)."""
    started: list[ServiceSpec] = []
    monkeypatch.setattr(stack, "start_service", lambda spec, *_, **__: started.append(spec))
    monkeypatch.setattr(stack, "wait_for_port", lambda *_, **__: True)  # nothing runs to listen
    # No API server here: the operator's identity and webhook registration are not what this test checks.
    identity = OperatorIdentity(tmp_path / "kubeconfig", tmp_path / "token")
    monkeypatch.setattr(stack, "install_operator_identity", lambda *_: identity)
    monkeypatch.setattr(stack, "register_webhook", lambda *_: None)
    monkeypatch.setattr(stack, "install_projector_identity", lambda *_: tmp_path / "projector-kubeconfig")
    state_dir = tmp_path / "state"
    state = bare_state(state_dir).model_copy(update={"trace_viewer_url": "http://127.0.0.1:16006"})
    state = stack.start_local_ray(state_dir, state, lambda _: None)
    stack.start_operator(state_dir, state, lambda: "operator-token", lambda _: None)
    ray, _token_projector, operator = started
    for spec in (ray, operator):
        assert (spec.env or {})["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:16006", spec.name

    started.clear()
    without = bare_state(tmp_path / "plain")
    stack.start_operator(tmp_path / "plain", without, lambda: "operator-token", lambda _: None)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in (started[0].env or {})


def test_env_file_names_the_viewer(tmp_path: Path) -> None:
    state = bare_state(tmp_path).model_copy(update={"trace_viewer_url": "http://127.0.0.1:16006"})
    env = devstack_commands._platform_env(state, tmp_path)
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == env["SOVEREIGN_TRACE_VIEWER_URL"] == "http://127.0.0.1:16006"
    assert "SOVEREIGN_TRACE_VIEWER_URL" not in devstack_commands._platform_env(bare_state(tmp_path), tmp_path)


def test_without_phoenix_up_says_how_to_get_it_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PHOENIX_ENV_VAR, str(tmp_path / "not-installed" / "phoenix"))
    state = bare_state(tmp_path)
    out = io.StringIO()
    console = Console(file=out, width=200)
    after = devstack_commands._start_trace_viewer(tmp_path, state, lambda _: None, console)
    assert after == state and TRACE_VIEWER_SERVICE not in after.services
    said = out.getvalue()
    assert "no trace viewer" in said and "make viewer" in said and "Going on without one" in said
