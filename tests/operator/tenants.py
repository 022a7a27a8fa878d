"""Helpers for the operator tests: Tenants applied and read with kubectl, as a platform engineer does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import kubectl, wait_until


def tenant_manifest(name: str, nation: str, **spec: Any) -> str:
    body = {
        "apiVersion": "sovereign.ai/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": name},
        "spec": {"nation": nation, "displayName": f"Nation {nation}", "clearance": "NATO SECRET", **spec},
    }
    return yaml.safe_dump(body)


def model_deployment(nation: str, model: str, markings: dict[str, Any]) -> dict[str, Any]:
    """A ModelDeployment `<nation>-<model>` in the nation's namespace (never served: the weights' hash is a
    placeholder), for tests of admission and policy that need a model in the catalogue."""
    return {
        "apiVersion": "sovereign.ai/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": f"{nation}-{model}", "namespace": f"tenant-{nation}"},
        "spec": {
            "model": model,
            "source": f"/models/{nation}/{model}",
            "sha256": {"model.safetensors": "0" * 64},
            "replicas": 1,
            "markings": markings,
        },
    }


def tenant_policy_manifest(name: str, cedar: str, namespace: str) -> str:
    """A TenantPolicy as YAML, for `kubectl apply -f -` or a file."""
    body = {
        "apiVersion": "sovereign.ai/v1alpha1",
        "kind": "TenantPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"cedar": cedar},
    }
    return yaml.safe_dump(body)


def rotate_key_with_cli(kube: Any, nation: str) -> int:
    """`sovereign keys rotate --nation N --output json`, as a platform engineer runs it: the new version."""
    command = ["keys", "rotate", "--nation", nation, "--output", "json"]
    result = subprocess.run(
        [sys.executable, "-m", "sovereign.cli.main", *command],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env=kube.env(),
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    return int(json.loads(result.stdout)["keyVersion"])


def apply_tenant(kube: Any, name: str, nation: str, **spec: Any) -> None:
    kubectl(kube, "apply", "-f", "-", input=tenant_manifest(name, nation, **spec))


def get_json(kube: Any, *args: str) -> dict[str, Any] | None:
    result = kubectl(kube, "get", *args, "-o", "json", check=False)
    if result.returncode != 0:
        if "NotFound" in result.stderr or "not found" in result.stderr:
            return None
        raise AssertionError(f"kubectl get {' '.join(args)} failed: {result.stderr}")
    return dict(json.loads(result.stdout))


def tenant(kube: Any, name: str) -> dict[str, Any]:
    body = get_json(kube, "tenant", name)
    assert body is not None, f"Tenant {name} does not exist"
    return body


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    for item in (body.get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return dict(item)
    return {}


def wait_ready(kube: Any, name: str, timeout: float = 30.0) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        body = tenant(kube, name)
        return body if condition(body, "Ready").get("status") == "True" else None

    return wait_until(ready, f"Tenant {name} Ready", timeout=timeout)


def delete_tenant(kube: Any, name: str, timeout: float = 60.0) -> None:
    """Delete and wait until the Tenant is gone (its offboarding finalizer released)."""
    kubectl(kube, "delete", "tenant", name, "--ignore-not-found", "--wait=false")
    wait_until(lambda: get_json(kube, "tenant", name) is None, f"Tenant {name} deleted", timeout=timeout)


def events_for(kube: Any, name: str) -> list[dict[str, Any]]:
    # kopf posts events of cluster-scoped objects into `default`. `-o json` rather than a table: the
    # devstack's table printer cannot parse kopf's fractional event timestamps (see the operator report).
    body = get_json(kube, "events", "-n", "default") or {"items": []}
    return [e for e in body["items"] if e["involvedObject"].get("name") == name]
