"""The devstack's restart policy for the operator (sovereign_devstack.supervisor): the kubelet's
`restartPolicy: Always` with its back-off, so that an operator that exits (a lost Lease) is started again
without a person, as its Deployment's pod would be; and `sovereign down` (SIGTERM to the group) stops it for
good."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sovereign_devstack.processes import (
    ServiceSpec,
    ServiceStartError,
    free_loopback_port,
    is_running,
    python_module_argv,
    read_pid,
    start_service,
)
from sovereign_devstack.supervisor import restart_delay

from tests.helpers import wait_until


@pytest.mark.parametrize(
    ("restarts", "seconds"), [(1, 10.0), (2, 20.0), (3, 40.0), (5, 160.0), (6, 300.0), (12, 300.0)]
)
def test_restarts_back_off_like_the_kubelets(restarts: int, seconds: float) -> None:
    assert restart_delay(restarts) == seconds


# Exits 1 on its first run (as an operator that lost its Lease), then runs until stopped.
CHILD = """
import os, sys, time
runs = sys.argv[1]
with open(runs, "a") as f:
    f.write(f"{os.getpid()}\\n")
if len(open(runs).read().split()) == 1:
    sys.exit(1)
time.sleep(600)
"""


@pytest.mark.process
def test_a_process_that_exits_is_started_again_and_down_stops_it(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    log = (tmp_path / "log").open("wb")
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "sovereign_devstack.supervisor", "--", sys.executable, "-c", CHILD, str(runs)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # as processes.start_service starts a service
    )
    try:
        started = wait_until(lambda: runs.exists() and len(runs.read_text().split()) == 2, "a second run", 30)
        assert started
        first, second = (int(pid) for pid in runs.read_text().split())
        assert not is_running(first) and is_running(second)
        said = (tmp_path / "log").read_text()
        assert "exited with code 1; starting it again in 10 s (restart 1 in a row)" in said, said

        os.killpg(supervisor.pid, signal.SIGTERM)  # `sovereign down`
        assert supervisor.wait(timeout=10) is not None
        wait_until(lambda: not is_running(second), "the supervised run stopped", 10)
        assert len(runs.read_text().split()) == 2, "nothing was started after the stop"
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
        log.close()


@pytest.mark.process
def test_a_supervised_service_failing_at_start_fails_the_start_at_once(tmp_path: Path) -> None:
    spec = ServiceSpec(
        name="broken",
        argv=python_module_argv(
            "sovereign_devstack.supervisor", "--", sys.executable, "-c", "raise SystemExit(3)"
        ),
        health_url=f"http://127.0.0.1:{free_loopback_port()}/healthz",  # never answers
    )
    with pytest.raises(ServiceStartError, match="broken exited while starting") as failed:
        start_service(spec, tmp_path, timeout=60)
    assert "exited with code 3" in str(failed.value)  # the log's tail says why
    assert read_pid(tmp_path, "broken") is None  # nothing half-started left
