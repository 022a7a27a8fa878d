"""The RayService builder, as data: one fixture nation, a table of cases that each change one thing.

Every generated RayService is validated against KubeRay v1.7.0's own CRD schema
(tests/schemas/kuberay/ray.io_rayservices.yaml, made strict: a field the schema does not declare fails
instead of being pruned), its serveConfigV2 against Ray Serve's `ServeDeploySchema`; and the CRD is installed
into the devstack's API server and a generated RayService created there with kubectl and read back unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from sovereign_operator.builders.rayservice import (
    AUDIT_DIR,
    DATA_MOUNT_PATH,
    DATASET_DIR,
    build_data_volume_claim_for_nation,
    build_rayservice_for_nation,
    data_ray_resources,
)
from sovereign_operator.builders.serve_config import build_serve_applications_for_nation

from sovereign.serving_contract import AIR_GAP_ENV, RAY_VERSION
from sovereign.specs.model_deployment import ModelDeploymentSpec
from sovereign.specs.tenant import TenantSpec
from tests.helpers import kubectl, wait_until
from tests.operator.kuberay_schema import assert_valid, strict_validator
from tests.servers import KubeAPI

IMAGE = "registry.sovereign.example/sovereign-serving:0.1.0"
# The platform image's user (Dockerfile, chart), never root; fsGroup so it may write the data volume.
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
DIGEST = "cd" * 32
TENANT = TenantSpec.model_validate({"nation": "FRA", "displayName": "France", "clearance": "NATO SECRET"})
MODEL: dict[str, Any] = {
    "model": "analyst",
    "source": "/models/fra/analyst",
    "sha256": {"model.safetensors": DIGEST},
    "resources": {"cpu": "1", "memory": "4Gi"},
    "replicas": 1,
    "markings": {"classification": "NATO RESTRICTED", "releasableTo": ["DEU"]},
}
LABELS = {"sovereign.ai/nation": "FRA", "app.kubernetes.io/managed-by": "sovereign-operator"}
# The air gap, and the Serve proxy's callback that keeps `/-/routes` to itself.
PROXY_CALLBACK = {
    "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "sovereign_serving.serve_proxy:proxy_middlewares",
}
ENV = [{"name": name, "value": value} for name, value in {**AIR_GAP_ENV, **PROXY_CALLBACK}.items()]


def model(**changes: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({**MODEL, **changes})


def rayservice(*models: ModelDeploymentSpec) -> dict[str, Any]:
    specs = list(models)
    applications = build_serve_applications_for_nation(
        "FRA", TENANT, specs, [{"spec": TENANT.model_dump(mode="json", by_alias=True)}], {"FRA": specs}, {}
    )
    return build_rayservice_for_nation(TENANT, specs, applications, IMAGE)


def worker_group(obj: dict[str, Any]) -> dict[str, Any]:
    [group] = obj["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    return group


def test_the_strict_schema_catches_an_unknown_field() -> None:
    obj = rayservice(model())
    obj["spec"]["rayClusterConfig"]["rayVerison"] = RAY_VERSION
    assert list(strict_validator().iter_errors(obj))


def test_fra_rayservice_whole() -> None:
    obj = rayservice(model())
    assert_valid(obj)
    spec = obj["spec"]
    assert obj["metadata"] == {"name": "fra-serving", "namespace": "tenant-fra", "labels": LABELS}
    cluster = spec["rayClusterConfig"]
    assert cluster["rayVersion"] == RAY_VERSION == "2.60.0"
    assert cluster["enableInTreeAutoscaling"] is False
    head = cluster["headGroupSpec"]["template"]
    assert head["metadata"] == {"labels": LABELS}
    assert head["spec"]["serviceAccountName"] == "model-serving"
    [head_container] = head["spec"]["containers"]
    assert head_container["image"] == IMAGE
    assert head_container["env"] == ENV
    assert {p["containerPort"] for p in head_container["ports"]} == {6379, 8265, 10001, 8000}
    assert worker_group(obj) == {
        "groupName": "models",
        "replicas": 1,
        "minReplicas": 1,
        "maxReplicas": 1,
        "rayStartParams": {},
        "template": {
            "metadata": {"labels": LABELS},
            "spec": {
                "serviceAccountName": "model-serving",
                "securityContext": POD_SECURITY,
                "containers": [
                    {
                        "name": "ray-worker",
                        "image": IMAGE,
                        "env": ENV,
                        "resources": {
                            "requests": {"cpu": "1", "memory": "4Gi"},
                            "limits": {"cpu": "1", "memory": "4Gi"},
                        },
                        "securityContext": CONTAINER_SECURITY,
                    }
                ],
            },
        },
    }
    serve = yaml.safe_load(spec["serveConfigV2"])
    assert [app["name"] for app in serve["applications"]] == ["fra-gateway", "fra-analyst"]
    assert "http_options" not in serve  # KubeRay sets the proxy's host and port


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        pytest.param([], (0, 0, 0, "1", "4Gi", None, False), id="no-models-empty-group"),
        pytest.param([model(replicas=3)], (3, 3, 3, "1", "4Gi", None, False), id="replicas"),
        pytest.param([model(replicas=0)], (0, 0, 0, "1", "4Gi", None, False), id="stopped-model"),
        pytest.param(
            [model(replicas=None, autoscaling={"minReplicas": 1, "maxReplicas": 5})],
            (1, 1, 5, "1", "4Gi", None, True),
            id="autoscaling",
        ),
        pytest.param(
            [model(), model(model="big", resources={"cpu": "4", "memory": "2Gi"}, replicas=2)],
            (3, 3, 3, "4", "4Gi", None, False),
            id="largest-of-each-resource",
        ),
        pytest.param(
            [model(resources={"gpus": 2, "cpu": "8", "memory": "32Gi"}, engine="vllm")],
            (1, 1, 1, "8", "32Gi", "2", False),
            id="gpu-workers",
        ),
    ],
)
def test_worker_group_sizing(models: list[ModelDeploymentSpec], expected: tuple[Any, ...]) -> None:
    obj = rayservice(*models)
    assert_valid(obj)
    group = worker_group(obj)
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    got = (
        group["replicas"],
        group["minReplicas"],
        group["maxReplicas"],
        limits["cpu"],
        limits["memory"],
        limits.get("nvidia.com/gpu"),
        obj["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"],
    )
    assert got == expected
    tolerations = group["template"]["spec"].get("tolerations")
    gpu = expected[5] is not None
    assert tolerations == (
        [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}] if gpu else None
    )


def test_the_operators_otel_variables_reach_the_head_and_the_workers() -> None:
    telemetry = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "HOME": "/not-telemetry"}
    specs = [model()]
    applications = build_serve_applications_for_nation(
        "FRA",
        TENANT,
        specs,
        [{"spec": TENANT.model_dump(mode="json", by_alias=True)}],
        {"FRA": specs},
        {},
        telemetry_env=telemetry,
    )
    obj = build_rayservice_for_nation(TENANT, specs, applications, IMAGE, telemetry_env=telemetry)
    assert_valid(obj)
    otel = {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://collector:4318"}
    [head] = obj["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"]
    [worker] = worker_group(obj)["template"]["spec"]["containers"]
    assert head["env"] == worker["env"] == [*ENV, otel]
    serve_config = yaml.safe_load(obj["spec"]["serveConfigV2"])
    for app in serve_config["applications"]:
        assert app["runtime_env"]["env_vars"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4318"


def test_the_nations_ray_pods_run_as_the_platform_user_never_root() -> None:
    obj = rayservice(model(resources={"gpus": 1, "cpu": "4", "memory": "16Gi"}, engine="vllm"))
    assert_valid(obj)
    cluster = obj["spec"]["rayClusterConfig"]
    for pod in (cluster["headGroupSpec"]["template"]["spec"], worker_group(obj)["template"]["spec"]):
        assert pod["securityContext"] == POD_SECURITY
        [container] = pod["containers"]
        assert container["securityContext"] == CONTAINER_SECURITY


def test_same_specs_give_the_same_object() -> None:
    assert json.dumps(rayservice(model())) == json.dumps(rayservice(model()))


def test_the_nations_data_volume_claim() -> None:
    assert build_data_volume_claim_for_nation("FRA") == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "fra-data", "namespace": "tenant-fra", "labels": LABELS},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}},
    }


def test_the_data_volume_is_mounted_on_the_head_only_which_offers_its_ray_resource() -> None:
    specs = [model()]
    applications = build_serve_applications_for_nation(
        "FRA", TENANT, specs, [{"spec": TENANT.model_dump(mode="json", by_alias=True)}], {"FRA": specs}, {}
    )
    plain = build_rayservice_for_nation(TENANT, specs, applications, IMAGE)
    obj = build_rayservice_for_nation(TENANT, specs, applications, IMAGE, data_volume=True)
    assert_valid(obj)
    head_group = obj["spec"]["rayClusterConfig"]["headGroupSpec"]
    head = head_group["template"]["spec"]
    assert head["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "fra-data"}}]
    [container] = head["containers"]
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/var/lib/sovereign"}]
    # Ray docs: "Resources"; a rayStartParams value is a string. What runs on the volume asks for a sliver.
    offered = json.loads(head_group["rayStartParams"]["resources"])
    assert offered == {"sovereign-data": 1}
    assert set(data_ray_resources()) == set(offered) and 0 < data_ray_resources()["sovereign-data"] < 1
    assert head_group["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    # The audit log and the dataset stores are on it; the workers, the Serve config and the rest unchanged.
    assert AUDIT_DIR.startswith(DATA_MOUNT_PATH + "/") and DATASET_DIR.startswith(DATA_MOUNT_PATH + "/")
    assert (
        obj["spec"]["rayClusterConfig"]["workerGroupSpecs"]
        == plain["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    )
    assert "volumes" not in worker_group(obj)["template"]["spec"]
    assert "resources" not in plain["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]
    assert "volumes" not in plain["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    assert obj["spec"]["serveConfigV2"] == plain["spec"]["serveConfigV2"]


# --- On the API server, with KubeRay's CRD installed --------------------------------------------------


def without_defaults(read: Any, written: Any) -> Any:
    """`read` restricted to the keys of `written` (dicts, recursively): what the API server kept of it."""
    if isinstance(read, dict) and isinstance(written, dict):
        return {key: without_defaults(read[key], written[key]) for key in written if key in read}
    if isinstance(read, list) and isinstance(written, list) and len(read) == len(written):
        return [without_defaults(r, w) for r, w in zip(read, written, strict=True)]
    return read


def test_created_on_the_api_server_and_read_back(
    kube_api: KubeAPI,
    rayservice_crd: None,
) -> None:
    obj = rayservice(
        model(), model(model="embedder", task="embed", replicas=None, autoscaling={"maxReplicas": 2})
    )
    obj["metadata"]["namespace"] = "rayservice-test"  # the builder's namespace is the operator's to create
    kubectl(kube_api, "create", "namespace", "rayservice-test", check=False)
    kubectl(kube_api, "create", "-f", "-", input=json.dumps(obj))
    try:
        read = json.loads(
            kubectl(
                kube_api, "get", "rayservice", "fra-serving", "-n", "rayservice-test", "-o", "json"
            ).stdout
        )
        # Nothing pruned, nothing changed: every field the builder wrote is one KubeRay's schema declares.
        # The API server adds the CRD's defaults (numOfHosts: 1), nothing else.
        assert without_defaults(read["spec"], obj["spec"]) == obj["spec"]
        assert read["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["numOfHosts"] == 1
        assert read["metadata"]["labels"] == LABELS
        table = kubectl(kube_api, "get", "rayservices", "-n", "rayservice-test").stdout
        assert "fra-serving" in table
    finally:
        kubectl(kube_api, "delete", "rayservice", "fra-serving", "-n", "rayservice-test", "--wait=false")
    wait_until(
        lambda: (
            kubectl(
                kube_api, "get", "rayservice", "fra-serving", "-n", "rayservice-test", check=False
            ).returncode
            != 0
        ),
        "the RayService deleted",
    )
