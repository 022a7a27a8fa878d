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

from kubernetes.client import ApiClient
from kubernetes.dynamic import DynamicClient

from sovereign.clients import kubernetes as kube
from sovereign.policy.bundle import BUNDLE_CONFIGMAP, PolicyBundle
from sovereign.serving_contract import AuditSink
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.builders.conditions import status_changes
from sovereign_operator.builders.model_status import Placement, model_deployment_status
from sovereign_operator.builders.serving_plan import (
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
        applied = state.runtime.apply(plan, state.dynamic)
        placements = plan.placements_with_states(applied.states)
        for body in snapshot.models:
            placement = placements.get((body["metadata"]["namespace"], body["metadata"]["name"]))
            if placement is not None:
                _write_status(state.dynamic, body, placement)
        return ServingPass(plan.served_nations, len(plan.applications), applied.deployed)


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


def _write_status(dynamic: DynamicClient, body: dict[str, Any], placement: Placement) -> None:
    live = dict(body.get("status") or {})
    wanted = model_deployment_status(placement, live, body["metadata"].get("generation"))
    changes = status_changes(live, wanted)
    if changes:
        metadata = body["metadata"]
        kube.merge_patch_status(
            dynamic, API_VERSION, "ModelDeployment", metadata["name"], metadata["namespace"], changes
        )
