"""One level-based serving pass: every Ready nation's gateway and models, deployed where the runtime says.

Reads every Tenant, every ModelDeployment and the published policy bundle; builds each nation's Serve
applications (builders/serve_config.py, pure); then
- `local-ray`: PUTs one ServeDeploySchema holding every nation's applications to the local Ray dashboard
  (the PUT is declarative for the whole Ray cluster), only when the body changed since the last PUT;
- `kuberay`: applies one RayService per nation in its namespace (builders/rayservice.py);
and finally writes each ModelDeployment's status from its Ray application's state. A model of a nation
whose Tenant is not Ready, or whose spec no longer parses, is not served, and its status says why.

Never a configuration a gateway would refuse: of two Ready Tenants naming one token issuer (a gateway refuses
such a config as a whole, and then serves nothing), only the older is in any gateway's configuration
(`tenants_sharing_an_issuer`); the other's nation is not served until its issuer is its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes.client import ApiClient
from kubernetes.dynamic import DynamicClient
from pydantic import ValidationError
from sovereign_serving.config import (
    AuditSink,
    RetrieverDataset,
    VaultSink,
    gateway_application_name,
    model_application_name,
    retriever_application_name,
)

from sovereign.clients import kubernetes as kube
from sovereign.clients import ray
from sovereign.domain.nations import tenant_namespace
from sovereign.policy.bundle import BUNDLE_CONFIGMAP, PolicyBundle
from sovereign.specs.model_deployment import ModelDeploymentSpec
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.builders.dataset import build_vault_sink_for_nation, job_target, token_file_for_nation
from sovereign_operator.builders.model_status import Placement, model_deployment_status
from sovereign_operator.builders.rayservice import (
    AUDIT_DIR,
    DATA_RAY_RESOURCE,
    GpuPlacement,
    build_data_volume_claim_for_nation,
    build_rayservice_for_nation,
    rayservice_name,
)
from sovereign_operator.builders.serve_config import (
    build_audit_sink_for_nation,
    build_retriever_application,
    build_serve_applications_for_nation,
    build_serve_deploy_config,
    retriever_datasets_for_nation,
)
from sovereign_operator.config import OperatorConfig
from sovereign_operator.constants import GROUP, SERVICE_ACCOUNT_TOKEN_FILE, VERSION
from sovereign_operator.reconcile.conditions import status_changes
from sovereign_operator.reconcile.vault_access import vault_ca_for_tenant
from sovereign_operator.tenant_validation import tenants_sharing_an_issuer

log = logging.getLogger(__name__)
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass
class ServingState:
    dynamic: DynamicClient
    config: OperatorConfig
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_body_digest: str | None = None  # local-ray: what was last PUT (a restart PUTs again: harmless)
    left_out: dict[str, str] = field(default_factory=dict)  # nation → why it is not served (logged once)


@dataclass(frozen=True)
class ServingPass:
    nations: list[str]
    applications: int
    deployed: bool  # whether this pass sent a new config


def _tenant_ready(tenant: dict[str, Any]) -> bool:
    conditions = (tenant.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _nation_of_namespace(tenants: list[dict[str, Any]]) -> dict[str, str]:
    return {
        tenant_namespace(nation): nation
        for nation in ((t.get("spec") or {}).get("nation") for t in tenants)
        if isinstance(nation, str)
    }


def run_serving_pass(state: ServingState) -> ServingPass:
    with state.lock:
        dynamic, config = state.dynamic, state.config
        tenants = kube.list_objects(dynamic, API_VERSION, "Tenant") or []
        models = kube.list_objects(dynamic, API_VERSION, "ModelDeployment") or []
        bundle_data = _bundle_data(dynamic, config.platform_namespace)
        ready = {t["spec"]["nation"]: t for t in tenants if _tenant_ready(t) and t["spec"].get("nation")}
        left_out = _issuer_conflicts(state, ready)
        ready = {nation: tenant for nation, tenant in ready.items() if nation not in left_out}
        by_namespace = _nation_of_namespace(tenants)

        placements: dict[tuple[str, str], Placement] = {}
        specs: dict[str, list[ModelDeploymentSpec]] = defaultdict(list)
        for body in models:
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
            if any(s.model == spec.model for s in specs[nation]):
                message = f"{nation} already serves {spec.model!r}"
                placements[key] = Placement(False, "DuplicateModel", message)
                continue
            specs[nation].append(spec)
            placements[key] = Placement(True, application=model_application_name(nation, spec.model))

        all_models = {nation: specs.get(nation, []) for nation in sorted(ready)}
        applications: list[dict[str, Any]] = []
        federation_urls = _federation_urls(sorted(ready)) if config.runtime == "kuberay" else None
        datasets: list[dict[str, Any]] = []
        if config.runtime != "none":
            datasets = kube.list_objects(dynamic, API_VERSION, "DataSet") or []
        all_datasets = _served_datasets(state, ready, models, datasets)
        for nation in sorted(ready):
            applications += build_serve_applications_for_nation(
                nation,
                TenantSpec.model_validate(ready[nation]["spec"]),
                all_models[nation],
                list(ready.values()),
                all_models,
                bundle_data,
                cpu_scale=config.serving_cpu_scale,
                memory_scale=config.serving_memory_scale,
                federation_urls=federation_urls,
                audit=_audit_sink(config, ready[nation], state.dynamic.client),
                federation=_federation_signer(config, ready[nation], state.dynamic.client, federation_urls),
                telemetry_env=config.telemetry_env,
                all_datasets=all_datasets,
            )
        applications += _retriever_applications(state, ready, all_datasets, bundle_data)
        deployed, states = _deploy(state, applications, ready, specs, datasets)
        for body in models:
            key = (body["metadata"]["namespace"], body["metadata"]["name"])
            placement = placements.get(key)
            if placement is None:
                continue
            if placement.served:
                nation = by_namespace[key[0]]
                app_status, app_message = states.get(placement.application, ("NOT_STARTED", ""))
                placement = Placement(
                    True,
                    application=placement.application,
                    app_status=app_status,
                    app_message=app_message,
                    endpoint=_endpoint(config, nation),
                )
            _write_status(dynamic, body, placement)
        return ServingPass(sorted(ready), len(applications), deployed)


def _issuer_conflicts(state: ServingState, ready: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The Ready nations left out because an older Tenant names their token issuer, with why; logged when
    the set changes (names only)."""
    losers = tenants_sharing_an_issuer(ready.values())
    left_out = {
        nation: f"Tenant {tenant['metadata']['name']} names the token issuer of the older Tenant "
        f"{losers[tenant['metadata']['name']][0]}: {nation} is not served until its issuer is its own"
        for nation, tenant in ready.items()
        if tenant["metadata"]["name"] in losers
    }
    if left_out != state.left_out:
        for message in left_out.values():
            log.warning(message)
        state.left_out = left_out
    return left_out


