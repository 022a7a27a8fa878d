"""A nation's RayService (KubeRay `ray.io/v1`): its Ray cluster and Serve config, in its tenant namespace.

The runtime `kuberay` (a real cluster): KubeRay creates the Ray cluster and deploys `serveConfigV2` (the same
`ServeDeploySchema` body the devstack PUTs to a local Ray's dashboard) and updates the applications in place
when only the Serve config changes (KubeRay docs: "RayService", "Upgrading a RayService").

Sizing: the head runs Ray's control processes, the Serve controller and proxy and the nation's gateway (small
fractional CPU); one worker group runs the models, each worker pod sized to one replica of the nation's
largest model (CPU, memory and GPUs, by the maximum of each), as many workers as replicas in total. With
autoscaling models, KubeRay's in-tree autoscaler moves the workers between the sums of min and max replicas.
A nation without models keeps an empty worker group. The namespace's ResourceQuota still caps what runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from kubernetes.utils.quantity import parse_quantity

from sovereign.domain.nations import (
    SERVING_SERVICE_ACCOUNT,
    data_claim_name,
    rayservice_name,
    tenant_namespace,
)
from sovereign.serving_contract import AIR_GAP_ENV, PLATFORM_UID, PROXY_ENV, RAY_VERSION
from sovereign.specs.model_deployment import ModelDeploymentSpec, ModelResources
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.builders.serve_config import build_serve_deploy_config
from sovereign_operator.constants import GPU_RESOURCE, tenant_labels

RAYSERVICE_API_VERSION = "ray.io/v1"
WORKER_GROUP = "models"
# The head: GCS, dashboard, Serve controller and HTTP proxy, and the gateway replicas.
DEFAULT_HEAD_RESOURCES = {"cpu": "1", "memory": "4Gi"}
HEAD_PORTS = (("gcs-server", 6379), ("dashboard", 8265), ("client", 10001), ("serve", 8000))
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


@dataclass(frozen=True)
class GpuPlacement:
    """Where pods that request GPUs may run: the platform's GPU nodes (the chart's serving.gpu values).

    k8s docs: /docs/concepts/scheduling-eviction/assign-pod-node/#nodeselector and
    /docs/concepts/scheduling-eviction/taint-and-toleration/. The nvidia.com/gpu toleration is always added.
    """

    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()


# -- the data volume: the nation's audit log and dataset stores, in its own namespace ---------------------
# One claim per nation, mounted on the head only (ReadWriteOnce); the head offers the custom Ray resource
# DATA_RAY_RESOURCE so that whatever reads or writes the volume asks for a sliver of it
# (DATA_RAY_RESOURCE_SHARE) and is placed where the volume is: the nation's AuditWriter actor, its ingest
# jobs (`entrypoint_resources`) and its retriever's replicas.
DATA_MOUNT_PATH = "/var/lib/sovereign"
AUDIT_DIR = f"{DATA_MOUNT_PATH}/audit"
DATASET_DIR = f"{DATA_MOUNT_PATH}/datasets"
DATA_RAY_RESOURCE = "sovereign-data"
DATA_RAY_RESOURCE_SHARE = 0.001
DATA_VOLUME = "data"
DEFAULT_DATA_VOLUME_SIZE = "20Gi"


def data_ray_resources() -> dict[str, float]:
    """What a task, actor or job entrypoint asks for to run where the nation's data volume is (the head)."""
    return {DATA_RAY_RESOURCE: DATA_RAY_RESOURCE_SHARE}


