"""What the serving pass deploys, as data (pure): a snapshot of the cluster in, a `ServingPlan` out.

The plan says which nations are served (Ready Tenants, less those naming an older Tenant's token issuer),
each one's Ray Serve applications (its gateway with every model, DataSet and Tenant in its `user_config`,
one application per ModelDeployment, its retriever), and for every ModelDeployment whether it is served
(its application) or why not. Where things run is the runtime's answer (`RuntimeLayout`: the federation
between nations' clusters, where the audit writer writes, where a nation's jobs and retriever run, the
in-cluster endpoint); the runtime then applies the plan (sovereign_operator/runtimes/).

Never a configuration a gateway would refuse: of two Ready Tenants naming one token issuer (a gateway refuses
such a config as a whole, and then serves nothing), only the older is in any gateway's configuration
(`tenants_sharing_an_issuer`); the other's nation is not served until its issuer is its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from pydantic import ValidationError

from sovereign.domain.nations import (
    gateway_application_name,
    gateway_route_prefix,
    model_application_name,
    tenant_namespace,
)
from sovereign.serving_contract import AuditSink, RetrieverDataset, VaultSink
from sovereign.specs.model_deployment import ModelDeploymentSpec
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.builders.conditions import status_is_ready
from sovereign_operator.builders.dataset import JobTarget, build_vault_sink_for_nation
from sovereign_operator.builders.gateway_application import build_audit_sink_for_nation
from sovereign_operator.builders.model_status import Placement
from sovereign_operator.builders.retriever_application import (
    build_retriever_application,
    retriever_datasets_for_nation,
)
from sovereign_operator.builders.serve_config import build_serve_applications_for_nation
from sovereign_operator.config import OperatorConfig
from sovereign_operator.tenant_validation import tenants_sharing_an_issuer

ModelKey = tuple[str, str]  # a ModelDeployment's (namespace, name)


@dataclass(frozen=True)
class Federation:
    """Nations in separate Ray clusters: each gateway reaches another nation's models through their owner's
    gateway (`urls`: nation → its in-cluster gateway base) and signs its assertions in Vault, logged in
    with the ServiceAccount token in `token_file`."""

    urls: Mapping[str, str]
    token_file: str


@dataclass(frozen=True)
class AuditPlacement:
    """Where a nation's gateway side writes its decision records: `directory`, logged in to Vault with the
    token in `token_file`; `ray_resource`: the custom Ray resource that places the writer where it is."""

    directory: str
    token_file: str
    ray_resource: str | None = None


class RuntimeLayout(Protocol):
    """What the plan asks of the runtime: where things run. Pure answers from the operator's config."""

    def federation(self, nations: Sequence[str]) -> Federation | None: ...

    def audit_placement(self, nation: str) -> AuditPlacement | None: ...

    def job_target(self, nation: str) -> JobTarget | str: ...

    def endpoint(self, nation: str) -> str: ...


@dataclass(frozen=True)
class ServingSnapshot:
    """What one pass reads: every Tenant, ModelDeployment and DataSet object as the API returns them, the
    published bundle's data, and each nation's Vault CA (PEM or None; a mapping read only for the nations
    the plan asks about)."""

    tenants: Sequence[Mapping[str, Any]]
    models: Sequence[Mapping[str, Any]]
    datasets: Sequence[Mapping[str, Any]]
    bundle_data: Mapping[str, str]
    vault_cas: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class NationPlan:
    """One served nation: its Tenant, its own ModelDeployments (`models`, also those with `replicas: 0`),
    its gateway and model applications, its retriever (None without a served DataSet) and whether any
    DataSet object is in its namespace."""

    nation: str
    tenant: TenantSpec
    models: tuple[ModelDeploymentSpec, ...]
    applications: tuple[dict[str, Any], ...]
    retriever: dict[str, Any] | None = None
    has_datasets: bool = False
    datasets: tuple[str, ...] = ()  # the names of the DataSets its retriever serves

    @property
    def gateway(self) -> str:
        return gateway_application_name(self.nation)

    @property
    def own_applications(self) -> list[dict[str, Any]]:
        """Every application of the nation: gateway, models, retriever."""
        return [*self.applications, *([self.retriever] if self.retriever is not None else [])]


