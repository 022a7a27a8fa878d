"""The local-ray runtime and the model status when Ray fails (no process: Ray's dashboard calls replaced).

A Ray head that restarted has lost every application it had been given: the runtime puts the same config
again instead of trusting what it sent last; a pass that failed half-way puts it again on the next one; and a
ModelDeployment whose runtime cannot be reached is not Ready, and says why.
(The whole of it on a real Ray head: tests/serving/e2e/test_platform_faults.py.)
"""

from __future__ import annotations

from typing import Any

import pytest
from sovereign_operator.builders.model_status import RUNTIME_UNAVAILABLE, Placement, model_deployment_status
from sovereign_operator.builders.serving_plan import ServingPlan
from sovereign_operator.config import OperatorConfig
from sovereign_operator.runtimes import LocalRayRuntime

from sovereign.clients import ray

CONFIG = OperatorConfig(
    vault_addr="https://vault.example:8200",
    runtime="local-ray",
    ray_dashboard_url="http://127.0.0.1:8265",
    serve_http_port=8000,
)
BODY = {"applications": [{"name": "fra-gateway"}, {"name": "fra-analyst"}]}
PLAN = ServingPlan(nations=(), placements={}, left_out={})


class FakeRay:
    """Ray's Serve REST API: what was PUT, and the applications it reports."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.puts = 0
        self.applications: dict[str, Any] = {}
        self.down = False
        monkeypatch.setattr(ray, "put_serve_applications", self.put)
        monkeypatch.setattr(ray, "get_serve_status", self.status)

    def put(self, url: str, body: dict[str, Any], *, token: str | None = None) -> None:
        if self.down:
            raise ray.RayUnavailable("Ray dashboard is unreachable")
        self.puts += 1
        self.applications = {app["name"]: {"status": "DEPLOYING"} for app in body["applications"]}

    def status(self, url: str, *, token: str | None = None) -> dict[str, Any]:
        if self.down:
            raise ray.RayUnavailable("Ray dashboard is unreachable")
        return {"applications": self.applications}


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> LocalRayRuntime:
    runtime = LocalRayRuntime(CONFIG)
    monkeypatch.setattr(runtime, "serve_config", lambda plan: BODY)
    return runtime


def test_an_unchanged_config_is_put_once(runtime: LocalRayRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRay(monkeypatch)
    assert runtime.apply(PLAN, None).deployed  # type: ignore[arg-type]
    assert not runtime.apply(PLAN, None).deployed  # type: ignore[arg-type]
    assert fake.puts == 1


def test_a_ray_head_that_lost_its_applications_gets_them_again(
    runtime: LocalRayRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRay(monkeypatch)
    runtime.apply(PLAN, None)  # type: ignore[arg-type]
    fake.applications = {}  # the head restarted: a new, empty Serve
    applied = runtime.apply(PLAN, None)  # type: ignore[arg-type]
    assert fake.puts == 2 and applied.deployed
    assert set(applied.states) == {"fra-gateway", "fra-analyst"}


def test_a_pass_that_failed_puts_the_config_again_once_ray_answers(
    runtime: LocalRayRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRay(monkeypatch)
    runtime.apply(PLAN, None)  # type: ignore[arg-type]
    fake.down = True
    with pytest.raises(ray.RayUnavailable):
        runtime.apply(PLAN, None)  # type: ignore[arg-type]
    fake.down = False
    assert runtime.apply(PLAN, None).deployed  # type: ignore[arg-type]
    assert fake.puts == 2


def test_a_model_whose_runtime_is_unavailable_is_not_ready_and_says_why() -> None:
    placement = Placement(
        True,
        application="fra-analyst",
        endpoint="/fra/v1",
        app_status=RUNTIME_UNAVAILABLE,
        app_message="the serving runtime local-ray failed: Ray dashboard is unreachable",
    )
    running = {"conditions": [{"type": "Ready", "status": "True", "reason": "Running", "message": "x"}]}
    status = model_deployment_status(placement, running, 1)
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "RuntimeUnavailable")
    assert "unreachable" in ready["message"]
