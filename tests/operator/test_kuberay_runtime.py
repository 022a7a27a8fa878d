"""The `kuberay` runtime (the default in a cluster) with the real operator: a Ready nation's ModelDeployments
become one RayService in its namespace, valid against KubeRay v1.7.0's schema; the status KubeRay reports
back becomes the ModelDeployment's status. No KubeRay operator runs here, so the test writes the RayService's
status as KubeRay would (KubeRay docs: RayService `status.activeServiceStatus.applicationStatuses`)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml

from tests.helpers import kubectl, wait_until
from tests.operator.harness import (
    OperatorProcess,
    Platform,
    operator_with_nations,
)
from tests.operator.kuberay_schema import assert_valid

NAMESPACE = "tenant-ita"
MODEL = {
    "apiVersion": "sovereign.ai/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "ita-analyst", "namespace": NAMESPACE},
    "spec": {
        "model": "analyst",
        "source": "/models/ita/analyst",
        "sha256": {"model.safetensors": "ab" * 32},
        "replicas": 2,
        "resources": {"cpu": "2", "memory": "8Gi"},
        "markings": {"classification": "NATO RESTRICTED"},
    },
}


@pytest.fixture(scope="module")
def kuberay_operator(
    platform: Platform,
    rayservice_crd: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    env = {"SOVEREIGN_RUNTIME": "kuberay", "SOVEREIGN_SERVING_INTERVAL_SECONDS": "1"}
    with operator_with_nations(
        platform, tmp_path_factory.mktemp("operator"), {"ita": {"clearance": "NATO SECRET"}}, env
    ) as process:
        kubectl(platform.kube, "apply", "-f", "-", input=yaml.safe_dump(MODEL))
        yield process


def rayservice(platform: Platform) -> dict | None:
    found = kubectl(
        platform.kube, "get", "rayservice", "ita-serving", "-n", NAMESPACE, "-o=json", check=False
    )
    return json.loads(found.stdout) if found.returncode == 0 else None


def model_status(platform: Platform) -> dict:
    out = kubectl(platform.kube, "get", "modeldeployment", "ita-analyst", "-n", NAMESPACE, "-o=json").stdout
    return json.loads(out).get("status") or {}


def conditions(status: dict) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status.get("conditions", [])}


def report(platform: Platform, status: str, message: str = "") -> None:
    """What KubeRay writes once Ray Serve reports the applications."""
    applications = {
        "ita-gateway": {"status": "RUNNING"},
        "ita-analyst": {"status": status, "serveDeploymentStatuses": {"ModelServer": {"message": message}}},
    }
    patch = {"status": {"activeServiceStatus": {"applicationStatuses": applications}}}
    kubectl(
        platform.kube,
        "patch",
        "rayservice",
        "ita-serving",
        "-n",
        NAMESPACE,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(patch),
    )


def test_a_nations_models_become_one_valid_rayservice(
    platform: Platform, kuberay_operator: OperatorProcess
) -> None:
    wait_until(lambda: rayservice(platform), "RayService ita-serving", timeout=30)
    obj = rayservice(platform)
    assert obj is not None
    written = {key: obj[key] for key in ("apiVersion", "kind", "spec")}
    written["metadata"] = {k: obj["metadata"][k] for k in ("name", "namespace", "labels")}
    assert_valid(written)
    serve = yaml.safe_load(obj["spec"]["serveConfigV2"])
    assert [a["name"] for a in serve["applications"]] == ["ita-gateway", "ita-analyst"]
    [workers] = obj["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert workers["replicas"] == 2
    assert workers["template"]["spec"]["serviceAccountName"] == "model-serving"
    assert conditions(model_status(platform)) == {
        "Admitted": "True",
        "IntegrityVerified": "Unknown",
        "Ready": "False",
    }


def test_kuberays_report_becomes_the_models_status(
    platform: Platform, kuberay_operator: OperatorProcess
) -> None:
    wait_until(lambda: rayservice(platform), "RayService ita-serving", timeout=30)
    report(platform, "RUNNING")
    wait_until(
        lambda: conditions(model_status(platform)).get("Ready") == "True", "ita-analyst Ready", timeout=30
    )
    assert model_status(platform)["endpoint"] == "http://ita-serving-serve-svc.tenant-ita.svc:8000/ita/v1"
    report(platform, "DEPLOY_FAILED", "IntegrityError: model.safetensors: sha256 mismatch")
    wait_until(
        lambda: conditions(model_status(platform)).get("IntegrityVerified") == "False",
        "ita-analyst IntegrityVerified=False",
        timeout=30,
    )


def test_changing_replicas_updates_the_rayservice_in_place(
    platform: Platform, kuberay_operator: OperatorProcess
) -> None:
    wait_until(lambda: rayservice(platform), "RayService ita-serving", timeout=30)
    uid = rayservice(platform)["metadata"]["uid"]
    kubectl(
        platform.kube,
        "patch",
        "modeldeployment",
        "ita-analyst",
        "-n",
        NAMESPACE,
        "--type=merge",
        "-p",
        '{"spec": {"replicas": 3}}',
    )

    def workers() -> int:
        return rayservice(platform)["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["replicas"]

    wait_until(lambda: workers() == 3, "3 workers", timeout=30)
    assert rayservice(platform)["metadata"]["uid"] == uid  # the same object, updated
