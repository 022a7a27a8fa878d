"""A devstack process's restart policy: what the kubelet does for a Deployment's container, here.

In a cluster the operator runs in a Deployment, whose pods have `restartPolicy: Always`: a container that
exits is started again "with an exponential back-off delay (10s, 20s, 40s, …), that is capped at five
minutes", reset "after a container has executed for 10 minutes without any problems" (k8s docs:
/docs/concepts/workloads/pods/pod-lifecycle/#restart-policy). The operator relies on it: one that loses its
leader Lease exits (fencing), and its replacement campaigns again. On the devstack this module is that
kubelet: `python -m sovereign_devstack.supervisor -- <argv>` runs the command and starts it again whenever it
exits, until it is told to stop (SIGTERM or SIGINT, which it passes on and waits for).

It runs in the service's process group (processes.start_service), so `sovereign down` stops both.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

FIRST_DELAY_SECONDS = 10.0
MAX_DELAY_SECONDS = 300.0
RESET_AFTER_SECONDS = 600.0  # a run this long counts as healthy: the next delay starts again at the first
# Starts each line it writes to the service's log; processes.start_service reads it as a failed start.
RESTART_MARK = "supervisor: "


def restart_delay(restarts_in_a_row: int) -> float:
    """The back-off before restart number `restarts_in_a_row` (1 for the first): 10 s, 20 s, 40 s, … 300 s."""
    return float(min(FIRST_DELAY_SECONDS * 2 ** max(restarts_in_a_row - 1, 0), MAX_DELAY_SECONDS))


def supervise(argv: Sequence[str]) -> int:
    """Run `argv` again each time it exits until SIGTERM/SIGINT; returns the last exit code."""
    stopping = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    restarts, code = 0, 0
    while not stopping.is_set():
        started = time.monotonic()
        child = subprocess.Popen(list(argv))
        code = child.wait()
        if stopping.is_set():
            break
        restarts = 1 if time.monotonic() - started >= RESET_AFTER_SECONDS else restarts + 1
        delay = restart_delay(restarts)
        print(
            f"{RESTART_MARK}{argv[-1]} exited with code {code}; starting it again in {delay:.0f} s "
            f"(restart {restarts} in a row)",
            flush=True,
        )
        stopping.wait(delay)
    return code


def main(arguments: Sequence[str]) -> int:
    if len(arguments) < 2 or arguments[0] != "--":
        print("usage: python -m sovereign_devstack.supervisor -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    return supervise(arguments[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