# -- each nation's retriever (issue 8) --------------------------------------------------------------------


def _served_datasets(
    state: ServingState,
    ready: dict[str, dict[str, Any]],
    models: list[dict[str, Any]],
    datasets: list[dict[str, Any]],
) -> dict[str, list[RetrieverDataset]]:
    """Each Ready nation's DataSets (of `datasets`, every DataSet object) that have an index and a runtime
    to serve them, by nation: what its retriever serves and what every gateway decides on."""
    config = state.config
    if config.runtime == "none":
        return {}
    served: dict[str, list[RetrieverDataset]] = {}
    for nation in sorted(ready):
        namespace = tenant_namespace(nation)
        own = [d for d in datasets if d["metadata"].get("namespace") == namespace]
        if not own or isinstance(job_target(config, nation), str):
            continue
        embedding_models = {
            m["metadata"]["name"]: str((m.get("spec") or {}).get("model"))
            for m in models
            if m["metadata"].get("namespace") == namespace
        }
        found = retriever_datasets_for_nation(nation, own, embedding_models)
        if found:
            served[nation] = found
    return served


def _retriever_applications(
    state: ServingState,
    ready: dict[str, dict[str, Any]],
    all_datasets: dict[str, list[RetrieverDataset]],
    bundle_data: dict[str, str],
) -> list[dict[str, Any]]:
    """One retriever per Ready nation with a served DataSet (the same store root, Vault login and placement
    as the nation's ingest jobs)."""
    config = state.config
    applications = []
    for nation, served in sorted(all_datasets.items()):
        target = job_target(config, nation)
        if isinstance(target, str):
            continue
        tenant_spec = TenantSpec.model_validate(ready[nation]["spec"])
        vault = build_vault_sink_for_nation(
            tenant_spec,
            platform_vault_addr=config.vault_addr,
            token_file=target.token_file,
            vault_ca_cert=vault_ca_for_tenant(config, state.dynamic.client, tenant_spec),
        )
        applications.append(
            build_retriever_application(
                nation,
                served,
                bundle_data,
                store_root=target.store_root,
                vault=vault,
                telemetry_env=config.telemetry_env,
                ray_resources=target.ray_resources,
            )
        )
    return applications


