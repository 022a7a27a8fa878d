"""The whole serving path as a user meets it (helpers; the fixtures are in tests/serving/e2e/conftest.py): a
local Ray head started as `sovereign up` starts it (the devstack's `local-ray` runtime), and `Serving`, the
nations' gateways on it with what a test applies and asks through them; `serving_platform`, the operator on it
with the nations Ready and the checkpoints built."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sovereign_devstack.processes import free_loopback_port, start_service, stop_service
from sovereign_devstack.services import RAY_SERVICE, private_ray_temp_root, ray_head_spec
from sovereign_devstack.tiny_model import build_tiny_llama, copy_minilm

from tests.helpers import kubectl, wait_until
from tests.operator.harness import OperatorProcess, Platform, operator_with_nations

SOVEREIGN = [str(Path(sys.executable).parent / "sovereign")]
CLEARANCES = {"fra": "NATO SECRET", "deu": "NATO CONFIDENTIAL", "pol": "NATO SECRET"}


@dataclass(frozen=True)
class LocalRay:
    dashboard_url: str
    gateway_url: str
    token: str
    metrics_url: str  # the node's Prometheus metrics (Ray's metrics agent; the replicas' metrics too)
    state_dir: Path  # the devstack state dir of the head: its log is under logs/


@dataclass(frozen=True)
class Serving:
    platform: Platform
    ray: LocalRay
    operator: OperatorProcess
    models: Path  # built checkpoints: tiny-llama/, minilm/
    digests: dict[str, dict[str, str]]

    def endpoint(self, nation: str) -> str:
        return f"{self.ray.gateway_url}/{nation}/v1"

    def cli_env(self) -> dict[str, str]:
        """The environment of the `sovereign` CLI processes the tests run."""
        return {
            **self.platform.kube.env(),
            **self.platform.vault_env(),
            "VAULT_TOKEN": self.platform.root_token,
        }

    def token(self, nation: str, clearance: str, *extra: str) -> str:
        issued = subprocess.run(
            [*SOVEREIGN, "token", "issue", "--nation", nation, "--clearance", clearance, *extra],
            capture_output=True,
            text=True,
            timeout=60,
            env=self.cli_env(),
        )
        assert issued.returncode == 0, issued.stderr
        return issued.stdout.strip()

    def apply_analyst_and_embedder(self) -> None:
        """FRA's `fra/analyst` (tiny Llama, NATO RESTRICTED, released to DEU) and DEU's `deu/embedder`
        (MiniLM, DEU only), both waited for until Ready."""
        self.apply_model(
            "fra-analyst",
            "fra",
            "analyst",
            "tiny-llama",
            maxTokens=16,
            markings={"classification": "NATO RESTRICTED", "releasableTo": ["DEU"]},
        )
        self.apply_model(
            "deu-embedder",
            "deu",
            "embedder",
            "minilm",
            task="embed",
            markings={"classification": "NATO UNCLASSIFIED"},
        )
        self.wait_condition("fra", "fra-analyst", "Ready", "True")
        self.wait_condition("deu", "deu-embedder", "Ready", "True")

    def apply_model(self, name: str, nation: str, model: str, checkpoint: str, **spec: object) -> None:
        manifest = {
            "apiVersion": "sovereign.ai/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": f"tenant-{nation}"},
            "spec": {
                "model": model,
                "source": str(self.models / checkpoint),
                "sha256": self.digests[checkpoint],
                "engine": "transformers",
                "replicas": 1,
                "resources": {"cpu": "1", "memory": "1Gi"},
                **spec,
            },
        }
        kubectl(self.platform.kube, "apply", "-f", "-", input=yaml.safe_dump(manifest))

    def model_status(self, nation: str, name: str) -> dict:
        out = kubectl(self.platform.kube, "get", "modeldeployment", name, "-n", f"tenant-{nation}", "-o=json")
        return json.loads(out.stdout).get("status") or {}

    def wait_condition(self, nation: str, name: str, kind: str, value: str, timeout: float = 180.0) -> dict:
        def reached() -> dict | None:
            status = self.model_status(nation, name)
            found = {c["type"]: c for c in status.get("conditions", [])}.get(kind)
            return status if found and found["status"] == value else None

        wait_until(reached, f"{nation}/{name} {kind}={value}", timeout=timeout)
        return self.model_status(nation, name)


@contextlib.contextmanager
def running_local_ray(
    state_dir: Path, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[LocalRay, int]]:
    """A local Ray head exactly as `sovereign up` starts it (its own ports, token and home; usage stats off),
    with `extra_env` added; yields it and the head's pid (its process group), and stops that group after."""
    dashboard_port, metrics_port, token = free_loopback_port(), free_loopback_port(), secrets.token_hex(32)
    temp_root = private_ray_temp_root()
    spec = ray_head_spec(
        dashboard_port, 2, token, home=state_dir / "ray-home", metrics_port=metrics_port, temp_root=temp_root
    )
    spec = dataclasses.replace(spec, env={**(spec.env or {}), **(extra_env or {})})
    try:
        head_pid = start_service(spec, state_dir, timeout=120.0)
    except BaseException:
        shutil.rmtree(temp_root, ignore_errors=True)
        raise
    try:
        gateway_url = f"http://127.0.0.1:{free_loopback_port()}"
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        dashboard_url = f"http://127.0.0.1:{dashboard_port}"
        yield LocalRay(dashboard_url, gateway_url, token, metrics_url, state_dir), head_pid
    finally:
        stop_service(state_dir, RAY_SERVICE, timeout=5.0)
        shutil.rmtree(temp_root, ignore_errors=True)


@contextlib.contextmanager
def serving_platform(
    cluster: Platform,
    local_ray: LocalRay,
    tmp_path_factory: pytest.TempPathFactory,
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[OperatorProcess, Path, dict[str, dict[str, str]]]]:
    """The operator on the `local-ray` runtime, the CLEARANCES nations Ready, the checkpoints built; yields
    (operator, models dir, digests), and offboards the nations and stops the operator after."""
    models = tmp_path_factory.mktemp("models")
    digests = {
        "tiny-llama": build_tiny_llama(models / "tiny-llama"),
        "minilm": copy_minilm(models / "minilm"),
    }
    env = {
        "SOVEREIGN_RUNTIME": "local-ray",
        "SOVEREIGN_RAY_DASHBOARD_URL": local_ray.dashboard_url,
        "SOVEREIGN_RAY_TOKEN": local_ray.token,
        "SOVEREIGN_SERVE_HTTP_PORT": local_ray.gateway_url.rsplit(":", 1)[1],
        "SOVEREIGN_GATEWAY_URL": local_ray.gateway_url,
        "SOVEREIGN_SERVING_INTERVAL_SECONDS": "1",
        "SOVEREIGN_SERVING_CPU_SCALE": "0.05",
        "SOVEREIGN_SERVING_MEMORY_SCALE": "0.01",
        **(extra_env or {}),
    }
    nations = {name: {"clearance": clearance} for name, clearance in CLEARANCES.items()}
    with operator_with_nations(cluster, tmp_path_factory.mktemp("operator"), nations, env) as operator:
        yield operator, models, digests
