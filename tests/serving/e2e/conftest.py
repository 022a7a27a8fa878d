"""The whole serving path's fixtures (its helpers: tests/serving/e2e/harness.py): Tenants made Ready by the
real operator, ModelDeployments applied with kubectl, the operator deploying to a real local Ray cluster (the
devstack's `local-ray` runtime, started as `sovereign up` starts it), and the nations' gateways answering the
official `openai` client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.operator.harness import Platform
from tests.serving.e2e.harness import LocalRay, Serving, running_local_ray, serving_platform


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRay]:
    with running_local_ray(tmp_path_factory.mktemp("ray")) as (ray, _):
        yield ray


@pytest.fixture(scope="module")
def serving(
    platform: Platform,
    local_ray: LocalRay,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Serving]:
    with serving_platform(platform, local_ray, tmp_path_factory) as (operator, models, digests):
        yield Serving(platform, local_ray, operator, models, digests)