# -- where each gateway writes its decision records ------------------------------------------------------

# local-ray: the nation's Ray processes read its `model-serving` ServiceAccount token from
# `<token dir>/<nation>/token`, which is kept outside the operator, as a kubelet keeps a pod's projected token
# (k8s docs: /docs/concepts/storage/projected-volumes/#serviceaccounttoken); the operator never requests a
# nation's token, it only names the file. Until the file is there, a reader fails closed (no Vault login).


def _audit_sink(config: OperatorConfig, tenant: dict[str, Any], api: ApiClient) -> AuditSink | None:
    """The gateway's audit sink; None (audit off) without an audit dir, or on local-ray without a token
    dir, or with no runtime."""
    if config.audit_dir is None or config.runtime == "none":
        return None
    spec, uid = TenantSpec.model_validate(tenant["spec"]), tenant.get("metadata", {}).get("uid")
    ca_cert = vault_ca_for_tenant(config, api, spec)
    if config.runtime == "local-ray":
        if config.service_account_token_dir is None:
            return None
        token_file = str(_token_file(config.service_account_token_dir, spec.nation))
        return build_audit_sink_for_nation(
            spec,
            directory=config.audit_dir,
            platform_vault_addr=config.vault_addr,
            token_file=token_file,
            tenant_uid=uid,
            vault_ca_cert=ca_cert,
        )
    # kuberay: the pods run as the nation's ServiceAccount; its data volume is mounted on the head only.
    return build_audit_sink_for_nation(
        spec,
        directory=AUDIT_DIR,
        platform_vault_addr=config.vault_addr,
        token_file=SERVICE_ACCOUNT_TOKEN_FILE,
        tenant_uid=uid,
        ray_resource=DATA_RAY_RESOURCE,
        vault_ca_cert=ca_cert,
    )


def _federation_signer(
    config: OperatorConfig, tenant: dict[str, Any], api: ApiClient, federation_urls: dict[str, str] | None
) -> VaultSink | None:
    """How the nation's gateway signs its federation assertions (kuberay only: its pods' ServiceAccount token,
    the nation's Vault role); None where nations share one Ray cluster and nothing crosses gateways."""
    if federation_urls is None:
        return None
    spec = TenantSpec.model_validate(tenant["spec"])
    return build_vault_sink_for_nation(
        spec,
        platform_vault_addr=config.vault_addr,
        token_file=SERVICE_ACCOUNT_TOKEN_FILE,
        vault_ca_cert=vault_ca_for_tenant(config, api, spec),
    )


def _token_file(directory: str, nation: str) -> Path:
    return Path(token_file_for_nation(directory, nation))


def _bundle_data(dynamic: DynamicClient, namespace: str) -> dict[str, str]:
    live = kube.read_object(dynamic, "v1", "ConfigMap", BUNDLE_CONFIGMAP, namespace)
    if live is not None and live.get("data"):
        return dict(live["data"])
    # Not yet published (the policy handler publishes at start): the base bundle, never an empty one.
    return PolicyBundle.load().to_configmap_data()


def _deploy(
    state: ServingState,
    applications: list[dict[str, Any]],
    ready: dict[str, dict[str, Any]],
    specs: dict[str, list[ModelDeploymentSpec]],
    datasets: list[dict[str, Any]],
) -> tuple[bool, dict[str, tuple[str, str]]]:
    config = state.config
    if config.runtime == "none":
        return False, {}
    if config.runtime == "local-ray":
        assert config.ray_dashboard_url is not None
        body = build_serve_deploy_config(applications, config.serve_http_port)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        deployed = False
        if digest != state.last_body_digest:
            ray.put_serve_applications(config.ray_dashboard_url, body, token=config.ray_token)
            state.last_body_digest = digest
            deployed = True
            log.info(f"Serve config with {len(applications)} applications put to the local Ray cluster")
        status = ray.get_serve_status(config.ray_dashboard_url, token=config.ray_token)
        return deployed, _states_with_causes(status)
    return _deploy_rayservices(state, applications, ready, specs, datasets)


