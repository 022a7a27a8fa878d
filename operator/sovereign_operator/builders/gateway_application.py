"""A nation's gateway application: HTTP at `/<nation lowercase>`, with every model, served DataSet and Tenant
of the platform in its `user_config` (so a change reaches the running replicas through `reconfigure`), and
where it writes its audit records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sovereign.domain.nations import (
    dataset_name,
    gateway_application_name,
    gateway_route_prefix,
    model_application_name,
    served_model_name,
    vault_role_name,
)
from sovereign.serving_contract import (
    GATEWAY_IMPORT_PATH,
    AuditSink,
    GatewayConfig,
    GatewayDataset,
    GatewayModel,
    RetrieverDataset,
    VaultSink,
)
from sovereign.specs.model_deployment import ModelDeploymentSpec
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.builders.serve_replicas import replica_runtime_env
from sovereign_operator.builders.vault import vault_mounts_for_tenant

GATEWAY_DEPLOYMENT = "Gateway"
# The gateway does authentication, a policy decision and a handle call per request: a tenth of a CPU
# reserved per replica (not scaled by cpu_scale: it is already small enough to fit on the devstack).
GATEWAY_NUM_CPUS = 0.1
# Requests one gateway replica serves at once. Its work is awaiting (token, quota, audit, the model's handle,
# a stream's chunks), so Ray Serve's default of 5, meant for model replicas, made one nation's few slow or
# streamed requests hold every slot: under load the Serve proxy's router kept being refused and backed off,
# and one replica served 4 requests/s while it answered each in 0.1 s (`make soak`, RELIABILITY.md "Soak").
GATEWAY_MAX_ONGOING_REQUESTS = 100
# Requests the Serve proxy queues for the gateway beyond those; past it the proxy answers 503 with
# Retry-After (OpenAI-shaped by sovereign_serving.serve_proxy) instead of letting the wait grow with the load.
GATEWAY_MAX_QUEUED_REQUESTS = 1000
GATEWAY_BACKPRESSURE = {"status_code": 503, "retry_after_s": 1}


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
        "runtime_env": replica_runtime_env(telemetry_env),
        "deployments": [
            {
                "name": GATEWAY_DEPLOYMENT,
                "num_replicas": replicas,
                "max_ongoing_requests": GATEWAY_MAX_ONGOING_REQUESTS,
                "max_queued_requests": GATEWAY_MAX_QUEUED_REQUESTS,
                "backpressure_config": GATEWAY_BACKPRESSURE,
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
    own, mounts = tenant_spec.vault, vault_mounts_for_tenant(tenant_spec)
    return AuditSink(
        directory=directory,
        vault_addr=own.address if own is not None else platform_vault_addr,
        auth_mount=mounts.auth,
        role=vault_role_name(tenant_spec.nation),
        token_file=token_file,
        transit_mount=mounts.transit,
        tenant_uid=tenant_uid,
        ray_resource=ray_resource,
        ca_cert=vault_ca_cert,
    )
