"""The serving path of tests/serving/e2e with the air-gap egress guard (egress_guard/sitecustomize.py) in
every Python process it starts: the Ray head (whose environment the raylet hands to every worker: the Serve
controller and proxy, the gateways and the model replicas), the operator and the `sovereign` CLI."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.operator.conftest import (  # noqa: F401  (platform and the report hook are fixtures)
    STARTED_LOG,
    Platform,
    _start,
    platform,
    pytest_runtest_makereport,
)
from tests.serving.e2e.conftest import LocalRay, Serving, running_local_ray, serving_platform

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


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> Guard:
    return Guard(tmp_path_factory.mktemp("egress") / "egress.jsonl")


@pytest.fixture(scope="module")
def guarded_ray(guard: Guard, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRay, Guard]]:
    """A local Ray head started as `sovereign up` starts it (same argv, same environment) plus the guard."""
    with running_local_ray(tmp_path_factory.mktemp("ray"), guard.env()) as (local_ray, head_pid):
        yield local_ray, dataclasses.replace(guard, head_pid=head_pid)


@pytest.fixture(scope="module")
def guarded_serving(
    platform: Platform,  # noqa: F811  (the fixture imported above)
    guarded_ray: tuple[LocalRay, Guard],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GuardedServing]:
    """tests/serving/e2e's `serving`, with the guard in the operator's environment."""
    local_ray, guard = guarded_ray
    with serving_platform(platform, local_ray, tmp_path_factory, guard.env()) as (operator, models, digests):
        yield GuardedServing(platform, local_ray, operator, models, digests, guard)
