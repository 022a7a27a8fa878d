"""A nation's Ray Serve applications in Ray Serve's declarative schema (`ServeDeploySchema`), from specs.

Per nation: the gateway application (HTTP ingress at `/<nation lowercase>`) and one application per
ModelDeployment (no route prefix: the gateway calls it through a deployment handle). Ray Serve compares each
application's config with the running one and only redeploys the applications whose config changed, and a
changed `user_config` only calls the deployment's `reconfigure` (Ray Serve docs: "Updating Applications
In-Place", "Configure Ray Serve deployments"). So the builders are deterministic: the same specs give the same
dicts byte for byte, a model added to one nation adds one application and changes only the gateways'
`user_config` (their list of models), and the other applications stay identical.

Each application has its builder (`gateway_application`, `model_application`, `retriever_application`);
`serve_replicas` sizes their replicas (`cpu_scale`, `memory_scale`) and sets their environment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sovereign.serving_contract import AuditSink, RetrieverDataset, VaultSink
from sovereign.specs.model_deployment import ModelDeploymentSpec
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.builders.gateway_application import build_gateway_application
from sovereign_operator.builders.model_application import build_model_application


def build_serve_applications_for_nation(
    nation: str,
    tenant_spec: TenantSpec,
    model_deployments: Sequence[ModelDeploymentSpec],
    all_tenants: Sequence[Mapping[str, Any]],
    all_models: Mapping[str, Sequence[ModelDeploymentSpec]],
    bundle_data: Mapping[str, str],
    *,
    cpu_scale: float = 1.0,
    memory_scale: float = 1.0,
    gateway_replicas: int = 1,
    federation_urls: Mapping[str, str] | None = None,
    telemetry_env: Mapping[str, str] | None = None,
    audit: AuditSink | None = None,
    all_datasets: Mapping[str, Sequence[RetrieverDataset]] | None = None,
    federation: VaultSink | None = None,
) -> list[dict[str, Any]]:
    """The nation's gateway application, then one application per ModelDeployment (sorted by model name;
    none for a ModelDeployment with `replicas: 0`, which is stopped).

    `model_deployments`: the nation's own (they run here); `all_tenants`: every Tenant object as the API
    returns it; `all_models`: every nation's ModelDeployments by nation (the gateway routes to any of them,
    policy decides per request); `bundle_data`: the published policy bundle ConfigMap's data;
    `federation_urls`, `audit`, `federation`: see `build_gateway_application`; `telemetry_env`: the
    operator's OTEL_* variables (`OperatorConfig.telemetry_env`), set in every application's runtime_env.
    """
    if tenant_spec.nation != nation:
        raise ValueError(f"the Tenant is {tenant_spec.nation}'s, not {nation}'s")
    if not 0 < cpu_scale <= 1 or not 0 < memory_scale <= 1:
        raise ValueError("cpu_scale and memory_scale must be in (0, 1]")
    models = sorted((spec for spec in model_deployments if spec.replicas != 0), key=lambda spec: spec.model)
    names = [spec.model for spec in models]
    if len(set(names)) != len(names):
        raise ValueError(f"{nation} serves a model name twice: {names}")
    gateway = build_gateway_application(
        nation,
        all_tenants,
        all_models,
        bundle_data,
        replicas=gateway_replicas,
        federation_urls=federation_urls,
        telemetry_env=telemetry_env,
        audit=audit,
        all_datasets=all_datasets,
        federation=federation,
    )
    return [
        gateway,
        *(
            build_model_application(
                nation, spec, cpu_scale=cpu_scale, memory_scale=memory_scale, telemetry_env=telemetry_env
            )
            for spec in models
        ),
    ]


def build_serve_deploy_config(
    applications: Sequence[Mapping[str, Any]], http_port: int | None = None, *, http_host: str = "127.0.0.1"
) -> dict[str, Any]:
    """The body of `PUT /api/serve/applications/` (and a RayService's `serveConfigV2`).

    The PUT is declarative for the whole Ray cluster: applications missing from it are deleted, so on a
    shared local Ray the body holds every nation's applications. `http_options` only when a port is given
    (local Ray); KubeRay sets the proxy's host and port itself.
    """
    names = [application["name"] for application in applications]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"application names must be unique across the Ray cluster: {duplicates}")
    body: dict[str, Any] = {}
    if http_port is not None:
        body["http_options"] = {"host": http_host, "port": http_port}
    body["applications"] = [dict(application) for application in applications]
    return body
