"""One ModelDeployment's Ray Serve application: no HTTP route (the gateway calls it through a deployment
handle), its spec as the application's `args`, its replicas sized from the spec's resources.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sovereign.domain.nations import model_application_name, served_model_name
from sovereign.serving_contract import MODEL_SERVER_IMPORT_PATH, ModelServerConfig
from sovereign.specs.model_deployment import ModelDeploymentSpec
from sovereign_operator.builders.serve_replicas import (
    replica_runtime_env,
    scaled_memory_bytes,
    scaled_num_cpus,
)

MODEL_SERVER_DEPLOYMENT = "ModelServer"
# Requests one model replica takes at once. Both engines serve many together (vLLM batches them; the
# transformers engine runs each in its own thread), and a replica at Ray Serve's default of 5 refused its
# gateways' handles, whose routers then backed off and fed it far below what it answers: under load the
# queue never drained (`make soak`, RELIABILITY.md "Soak").
MODEL_MAX_ONGOING_REQUESTS = 32
# Requests each caller (a gateway replica's handle) queues for the model beyond those: past it, Ray Serve
# refuses at once (BackPressureError) and the gateway answers 503 `model_busy` with Retry-After: a bounded
# wait instead of one that grows with the load.
MODEL_MAX_QUEUED_REQUESTS = 256


def build_model_application(
    nation: str,
    spec: ModelDeploymentSpec,
    *,
    cpu_scale: float = 1.0,
    memory_scale: float = 1.0,
    telemetry_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One ModelDeployment: no HTTP route (the gateway calls it by handle), its spec as the app's `args`.

    `replicas: 0` has no application at all (Ray Serve wants at least one replica); the nation's builder
    leaves such a model out, and the gateway still lists it (and answers that it is not being served).
    """
    if spec.replicas == 0:
        raise ValueError(f"{spec.model} has replicas: 0, so no application")
    args = ModelServerConfig(
        name=served_model_name(nation, spec.model),
        nation=nation,
        source=spec.source,
        sha256=dict(sorted(spec.sha256.items())),
        task=spec.task,
        engine=spec.engine,
        engine_args=spec.engine_args,
        max_tokens=spec.max_tokens,
    )
    deployment: dict[str, Any] = {
        "name": MODEL_SERVER_DEPLOYMENT,
        "max_ongoing_requests": MODEL_MAX_ONGOING_REQUESTS,
        "max_queued_requests": MODEL_MAX_QUEUED_REQUESTS,
    }
    if spec.autoscaling is not None:
        deployment["autoscaling_config"] = {
            "min_replicas": spec.autoscaling.min_replicas,
            "max_replicas": spec.autoscaling.max_replicas,
            "target_ongoing_requests": spec.autoscaling.target_ongoing_requests,
        }
    else:
        deployment["num_replicas"] = 1 if spec.replicas is None else spec.replicas
    deployment["ray_actor_options"] = {
        "num_cpus": scaled_num_cpus(spec.resources.cpu, cpu_scale),
        "memory": scaled_memory_bytes(spec.resources.memory, memory_scale),
        "num_gpus": spec.resources.gpus,
    }
    return {
        "name": model_application_name(nation, spec.model),
        "route_prefix": None,
        "import_path": MODEL_SERVER_IMPORT_PATH,
        "args": args.model_dump(mode="json", by_alias=True),
        "runtime_env": replica_runtime_env(telemetry_env),
        "deployments": [deployment],
    }