@dataclass(frozen=True)
class ServingPlan:
    nations: tuple[NationPlan, ...]  # sorted by nation
    placements: Mapping[ModelKey, Placement]  # every ModelDeployment not being deleted
    left_out: Mapping[str, str]  # Ready nations not served (issuer conflict) → why

    @property
    def served_nations(self) -> list[str]:
        return [plan.nation for plan in self.nations]

    @property
    def applications(self) -> list[dict[str, Any]]:
        """Every application on a shared Ray cluster: each nation's gateway and models, then the
        retrievers (the order of the Serve config's body)."""
        retrievers = [plan.retriever for plan in self.nations if plan.retriever is not None]
        return [*(app for plan in self.nations for app in plan.applications), *retrievers]

    def routed(self, applied_states: Mapping[str, tuple[str, str]], settled: bool) -> bool:
        """Whether every gateway serves the plan: the states describe it (`settled`) and each gateway's
        application is RUNNING. Every gateway may route to any nation's model or DataSet (federation)."""
        gateways = [plan.gateway for plan in self.nations]
        return settled and all(applied_states.get(g, ("", ""))[0] == "RUNNING" for g in gateways)

    def publishes(self, nation: str, dataset: str, applied_states: Mapping[str, tuple[str, str]]) -> bool:
        """Whether the nation's retriever serves `dataset` (call only where `routed`): it is in the plan
        and the retriever's application is RUNNING."""
        found = next((plan for plan in self.nations if plan.nation == nation), None)
        if found is None or found.retriever is None or dataset not in found.datasets:
            return False
        return applied_states.get(found.retriever["name"], ("", ""))[0] == "RUNNING"

    def placements_with_states(self, states: Mapping[str, tuple[str, str]]) -> dict[ModelKey, Placement]:
        """Each placement, a served one with its application's (status, message) as the runtime reports it
        (NOT_STARTED while the runtime reports none)."""
        placements = dict(self.placements)
        for key, placement in placements.items():
            if placement.served:
                status, message = states.get(placement.application, ("NOT_STARTED", ""))
                placements[key] = replace(placement, app_status=status, app_message=message)
        return placements


def tenant_is_ready(tenant: Mapping[str, Any]) -> bool:
    return status_is_ready(tenant.get("status") or {})


