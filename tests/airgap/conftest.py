"""The serving path of tests/serving/e2e with the air-gap egress guard (egress_guard/sitecustomize.py) in
every Python process it starts: the Ray head (whose environment the raylet hands to every worker: the Serve
controller and proxy, the gateways and the model replicas), the operator and the `sovereign` CLI."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from tests.airgap.guard import Guard, GuardedServing
from tests.operator.harness import Platform
from tests.serving.e2e.harness import LocalRay, running_local_ray, serving_platform


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
    platform: Platform,
    guarded_ray: tuple[LocalRay, Guard],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GuardedServing]:
    """tests/serving/e2e's `serving`, with the guard in the operator's environment."""
    local_ray, guard = guarded_ray
    with serving_platform(platform, local_ray, tmp_path_factory, guard.env()) as (operator, models, digests):
        yield GuardedServing(platform, local_ray, operator, models, digests, guard)
