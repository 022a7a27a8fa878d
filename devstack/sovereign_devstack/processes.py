"""Start and stop the devstack's background processes, each with a pid file and a log under the state dir.

Used by `sovereign up/down` and by the test fixtures; product code never imports this package.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from sovereign_devstack.supervisor import RESTART_MARK


class ServiceStartError(RuntimeError):
    """A devstack process exited or never answered its health check."""


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one devstack service and how to tell that it is up."""

    name: str
    argv: list[str]
    health_url: str
    env: dict[str, str] | None = None
    ca_file: Path | None = None  # the CA that signed an https health URL's certificate (verified)


def free_loopback_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> bool:
    """Whether something listens on 127.0.0.1:`port` within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
        time.sleep(0.1)
    return False


def pid_file(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.pid"


def log_file(state_dir: Path, name: str) -> Path:
    return state_dir / "logs" / f"{name}.log"


def start_service(spec: ServiceSpec, state_dir: Path, timeout: float = 60.0) -> int:
    """Start `spec` in its own session, wait until its health URL answers, and return its pid.

    On failure the process is stopped again and the error carries the tail of its log, so nothing
    half-started is left behind.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_file(state_dir, spec.name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **(spec.env or {}), "PYTHONUNBUFFERED": "1"}
    log_start = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            spec.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group: `down` stops it and its children
        )
    pid_file(state_dir, spec.name).write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stop_service(state_dir, spec.name)
            raise ServiceStartError(f"{spec.name} exited with code {proc.returncode}:\n{_tail(log_path)}")
        if _restarted_since(log_path, log_start):  # under the supervisor: its first run already failed
            stop_service(state_dir, spec.name)
            raise ServiceStartError(f"{spec.name} exited while starting:\n{_tail(log_path)}")
        with contextlib.suppress(httpx.HTTPError):
            verify = ssl.create_default_context(cafile=spec.ca_file) if spec.ca_file else True
            if httpx.get(spec.health_url, timeout=2.0, verify=verify).status_code < 500:
                return proc.pid
        time.sleep(0.1)
    stop_service(state_dir, spec.name)
    raise ServiceStartError(
        f"{spec.name} did not answer {spec.health_url} in {timeout:.0f}s:\n{_tail(log_path)}"
    )


def read_pid(state_dir: Path, name: str) -> int | None:
    try:
        return int(pid_file(state_dir, name).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def stop_service(state_dir: Path, name: str, timeout: float = 10.0) -> bool:
    """Stop the process group recorded in `name`'s pid file; True if something was running."""
    pid = read_pid(state_dir, name)
    pid_file(state_dir, name).unlink(missing_ok=True)
    if pid is None or not is_running(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and is_running(pid):
        time.sleep(0.05)
    if is_running(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    return True


def python_module_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def _restarted_since(log_path: Path, offset: int) -> bool:
    """Whether the supervisor (sovereign_devstack.supervisor) said, in the log after `offset`, that its
    process exited."""
    with log_path.open("rb") as log:
        log.seek(offset)
        return any(line.startswith(RESTART_MARK.encode()) for line in log)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
