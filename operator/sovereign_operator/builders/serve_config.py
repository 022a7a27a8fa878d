"""A nation's Ray Serve applications in Ray Serve's declarative schema (`ServeDeploySchema`), from specs.

Per nation: the gateway application (HTTP ingress at `/<nation lowercase>`) and one application per
ModelDeployment (no route prefix: the gateway calls it through a deployment handle). Ray Serve compares each
application's config with the running one and only redeploys the applications whose config changed, and a
changed `user_config` only calls the deployment's `reconfigure` (Ray Serve docs: "Updating Applications
In-Place", "Configure Ray Serve deployments"). So the builders are deterministic: the same specs give the same
dicts byte for byte, a model added to one nation adds one application and changes only the gateways'
`user_config` (their list of models), and the other applications stay identical.

CPU (and memory) per replica: Ray schedules by logical resources, so a model asking for `cpu: "1"` needs a
whole free Ray CPU. On a cluster (KubeRay) the worker pods are sized from the same specs and `cpu_scale` stays
1. On the devstack's local Ray (2 CPUs shared by every nation) the operator passes a `cpu_scale` below 1 (e.g.
0.05: a 1-CPU model reserves 0.05 Ray CPUs) so that several nations' gateways and models fit; the scale only
changes what Ray reserves, not what a replica may use. `memory_scale` does the same for memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from sovereign.domain.nations import (
    dataset_name,
    gateway_application_name,
    gateway_route_prefix,
    model_application_name,
    retriever_application_name,
    served_model_name,
    vault_role_name,
)
from sovereign.serving_contract import (
    AIR_GAP_ENV,
    GATEWAY_IMPORT_PATH,
    MODEL_SERVER_IMPORT_PATH,
    RETRIEVER_IMPORT_PATH,
    AuditSink,
    GatewayConfig,
    GatewayDataset,
    GatewayModel,
    ModelServerConfig,
    RetrieverConfig,
    RetrieverDataset,
    VaultSink,
)
from sovereign.specs.dataset import DataSetSpec
from sovereign.specs.model_deployment import ModelDeploymentSpec
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.constants import DEFAULT_KUBERNETES_AUTH_MOUNT, DEFAULT_TRANSIT_MOUNT

GATEWAY_DEPLOYMENT = "Gateway"
MODEL_SERVER_DEPLOYMENT = "ModelServer"
# The gateway does authentication, a policy decision and a handle call per request: a tenth of a CPU
# reserved per replica (not scaled by cpu_scale: it is already small enough to fit on the devstack).
GATEWAY_NUM_CPUS = 0.1
# Smallest CPU reservation of a scaled replica: Ray rounds logical resources to 1/10000.
MIN_NUM_CPUS = 0.01


def _runtime_env(telemetry_env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The replicas' environment: the air gap, and the operator's OTEL_* variables (`telemetry_env`) so that
    every replica exports its spans where the operator does (sorted: the same env gives the same bytes).
    The air-gap variables win over a telemetry variable of the same name."""
    given = sorted((telemetry_env or {}).items())
    telemetry = {name: value for name, value in given if name.startswith("OTEL_")}
    return {"env_vars": {**telemetry, **AIR_GAP_ENV}}


def _num_cpus(quantity: str, scale: float) -> float:
    cpus = Decimal(parse_quantity(quantity)) * Decimal(str(scale))
    return max(MIN_NUM_CPUS, round(float(cpus), 4))


def _memory_bytes(quantity: str, scale: float) -> int:
    return int(Decimal(parse_quantity(quantity)) * Decimal(str(scale)))


def _tenant_for_gateway(tenant: Mapping[str, Any], federated: bool = False) -> dict[str, Any]:
    """A Tenant reduced to what the gateway reads (spec, status.identity, and with `federated` its gateway
    key set, status.federation); no resourceVersion, no churn."""
    reduced: dict[str, Any] = {"spec": dict(tenant.get("spec") or {})}
    status = tenant.get("status") or {}
    kept = ("identity", "federation") if federated else ("identity",)
    if any(status.get(name) is not None for name in kept):
        reduced["status"] = {name: status[name] for name in kept if status.get(name) is not None}
    return reduced


def _gateway_models(
    nation: str,
    all_models: Mapping[str, Sequence[ModelDeploymentSpec]],
    federation_urls: Mapping[str, str] | None,
) -> list[GatewayModel]:
    models = [
        GatewayModel(
            name=served_model_name(owner, spec.model),
            application=model_application_name(owner, spec.model),
            task=spec.task,
            max_tokens=spec.max_tokens,
            limits=spec.limits,
            markings=spec.markings.owned_by(owner),
            federation_url=_federation_url(nation, owner, federation_urls),
        )
        for owner, specs in all_models.items()
        for spec in specs
    ]
    return sorted(models, key=lambda model: model.name)