def build_data_volume_claim_for_nation(nation: str, size: str = DEFAULT_DATA_VOLUME_SIZE) -> dict[str, Any]:
    """The PersistentVolumeClaim holding the nation's audit log and dataset stores (the cluster's default
    StorageClass)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": data_claim_name(nation),
            "namespace": tenant_namespace(nation),
            "labels": tenant_labels(nation),
        },
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }


def _mount_data_volume(head_group: dict[str, Any], nation: str) -> None:
    pod = head_group["template"]["spec"]
    pod["volumes"] = [{"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": data_claim_name(nation)}}]
    for container in pod["containers"]:
        container["volumeMounts"] = [{"name": DATA_VOLUME, "mountPath": DATA_MOUNT_PATH}]
    # Ray docs: "Resources" (custom resources); rayStartParams values are strings.
    head_group["rayStartParams"]["resources"] = json.dumps({DATA_RAY_RESOURCE: 1})


def _serving(specs: Sequence[ModelDeploymentSpec]) -> list[ModelDeploymentSpec]:
    return [spec for spec in specs if spec.replicas != 0]


def _replica_range(spec: ModelDeploymentSpec) -> tuple[int, int]:
    if spec.autoscaling is not None:
        return spec.autoscaling.min_replicas, spec.autoscaling.max_replicas
    replicas = 1 if spec.replicas is None else spec.replicas
    return replicas, replicas


def _largest(quantities: Sequence[str]) -> str:
    return max(quantities, key=parse_quantity)


def _container_resources(cpu: str, memory: str, gpus: int = 0) -> dict[str, Any]:
    # Requests equal limits: Ray schedules by what it was told, so the pod must be sure to have it.
    amounts: dict[str, Any] = {"cpu": cpu, "memory": memory}
    if gpus:
        amounts[GPU_RESOURCE] = str(gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _container_env(telemetry_env: Mapping[str, str] | None) -> list[dict[str, str]]:
    """The air gap and the Serve proxy's callback (`/-/routes` answers 404: `sovereign_serving.serve_proxy`),
    then the operator's OTEL_* variables (sorted), so that the Ray processes themselves and every replica
    export spans where the operator does; a telemetry variable never overrides the air gap."""
    env = {**AIR_GAP_ENV, **PROXY_ENV}
    for name, value in sorted((telemetry_env or {}).items()):
        if name.startswith("OTEL_") and name not in env:
            env[name] = value
    return [{"name": name, "value": value} for name, value in env.items()]


def _pod_template(
    nation: str,
    container: str,
    image: str,
    resources: dict[str, Any],
    ports: Sequence[tuple[str, int]] = (),
    telemetry_env: Mapping[str, str] | None = None,
    gpu_placement: GpuPlacement | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "serviceAccountName": SERVING_SERVICE_ACCOUNT,
        # The platform image's own user, never root; fsGroup lets it write the nation's data volume, whose
        # root a fresh claim gives to root (Kubernetes docs: "Configure a Security Context for a Pod").
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": PLATFORM_UID,
            "runAsGroup": PLATFORM_UID,
            "fsGroup": PLATFORM_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": container,
                "image": image,
                # The Ray processes themselves are air-gapped too (usage stats are read at ray start).
                "env": _container_env(telemetry_env),
                "resources": resources,
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                **(
                    {"ports": [{"name": name, "containerPort": port} for name, port in ports]}
                    if ports
                    else {}
                ),
            }
        ],
    }
    if GPU_RESOURCE in resources["limits"]:
        placement = gpu_placement or GpuPlacement()
        tolerations = [dict(GPU_TOLERATION)]
        tolerations += [dict(t) for t in placement.tolerations if dict(t) not in tolerations]
        spec["tolerations"] = tolerations
        if placement.node_selector:
            spec["nodeSelector"] = dict(placement.node_selector)
    return {"metadata": {"labels": tenant_labels(nation)}, "spec": spec}


def _worker_group(
    nation: str,
    models: Sequence[ModelDeploymentSpec],
    image: str,
    telemetry_env: Mapping[str, str] | None = None,
    gpu_placement: GpuPlacement | None = None,
) -> dict[str, Any]:
    sized = [spec.resources for spec in models] or [ModelResources()]
    resources = _container_resources(
        _largest([r.cpu for r in sized]), _largest([r.memory for r in sized]), max(r.gpus for r in sized)
    )
    ranges = [_replica_range(spec) for spec in models]
    low, high = sum(r[0] for r in ranges), sum(r[1] for r in ranges)
    return {
        "groupName": WORKER_GROUP,
        "replicas": low,
        "minReplicas": low,
        "maxReplicas": high,
        "rayStartParams": {},
        "template": _pod_template(
            nation, "ray-worker", image, resources, telemetry_env=telemetry_env, gpu_placement=gpu_placement
        ),
    }


def build_rayservice_for_nation(
    tenant_spec: TenantSpec,
    model_deployments: Sequence[ModelDeploymentSpec],
    applications: Sequence[Mapping[str, Any]],
    image: str,
    *,
    head_resources: Mapping[str, str] = DEFAULT_HEAD_RESOURCES,
    telemetry_env: Mapping[str, str] | None = None,
    data_volume: bool = False,
    gpu_placement: GpuPlacement | None = None,
) -> dict[str, Any]:
    """`data_volume`: mount the nation's data PersistentVolumeClaim (`build_data_volume_claim_for_nation`)
    on the head, where its AuditWriter, ingest jobs and retriever run. `gpu_placement`: nodeSelector and
    tolerations of the worker pods when the models request GPUs (the head never does).

    The nation's RayService: `applications` (from `build_serve_applications_for_nation`, built with
    cpu_scale 1) as `serveConfigV2`, a Ray cluster of `image` sized from the nation's `model_deployments`.
    `telemetry_env`: the operator's OTEL_* variables, in every Ray container's environment."""
    nation = tenant_spec.nation
    models = _serving(model_deployments)
    head = _container_resources(head_resources["cpu"], head_resources["memory"])
    serve_config = yaml.safe_dump(build_serve_deploy_config(applications), sort_keys=False)
    rayservice: dict[str, Any] = {
        "apiVersion": RAYSERVICE_API_VERSION,
        "kind": "RayService",
        "metadata": {
            "name": rayservice_name(nation),
            "namespace": tenant_namespace(nation),
            "labels": tenant_labels(nation),
        },
        "spec": {
            "serveConfigV2": serve_config,
            "rayClusterConfig": {
                "rayVersion": RAY_VERSION,
                "enableInTreeAutoscaling": any(spec.autoscaling is not None for spec in models),
                "headGroupSpec": {
                    # On the pod IP, for the operator (Jobs, Serve REST); the nation's NetworkPolicy lets only
                    # the platform namespace and the nation's own pods reach it (builders/network_policy.py).
                    "rayStartParams": {"dashboard-host": "0.0.0.0"},
                    "template": _pod_template(
                        nation, "ray-head", image, head, HEAD_PORTS, telemetry_env=telemetry_env
                    ),
                },
                "workerGroupSpecs": [_worker_group(nation, models, image, telemetry_env, gpu_placement)],
            },
        },
    }
    if data_volume:
        _mount_data_volume(rayservice["spec"]["rayClusterConfig"]["headGroupSpec"], nation)
    return rayservice
