"""The operator settings the Helm chart adds: GPU placement of the nations' Ray workers, the health port, the
pod name, and a webhook the chart registers (kopf serves it but leaves its configuration alone)."""

from __future__ import annotations

import json
from typing import Any

import kopf
import pytest
from sovereign_operator.admission_server import ServiceWebhookServer, configure_admission
from sovereign_operator.builders.rayservice import GPU_TOLERATION, GpuPlacement, build_rayservice_for_nation
from sovereign_operator.config import OperatorConfig

from tests.operator.kuberay_schema import assert_valid
from tests.operator.test_rayservice_builder import IMAGE, TENANT, model, worker_group

GPU_NODES = {"nvidia.com/gpu.present": "true", "pool": "gpu"}
DEDICATED = {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}


def _rayservice(placement: GpuPlacement | None, gpus: int) -> dict[str, Any]:
    spec = model(resources={"cpu": "4", "memory": "16Gi", "gpus": gpus})
    return build_rayservice_for_nation(TENANT, [spec], [], IMAGE, gpu_placement=placement)


def _pod(rayservice: dict[str, Any], group: str) -> dict[str, Any]:
    config = rayservice["spec"]["rayClusterConfig"]
    spec: dict[str, Any] = (config["headGroupSpec"] if group == "head" else worker_group(rayservice))[
        "template"
    ]["spec"]
    return spec


# Each case changes one thing: (placement, GPUs per replica) → the worker pod's tolerations and nodeSelector.
CASES = {
    "gpu-model-placed-on-gpu-nodes": (
        GpuPlacement(GPU_NODES, [DEDICATED]),
        1,
        [GPU_TOLERATION, DEDICATED],
        GPU_NODES,
    ),
    "gpu-model-without-placement-keeps-the-gpu-toleration": (None, 1, [GPU_TOLERATION], None),
    "the-gpu-toleration-is-not-repeated": (GpuPlacement({}, [GPU_TOLERATION]), 2, [GPU_TOLERATION], None),
    "cpu-model-ignores-gpu-placement": (GpuPlacement(GPU_NODES, [DEDICATED]), 0, None, None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gpu_placement_of_the_worker_pods(case: str) -> None:
    placement, gpus, tolerations, node_selector = CASES[case]
    rayservice = _rayservice(placement, gpus)
    assert_valid(rayservice)  # KubeRay's own CRD schema, strict
    worker = _pod(rayservice, "worker")
    assert worker.get("tolerations") == tolerations
    assert worker.get("nodeSelector") == node_selector
    head = _pod(rayservice, "head")  # the head never asks for GPUs, so it never lands on GPU nodes
    assert "nodeSelector" not in head and "tolerations" not in head


def test_the_builder_does_not_share_the_placement_it_was_given() -> None:
    placement = GpuPlacement(dict(GPU_NODES), [dict(DEDICATED)])
    worker = _pod(_rayservice(placement, 1), "worker")
    worker["nodeSelector"]["pool"] = "changed"
    worker["tolerations"][1]["value"] = "changed"
    assert placement.node_selector == GPU_NODES and placement.tolerations == [DEDICATED]


def test_chart_environment_is_read() -> None:
    config = OperatorConfig.from_environment(
        {
            "VAULT_ADDR": "https://vault.vault.svc:8200",
            "SOVEREIGN_HEALTH_PORT": "8081",
            "SOVEREIGN_POD_NAME": "sov-sovereign-operator-5d9c-abcde",
            "SOVEREIGN_POD_NAMESPACE": "sovereign-system",
            "SOVEREIGN_WEBHOOK_MANAGED": "false",
            "SOVEREIGN_SERVING_GPU_NODE_SELECTOR": json.dumps(GPU_NODES),
            "SOVEREIGN_SERVING_GPU_TOLERATIONS": json.dumps([DEDICATED]),
        }
    )
    assert config.health_port == 8081
    assert (config.pod_namespace, config.pod_name) == (
        "sovereign-system",
        "sov-sovereign-operator-5d9c-abcde",
    )
    assert config.webhook_managed is False
    assert config.serving_gpu_node_selector == GPU_NODES
    assert config.serving_gpu_tolerations == [DEDICATED]


def test_without_the_chart_environment_the_defaults_hold() -> None:
    config = OperatorConfig.from_environment({"VAULT_ADDR": "http://127.0.0.1:8200"})
    assert (config.health_port, config.pod_name, config.webhook_managed) == (None, None, True)
    assert (config.serving_gpu_node_selector, config.serving_gpu_tolerations) == ({}, [])


@pytest.mark.parametrize("bad", ["not json", json.dumps(["a list"])])
def test_a_bad_gpu_node_selector_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="serving_gpu_node_selector|JSON|Expecting"):
        OperatorConfig.from_environment(
            {"VAULT_ADDR": "http://v:8200", "SOVEREIGN_SERVING_GPU_NODE_SELECTOR": bad}
        )


def test_a_chart_owned_webhook_is_served_but_not_registered_by_kopf() -> None:
    settings = kopf.OperatorSettings()
    config = OperatorConfig.from_environment(
        {
            "VAULT_ADDR": "http://v:8200",
            "SOVEREIGN_WEBHOOK_SERVICE": "sovereign-system/sov-sovereign-webhook",
            "SOVEREIGN_WEBHOOK_MANAGED": "false",
        }
    )
    configure_admission(settings, config)
    assert isinstance(settings.admission.server, ServiceWebhookServer)
    assert settings.admission.managed is None  # kopf never creates or patches the chart's configuration
