"""One level-based serving pass: every Ready nation's gateway and models, deployed where the runtime says.

A pass reads a snapshot (every Tenant, ModelDeployment and DataSet, the published policy bundle), builds the
plan from it (builders/serving_plan.py, pure: which nations are served, their Serve applications, why a
model is not served), hands the plan to the runtime chosen once from the config (runtimes/: `local-ray` PUTs
one Serve config for every nation to the local Ray, `kuberay` applies one RayService per nation) and finally
writes each ModelDeployment's status from its Ray application's state. A model of a nation whose Tenant is
not Ready, or whose spec no longer parses, is not served, and its status says why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from kubernetes.client import ApiClient
from kubernetes.dynamic import DynamicClient

from sovereign.clients import kubernetes as kube
from sovereign.clients import ray
from sovereign.domain.nations import tenant_namespace
from sovereign.policy.bundle import BUNDLE_CONFIGMAP, PolicyBundle
from sovereign.serving_contract import AuditSink
from sovereign.specs.tenant import TenantSpec
from sovereign_operator import failpoints
from sovereign_operator.builders.conditions import merge_conditions, status_changes
from sovereign_operator.builders.dataset import status_published
from sovereign_operator.builders.model_status import RUNTIME_UNAVAILABLE, Placement, model_deployment_status
from sovereign_operator.builders.serving_plan import (
    ServingPlan,
    ServingSnapshot,
    audit_sink_for_nation,
    build_serving_plan,
    ready_tenants,
)
from sovereign_operator.config import OperatorConfig
from sovereign_operator.constants import GROUP, VERSION
from sovereign_operator.reconcile.vault_access import vault_ca_for_tenant
from sovereign_operator.runtimes import ServingRuntime, runtime_for

log = logging.getLogger(__name__)
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass
class ServingState:
    dynamic: DynamicClient
    config: OperatorConfig
    runtime: ServingRuntime = field(init=False)  # chosen once, from config.runtime
    lock: threading.Lock = field(default_factory=threading.Lock)
    left_out: Mapping[str, str] = field(default_factory=dict)  # nation → why it is not served (logged once)

    def __post_init__(self) -> None:
        self.runtime = runtime_for(self.config)


@dataclass(frozen=True)
class ServingPass:
    nations: list[str]
    applications: int
    deployed: bool  # whether this pass sent a new config


def run_serving_pass(state: ServingState) -> ServingPass:
    with state.lock:
        snapshot = read_snapshot(state)
        plan = build_serving_plan(snapshot, state.runtime, state.config)
        _log_left_out(state, plan.left_out)
        failpoints.reach("serving:before-apply")
        try:
            applied = state.runtime.apply(plan, state.dynamic)
        except (ray.RayUnavailable, ray.RayServeError, httpx.HTTPError) as error:
            # The runtime is down (or died mid-answer) or refused: no model is known to answer, so none may
            # stay Ready.
            unreachable = (RUNTIME_UNAVAILABLE, f"the serving runtime {state.runtime.name} failed: {error}")
            _write_statuses(state, snapshot, plan.placements_with_states(_every(plan, unreachable)))
            raise
        failpoints.reach("serving:after-apply")
        routed = plan.routed(applied.states, applied.settled)
        _write_statuses(state, snapshot, plan.placements_with_states(applied.states), routed)
        if routed:
            _publish_datasets(state.dynamic, snapshot, plan, applied.states)
        return ServingPass(plan.served_nations, len(plan.applications), applied.deployed)


def _every(plan: ServingPlan, state: tuple[str, str]) -> dict[str, tuple[str, str]]:
    return {placement.application: state for placement in plan.placements.values() if placement.served}


def _write_statuses(
    state: ServingState,
    snapshot: ServingSnapshot,
    placements: Mapping[Any, Placement],
    routed: bool = False,
) -> None:
    for body in snapshot.models:
        placement = placements.get((body["metadata"]["namespace"], body["metadata"]["name"]))
        if placement is not None:
            _write_status(state.dynamic, body, placement, routed)
            failpoints.reach("serving:after-first-status")


def read_snapshot(state: ServingState) -> ServingSnapshot:
    """Everything one pass reads. DataSets only where the runtime serves; each nation's Vault CA only when
    the plan asks for it (`_VaultCas`)."""
    dynamic, config = state.dynamic, state.config
    tenants = kube.list_objects(dynamic, API_VERSION, "Tenant") or []
    models = kube.list_objects(dynamic, API_VERSION, "ModelDeployment") or []
    bundle_data = _bundle_data(dynamic, config.platform_namespace)
    datasets = (kube.list_objects(dynamic, API_VERSION, "DataSet") or []) if state.runtime.serves else []
    return ServingSnapshot(tenants, models, datasets, bundle_data, _VaultCas(config, dynamic.client, tenants))


class _VaultCas(Mapping[str, str | None]):
    """Each Ready nation's Vault CA (PEM, or None for the system's trust store), read on first use and kept
    for the pass: the platform's VAULT_CACERT file, or the nation's own caBundle Secret."""

    def __init__(self, config: OperatorConfig, api: ApiClient, tenants: list[dict[str, Any]]) -> None:
        self._config, self._api = config, api
        self._tenants = ready_tenants(tenants)
        self._read: dict[str, str | None] = {}

    def __getitem__(self, nation: str) -> str | None:
        if nation not in self._read:
            spec = TenantSpec.model_validate(self._tenants[nation]["spec"])
            self._read[nation] = vault_ca_for_tenant(self._config, self._api, spec)
        return self._read[nation]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tenants)

    def __len__(self) -> int:
        return len(self._tenants)


def audit_sink_for_tenant(config: OperatorConfig, tenant: dict[str, Any], api: ApiClient) -> AuditSink | None:
    """The AuditSink the serving pass gives the Tenant's gateway on the configured runtime; None (audit off)
    without an audit dir, on local-ray without a token dir, or with no runtime."""
    runtime = runtime_for(config)
    spec = TenantSpec.model_validate(tenant["spec"])
    if runtime.audit_placement(spec.nation) is None:
        return None
    return audit_sink_for_nation(runtime, config, tenant, vault_ca_for_tenant(config, api, spec))


def _log_left_out(state: ServingState, left_out: Mapping[str, str]) -> None:
    """A warning per nation left out (names only), when the set changes."""
    if left_out != state.left_out:
        for message in left_out.values():
            log.warning(message)
        state.left_out = left_out


def _bundle_data(dynamic: DynamicClient, namespace: str) -> dict[str, str]:
    live = kube.read_object(dynamic, "v1", "ConfigMap", BUNDLE_CONFIGMAP, namespace)
    if live is not None and live.get("data"):
        return dict(live["data"])
    # Not yet published (the policy handler publishes at start): the base bundle, never an empty one.
    return PolicyBundle.load().to_configmap_data()


def _publish_datasets(
    dynamic: DynamicClient,
    snapshot: ServingSnapshot,
    plan: ServingPlan,
    states: Mapping[str, tuple[str, str]],
) -> None:
    """Ready for each ingested DataSet that its nation's retriever and every gateway now serve (the pass saw
    them run the configuration that holds it): a search through any nation's endpoint finds it. The
    DataSet's own handler sets every other condition; it leaves Ready True once set (builders/dataset.py)."""
    nations = {tenant_namespace(nation_plan.nation): nation_plan.nation for nation_plan in plan.nations}
    for body in snapshot.datasets:
        metadata = body["metadata"]
        nation = nations.get(metadata.get("namespace"))
        live = dict(body.get("status") or {})
        conditions = status_published(live)
        if nation is None or conditions is None or not plan.publishes(nation, metadata["name"], states):
            continue
        generation = live.get("observedGeneration") or metadata.get("generation")
        changes = {"conditions": merge_conditions(live.get("conditions"), conditions, generation)}
        kube.merge_patch_status(
            dynamic, API_VERSION, "DataSet", metadata["name"], metadata["namespace"], changes
        )
        log.info(f"DataSet {metadata['namespace']}/{metadata['name']} is served: Ready")


def _write_status(dynamic: DynamicClient, body: dict[str, Any], placement: Placement, routed: bool) -> None:
    live = dict(body.get("status") or {})
    wanted = model_deployment_status(placement, live, body["metadata"].get("generation"), routed)
    changes = status_changes(live, wanted)
    if changes:
        metadata = body["metadata"]
        kube.merge_patch_status(
            dynamic, API_VERSION, "ModelDeployment", metadata["name"], metadata["namespace"], changes
        )