def _deploy_rayservices(
    state: ServingState,
    applications: list[dict[str, Any]],
    ready: dict[str, dict[str, Any]],
    specs: dict[str, list[ModelDeploymentSpec]],
    datasets: list[dict[str, Any]],
) -> tuple[bool, dict[str, tuple[str, str]]]:
    """One RayService per Ready nation, in its namespace; KubeRay reports each application's state in the
    RayService's `status.activeServiceStatus.applicationStatuses` (KubeRay docs: "RayService").

    The nation's data volume (its audit log and dataset stores) is created and mounted on the head when
    audit is on or the nation has a DataSet (`datasets`: every DataSet object), before its first job."""
    deployed = False
    states: dict[str, tuple[str, str]] = {}
    with_datasets = {d["metadata"].get("namespace") for d in datasets}
    for nation, tenant in sorted(ready.items()):
        own = [a for a in applications if a["name"] in _application_names(nation, specs.get(nation, []))]
        data_volume = state.config.audit_dir is not None or tenant_namespace(nation) in with_datasets
        if data_volume:
            _ensure_data_claim(state.dynamic, nation)
        desired = build_rayservice_for_nation(
            TenantSpec.model_validate(tenant["spec"]),
            specs.get(nation, []),
            own,
            state.config.serving_image,
            telemetry_env=state.config.telemetry_env,
            data_volume=data_volume,
            gpu_placement=GpuPlacement(
                state.config.serving_gpu_node_selector, state.config.serving_gpu_tolerations
            ),
        )
        metadata = desired["metadata"]
        live = kube.read_object(
            state.dynamic, desired["apiVersion"], desired["kind"], metadata["name"], metadata["namespace"]
        )
        if live is None:
            live = kube.create_object(state.dynamic, desired)
            deployed = True
        elif live.get("spec") != desired["spec"]:
            live = kube.replace_object(state.dynamic, desired)  # whole spec: nothing stale stays
            deployed = True
        active_service = (live.get("status") or {}).get("activeServiceStatus") or {}
        active = active_service.get("applicationStatuses") or {}
        for name, app in active.items():
            causes = [str(d.get("message")) for d in (app.get("serveDeploymentStatuses") or {}).values()]
            message = "\n".join([str(app.get("message") or ""), *[c for c in causes if c and c != "None"]])
            states[name] = (str(app.get("status") or ""), message.strip())
    return deployed, states


def _ensure_data_claim(dynamic: DynamicClient, nation: str) -> None:
    """The nation's data volume; created once and never replaced or deleted by the operator (it goes with
    the namespace at offboarding, after the key that could read it was shredded)."""
    claim = build_data_volume_claim_for_nation(nation)
    metadata = claim["metadata"]
    if kube.read_object(dynamic, "v1", claim["kind"], metadata["name"], metadata["namespace"]) is None:
        kube.create_object(dynamic, claim)


def _application_names(nation: str, specs: list[ModelDeploymentSpec]) -> set[str]:
    return {
        gateway_application_name(nation),
        retriever_application_name(nation),
        *(model_application_name(nation, s.model) for s in specs),
    }


def _states_with_causes(status_json: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Each application's (status, message); a failed one's message gains its deployments' messages, where
    Ray puts the cause (e.g. which model file failed its sha256), not in the application's own message."""
    states = ray.application_states(status_json)
    applications = status_json.get("applications") or {}
    for name, (status, message) in states.items():
        if status in ("DEPLOY_FAILED", "UNHEALTHY"):
            deployments = (applications.get(name) or {}).get("deployments") or {}
            causes = [str(d.get("message")) for d in deployments.values() if d.get("message")]
            states[name] = (status, "\n".join([message, *causes]).strip())
    return states


def _serve_base(nation: str) -> str:
    """A nation's gateway inside the cluster: KubeRay's Serve Service, `<RayService name>-serve-svc`, port
    8000, at the gateway's route prefix."""
    return f"http://{rayservice_name(nation)}-serve-svc.{tenant_namespace(nation)}.svc:8000/{nation.lower()}"


def _federation_urls(nations: list[str]) -> dict[str, str]:
    """kuberay: each nation's models run in its own Ray cluster, so another nation's gateway reaches them
    through their owner's gateway (its `/federation/v1/...` routes), which decides again."""
    return {nation: _serve_base(nation) for nation in nations}


def _endpoint(config: OperatorConfig, nation: str) -> str:
    if config.gateway_url:
        return f"{config.gateway_url.rstrip('/')}/{nation.lower()}/v1"
    if config.runtime == "kuberay":
        return f"{_serve_base(nation)}/v1"
    return f"/{nation.lower()}/v1"


def _write_status(dynamic: DynamicClient, body: dict[str, Any], placement: Placement) -> None:
    live = dict(body.get("status") or {})
    wanted = model_deployment_status(placement, live, body["metadata"].get("generation"))
    changes = status_changes(live, wanted)
    if changes:
        metadata = body["metadata"]
        kube.merge_patch_status(
            dynamic, API_VERSION, "ModelDeployment", metadata["name"], metadata["namespace"], changes
        )
