"""The air-gap egress guard (egress_guard/sitecustomize.py) as the tests put it in a process's environment,
and the serving path with it (the fixtures: tests/airgap/conftest.py)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from tests.serving.e2e.harness import Serving

GUARD_DIR = Path(__file__).resolve().parent / "egress_guard"


@dataclasses.dataclass(frozen=True)
class Guard:
    log: Path  # one JSON line per refused connection or look-up
    head_pid: int = 0  # the Ray head's process group

    @property
    def active_log(self) -> Path:
        return Path(f"{self.log}.active")  # one line per process in which the guard started

    def env(self) -> dict[str, str]:
        path = os.pathsep.join(filter(None, [str(GUARD_DIR), os.environ.get("PYTHONPATH")]))
        return {"PYTHONPATH": path, "SOVEREIGN_EGRESS_LOG": str(self.log)}


@dataclasses.dataclass(frozen=True)
class GuardedServing(Serving):
    guard: Guard

    def cli_env(self) -> dict[str, str]:
        """Serving's CLI environment with the guard: the CLI that issues tokens is guarded too."""
        return {**super().cli_env(), **self.guard.env()}