def ready_tenants(tenants: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Every Ready Tenant, by nation."""
    return {t["spec"]["nation"]: t for t in tenants if tenant_is_ready(t) and t["spec"].get("nation")}


def nations_left_out(ready: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The Ready nations left out because an older Tenant names their token issuer, with why."""
    losers = tenants_sharing_an_issuer(ready.values())
    return {
        nation: f"Tenant {tenant['metadata']['name']} names the token issuer of the older Tenant "
        f"{losers[tenant['metadata']['name']][0]}: {nation} is not served until its issuer is its own"
        for nation, tenant in ready.items()
        if tenant["metadata"]["name"] in losers
    }


def build_serving_plan(
    snapshot: ServingSnapshot, runtime: RuntimeLayout, config: OperatorConfig
) -> ServingPlan:
    """The plan for `snapshot` on `runtime`; `config`: the replicas' CPU and memory scale, the OTEL_*
    variables, the platform's Vault and the public gateway URL."""
    ready = ready_tenants(snapshot.tenants)
    left_out = nations_left_out(ready)
    ready = {nation: tenant for nation, tenant in ready.items() if nation not in left_out}
    nations = sorted(ready)
    placements, specs = _placements(snapshot, ready, left_out, runtime, config)
    all_models = {nation: specs.get(nation, []) for nation in nations}
    federation = runtime.federation(nations)
    federation_urls = federation.urls if federation is not None else None
    all_datasets = _served_datasets(snapshot, nations, runtime)
    with_datasets = {d["metadata"].get("namespace") for d in snapshot.datasets}
    plans = []
    for nation in nations:
        tenant_spec = TenantSpec.model_validate(ready[nation]["spec"])
        audit, federation_signer = _gateway_vault_sinks(snapshot, runtime, federation, ready[nation], config)
        applications = build_serve_applications_for_nation(
            nation,
            tenant_spec,
            all_models[nation],
            list(ready.values()),
            all_models,
            snapshot.bundle_data,
            cpu_scale=config.serving_cpu_scale,
            memory_scale=config.serving_memory_scale,
            federation_urls=federation_urls,
            audit=audit,
            federation=federation_signer,
            telemetry_env=config.telemetry_env,
            all_datasets=all_datasets,
        )
        plans.append(
            NationPlan(
                nation,
                tenant_spec,
                tuple(all_models[nation]),
                tuple(applications),
                retriever=_retriever(snapshot, runtime, tenant_spec, all_datasets.get(nation), config),
                has_datasets=tenant_namespace(nation) in with_datasets,
                datasets=tuple(dataset.name for dataset in all_datasets.get(nation, ())),
            )
        )
    return ServingPlan(tuple(plans), placements, left_out)


def endpoint_for_nation(runtime: RuntimeLayout, config: OperatorConfig, nation: str) -> str:
    """Where clients reach the nation's models: under the public gateway URL, else where the runtime says."""
    if config.gateway_url:
        return f"{config.gateway_url.rstrip('/')}{gateway_route_prefix(nation)}/v1"
    return runtime.endpoint(nation)


def audit_sink_for_nation(
    runtime: RuntimeLayout, config: OperatorConfig, tenant: Mapping[str, Any], vault_ca: str | None
) -> AuditSink | None:
    """The AuditSink of the nation's gateway on `runtime` (`vault_ca`: the PEM its Vault is verified with);
    None: audit is off there."""
    spec = TenantSpec.model_validate(tenant["spec"])
    placement = runtime.audit_placement(spec.nation)
    if placement is None:
        return None
    return build_audit_sink_for_nation(
        spec,
        directory=placement.directory,
        platform_vault_addr=config.vault_addr,
        token_file=placement.token_file,
        tenant_uid=(tenant.get("metadata") or {}).get("uid"),
        ray_resource=placement.ray_resource,
        vault_ca_cert=vault_ca,
    )


def _gateway_vault_sinks(
    snapshot: ServingSnapshot,
    runtime: RuntimeLayout,
    federation: Federation | None,
    tenant: Mapping[str, Any],
    config: OperatorConfig,
) -> tuple[AuditSink | None, VaultSink | None]:
    """The nation's gateway's two logins to its nation's Vault: where it writes its decision records (None:
    audit is off on the runtime) and how it signs its federation assertions (its Ray processes'
    ServiceAccount token; None where nations share one Ray cluster and nothing crosses gateways). The
    nation's Vault CA is read only when one of them is there."""
    spec = TenantSpec.model_validate(tenant["spec"])
    audit_on = runtime.audit_placement(spec.nation) is not None
    if not audit_on and federation is None:
        return None, None
    vault_ca = snapshot.vault_cas[spec.nation]
    audit = audit_sink_for_nation(runtime, config, tenant, vault_ca) if audit_on else None
    if federation is None:
        return audit, None
    signer = build_vault_sink_for_nation(
        spec, platform_vault_addr=config.vault_addr, token_file=federation.token_file, vault_ca_cert=vault_ca
    )
    return audit, signer


def _served_datasets(
    snapshot: ServingSnapshot, nations: Sequence[str], runtime: RuntimeLayout
) -> dict[str, list[RetrieverDataset]]:
    """Each served nation's DataSets that have an index and a runtime to serve them, by nation: what its
    retriever serves and what every gateway decides on."""
    served: dict[str, list[RetrieverDataset]] = {}
    for nation in nations:
        namespace = tenant_namespace(nation)
        own = [d for d in snapshot.datasets if d["metadata"].get("namespace") == namespace]
        if not own or isinstance(runtime.job_target(nation), str):
            continue
        embedding_models = {
            m["metadata"]["name"]: str((m.get("spec") or {}).get("model"))
            for m in snapshot.models
            if m["metadata"].get("namespace") == namespace
        }
        found = retriever_datasets_for_nation(nation, own, embedding_models)
        if found:
            served[nation] = found
    return served


def _retriever(
    snapshot: ServingSnapshot,
    runtime: RuntimeLayout,
    tenant: TenantSpec,
    served: Sequence[RetrieverDataset] | None,
    config: OperatorConfig,
) -> dict[str, Any] | None:
    """The nation's retriever when it has a served DataSet: the same store root, Vault login and placement
    as its ingest jobs."""
    target = runtime.job_target(tenant.nation)
    if not served or isinstance(target, str):
        return None
    vault = build_vault_sink_for_nation(
        tenant,
        platform_vault_addr=config.vault_addr,
        token_file=target.token_file,
        vault_ca_cert=snapshot.vault_cas[tenant.nation],
    )
    return build_retriever_application(
        tenant.nation,
        served,
        snapshot.bundle_data,
        store_root=target.store_root,
        vault=vault,
        telemetry_env=config.telemetry_env,
        ray_resources=target.ray_resources,
    )


def _placements(
    snapshot: ServingSnapshot,
    ready: Mapping[str, Mapping[str, Any]],
    left_out: Mapping[str, str],
    runtime: RuntimeLayout,
    config: OperatorConfig,
) -> tuple[dict[ModelKey, Placement], dict[str, list[ModelDeploymentSpec]]]:
    """Each ModelDeployment's placement (served, or why not) and each nation's served specs."""
    by_namespace = {
        tenant_namespace(nation): nation
        for nation in ((t.get("spec") or {}).get("nation") for t in snapshot.tenants)
        if isinstance(nation, str)
    }
    placements: dict[ModelKey, Placement] = {}
    specs: dict[str, list[ModelDeploymentSpec]] = {}
    for body in snapshot.models:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        nation = by_namespace.get(key[0])
        if body["metadata"].get("deletionTimestamp"):
            continue
        if nation is not None and nation in left_out:
            placements[key] = Placement(False, "IssuerConflict", left_out[nation])
            continue
        if nation is None or nation not in ready:
            placements[key] = Placement(False, "TenantNotReady", f"the Tenant of {key[0]} is not Ready")
            continue
        try:
            spec = ModelDeploymentSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            placements[key] = Placement(False, "InvalidSpec", str(error.errors()[0]["msg"]))
            continue
        own = specs.setdefault(nation, [])
        if any(s.model == spec.model for s in own):
            placements[key] = Placement(False, "DuplicateModel", f"{nation} already serves {spec.model!r}")
            continue
        own.append(spec)
        placements[key] = Placement(
            True,
            application=model_application_name(nation, spec.model),
            endpoint=endpoint_for_nation(runtime, config, nation),
        )
    return placements, specs
