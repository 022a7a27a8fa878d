"""Failpoints: named places where a test can make the operator process die, to prove crash safety.

Like etcd's gofail: off unless SOVEREIGN_FAILPOINTS names a point (comma-separated). When the running code
reaches a named point, the process exits at once with code 137 — as if SIGKILLed there — so the test can
restart it and check that everything converges. Reaching a point costs one set lookup.
"""

from __future__ import annotations

import os
import sys

ENV_VAR = "SOVEREIGN_FAILPOINTS"
CRASH_EXIT_CODE = 137

_armed = frozenset(filter(None, os.environ.get(ENV_VAR, "").split(",")))


def reach(point: str) -> None:
    if point in _armed:
        sys.stderr.write(f"failpoint {point}: exiting\n")
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)