def _gateway_datasets(
    nation: str,
    all_datasets: Mapping[str, Sequence[RetrieverDataset]],
    federation_urls: Mapping[str, str] | None,
) -> list[GatewayDataset]:
    """Every served DataSet of the platform, as gateways decide on it (its retriever runs at the owner's)."""
    datasets = [
        GatewayDataset(
            name=dataset_name(owner, dataset.name),
            markings=dataset.markings,
            federation_url=_federation_url(nation, owner, federation_urls),
        )
        for owner, served in all_datasets.items()
        for dataset in served
    ]
    return sorted(datasets, key=lambda dataset: dataset.name)


def _federation_url(nation: str, owner: str, federation_urls: Mapping[str, str] | None) -> str | None:
    """Another nation's gateway base when its models run in another Ray cluster; never for own models."""
    if federation_urls is None or owner == nation:
        return None
    if owner not in federation_urls:
        raise ValueError(f"no federation URL for {owner}, whose models {nation}'s gateway lists")
    return federation_urls[owner].rstrip("/")


def _model_dict(model: GatewayModel) -> dict[str, Any]:
    """A model as the gateway's user_config holds it: `federationUrl` only when set (unchanged bytes on a
    shared Ray cluster, where there is none)."""
    dumped = model.model_dump(mode="json", by_alias=True)
    if dumped.get("federationUrl") is None:
        dumped.pop("federationUrl", None)
    return dumped


def build_gateway_application(
    nation: str,
    all_tenants: Sequence[Mapping[str, Any]],
    all_models: Mapping[str, Sequence[ModelDeploymentSpec]],
    bundle_data: Mapping[str, str],
    *,
    replicas: int = 1,
    federation_urls: Mapping[str, str] | None = None,
    telemetry_env: Mapping[str, str] | None = None,
    audit: AuditSink | None = None,
    all_datasets: Mapping[str, Sequence[RetrieverDataset]] | None = None,
    federation: VaultSink | None = None,
) -> dict[str, Any]:
    """The nation's gateway: HTTP at `/<nation lowercase>`, every model, served DataSet (`all_datasets`:
    by owner nation, as `retriever_datasets_for_nation` gives them) and Tenant in its `user_config`.

    `audit`: where the gateway records its decisions (`build_audit_sink_for_nation`); None: audit is off.

    `federation_urls` (nation → that nation's in-cluster gateway base), when each nation runs its own Ray
    cluster (kuberay): every other nation's model gets its owner's as `federationUrl`, so the gateway calls
    the owner's gateway (which decides again, with its own policy and quotas) instead of a Serve handle,
    with an assertion it signs as its nation (`federation`: how it logs in to Vault to sign,
    `build_vault_sink_for_nation`); the Tenants then carry their gateway key sets (status.federation).
    """
    if federation is not None and federation_urls is None:
        raise ValueError("a federation signer is for gateways that call other nations' gateways (kuberay)")
    tenants = sorted(
        (_tenant_for_gateway(tenant, federated=federation_urls is not None) for tenant in all_tenants),
        key=lambda tenant: str(tenant["spec"].get("nation", "")),
    )
    config = GatewayConfig(
        nation=nation,
        tenants=tenants,
        models=_gateway_models(nation, all_models, federation_urls),
        datasets=_gateway_datasets(nation, all_datasets or {}, federation_urls),
        bundle=dict(sorted(bundle_data.items())),
        audit=audit,
        federation=federation,
    )
    user_config = config.model_dump(mode="json", by_alias=True)
    if user_config.get("audit") is None:
        user_config.pop("audit", None)  # audit off: the same bytes as before audit existed
    if user_config.get("federation") is None:
        user_config.pop("federation", None)  # no federation (one Ray cluster): the same bytes as before
    user_config["models"] = [_model_dict(model) for model in config.models]
    if not config.datasets:
        user_config.pop("datasets", None)  # no datasets: the same bytes as before datasets existed
    return {
        "name": gateway_application_name(nation),
        "route_prefix": gateway_route_prefix(nation),
        "import_path": GATEWAY_IMPORT_PATH,
        "runtime_env": _runtime_env(telemetry_env),
        "deployments": [
            {
                "name": GATEWAY_DEPLOYMENT,
                "num_replicas": replicas,
                "ray_actor_options": {"num_cpus": GATEWAY_NUM_CPUS},
                "user_config": user_config,
            }
        ],
    }


def build_audit_sink_for_nation(
    tenant_spec: TenantSpec,
    *,
    directory: str,
    platform_vault_addr: str,
    token_file: str,
    tenant_uid: str | None = None,
    ray_resource: str | None = None,
    vault_ca_cert: str | None = None,
) -> AuditSink:
    """Where and as whom the nation's gateway side writes its decision records: the Vault that holds the
    nation's key (its own, spec.vault, or the platform's), logged in to with the nation's Kubernetes auth
    role and the serving ServiceAccount token in `token_file`, its certificate verified with
    `vault_ca_cert` (PEM: the platform's VAULT_CACERT or the nation's caBundle)."""
    own = tenant_spec.vault
    return AuditSink(
        directory=directory,
        vault_addr=own.address if own is not None else platform_vault_addr,
        auth_mount=own.auth_mount if own is not None else DEFAULT_KUBERNETES_AUTH_MOUNT,
        role=vault_role_name(tenant_spec.nation),
        token_file=token_file,
        transit_mount=own.transit_mount if own is not None else DEFAULT_TRANSIT_MOUNT,
        tenant_uid=tenant_uid,
        ray_resource=ray_resource,
        ca_cert=vault_ca_cert,
    )


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
    deployment: dict[str, Any] = {"name": MODEL_SERVER_DEPLOYMENT}
    if spec.autoscaling is not None:
        deployment["autoscaling_config"] = {
            "min_replicas": spec.autoscaling.min_replicas,
            "max_replicas": spec.autoscaling.max_replicas,
            "target_ongoing_requests": spec.autoscaling.target_ongoing_requests,
        }
    else:
        deployment["num_replicas"] = 1 if spec.replicas is None else spec.replicas
    deployment["ray_actor_options"] = {
        "num_cpus": _num_cpus(spec.resources.cpu, cpu_scale),
        "memory": _memory_bytes(spec.resources.memory, memory_scale),
        "num_gpus": spec.resources.gpus,
    }
    return {
        "name": model_application_name(nation, spec.model),
        "route_prefix": None,
        "import_path": MODEL_SERVER_IMPORT_PATH,
        "args": args.model_dump(mode="json", by_alias=True),
        "runtime_env": _runtime_env(telemetry_env),
        "deployments": [deployment],
    }


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


# -- the nation's retriever (issue 8) ----------------------------------------------------------------------

RETRIEVER_DEPLOYMENT = "Retriever"
# A search is a policy decision per distinct marking, an embedding call and an exact scan of the allowed
# vectors: a tenth of a CPU reserved, like the gateway.
RETRIEVER_NUM_CPUS = 0.1


def retriever_datasets_for_nation(
    nation: str, datasets: Sequence[Mapping[str, Any]], embedding_models: Mapping[str, str]
) -> list[RetrieverDataset]:
    """The nation's DataSets a retriever serves (sorted by name): those whose status says Ready (an index
    exists) and whose spec parses. `datasets`: the nation's DataSet objects as the API returns them;
    `embedding_models`: ModelDeployment name → its `spec.model`, in the nation's namespace."""
    served = []
    for body in datasets:
        conditions = (body.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            continue
        try:
            spec = DataSetSpec.model_validate(body.get("spec") or {})
        except ValueError:
            continue
        model = embedding_models.get(spec.embedding.model_deployment)
        if model is None:
            continue
        served.append(
            RetrieverDataset(
                name=body["metadata"]["name"],
                markings=spec.markings.owned_by(nation),
                embedding_application=model_application_name(nation, model),
            )
        )
    return sorted(served, key=lambda dataset: dataset.name)


def build_retriever_application(
    nation: str,
    datasets: Sequence[RetrieverDataset],
    bundle_data: Mapping[str, str],
    *,
    store_root: str,
    vault: VaultSink,
    replicas: int = 1,
    telemetry_env: Mapping[str, str] | None = None,
    ray_resources: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The nation's retriever application: no HTTP route (only its gateway and the owner's peers call it,
    through a Serve handle); its `RetrieverConfig` as `user_config`, so a new dataset or bundle reaches the
    running replicas through `reconfigure`. `ray_resources`: custom Ray resources its replicas ask for, so
    that they run where `store_root` is (kuberay: `rayservice.data_ray_resources()`, the head, where the
    nation's data volume is mounted); none on a single-host Ray."""
    config = RetrieverConfig(
        nation=nation,
        datasets=list(datasets),
        store_root=store_root,
        vault=vault,
        bundle=dict(sorted(bundle_data.items())),
    )
    actor_options: dict[str, Any] = {"num_cpus": RETRIEVER_NUM_CPUS}
    if ray_resources:
        actor_options["resources"] = dict(sorted(ray_resources.items()))
    return {
        "name": retriever_application_name(nation),
        "route_prefix": None,
        "import_path": RETRIEVER_IMPORT_PATH,
        "runtime_env": _runtime_env(telemetry_env),
        "deployments": [
            {
                "name": RETRIEVER_DEPLOYMENT,
                "num_replicas": replicas,
                "ray_actor_options": actor_options,
                "user_config": config.model_dump(mode="json", by_alias=True),
            }
        ],
    }
