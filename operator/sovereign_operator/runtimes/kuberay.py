"""The runtime `kuberay` (a real cluster): one RayService per served nation, in its namespace.

KubeRay creates each nation's Ray cluster and deploys its `serveConfigV2`, and reports each application's
state in the RayService's `status.activeServiceStatus.applicationStatuses` (KubeRay docs: "RayService").
Each nation's models run in its own Ray cluster, so another nation's gateway reaches them through their
owner's gateway (its `/federation/v1/...` routes), which decides again. The pods run as the nation's
ServiceAccount; its data volume (audit log, dataset stores) is mounted on the head only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from kubernetes.dynamic import DynamicClient

from sovereign.clients import kubernetes as kube_objects
from sovereign.domain.nations import gateway_route_prefix, rayservice_name, tenant_namespace
from sovereign_operator.builders.dataset import JobTarget, kuberay_dashboard_url
from sovereign_operator.builders.rayservice import (
    AUDIT_DIR,
    DATA_RAY_RESOURCE,
    DATASET_DIR,
    GpuPlacement,
    build_data_volume_claim_for_nation,
    build_rayservice_for_nation,
    data_ray_resources,
)
from sovereign_operator.builders.serving_plan import AuditPlacement, Federation, NationPlan, ServingPlan
from sovereign_operator.config import OperatorConfig
from sovereign_operator.constants import APPLIED_SPEC_ANNOTATION, SERVICE_ACCOUNT_TOKEN_FILE
from sovereign_operator.runtimes.base import Applied, body_digest

SERVE_PORT = 8000  # KubeRay's Serve Service


def serve_base(nation: str) -> str:
    """A nation's gateway inside the cluster: KubeRay's Serve Service, `<RayService name>-serve-svc`, port
    8000, at the gateway's route prefix."""
    service = f"{rayservice_name(nation)}-serve-svc.{tenant_namespace(nation)}.svc:{SERVE_PORT}"
    return f"http://{service}{gateway_route_prefix(nation)}"


def federation_urls(nations: Sequence[str]) -> dict[str, str]:
    """Each nation's gateway base, where the other nations' gateways call its models."""
    return {nation: serve_base(nation) for nation in nations}


class KubeRayRuntime:
    name: ClassVar[str] = "kuberay"
    serves: ClassVar[bool] = True

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config

    # -- where things run ---------------------------------------------------------------------------------

    def federation(self, nations: Sequence[str]) -> Federation | None:
        return Federation(federation_urls(nations), SERVICE_ACCOUNT_TOKEN_FILE)

    def audit_placement(self, nation: str) -> AuditPlacement | None:
        """On the nation's data volume, as its pods' ServiceAccount."""
        if self.config.audit_dir is None:
            return None
        return AuditPlacement(AUDIT_DIR, SERVICE_ACCOUNT_TOKEN_FILE, DATA_RAY_RESOURCE)

    def job_target(self, nation: str) -> JobTarget | str:
        return JobTarget(
            kuberay_dashboard_url(nation),
            None,
            DATASET_DIR,
            SERVICE_ACCOUNT_TOKEN_FILE,
            "python",
            data_ray_resources(),
        )

    def endpoint(self, nation: str) -> str:
        return f"{serve_base(nation)}/v1"

    # -- applying a plan ----------------------------------------------------------------------------------

    def data_volume(self, plan: NationPlan) -> bool:
        """The nation's data volume is created and mounted on the head when audit is on or the nation has a
        DataSet, before its first job."""
        return self.config.audit_dir is not None or plan.has_datasets

    def rayservice(self, plan: NationPlan) -> dict[str, Any]:
        """The nation's RayService: its applications as `serveConfigV2`, its Ray cluster sized from its
        models."""
        return build_rayservice_for_nation(
            plan.tenant,
            plan.models,
            plan.own_applications,
            self.config.serving_image,
            telemetry_env=self.config.telemetry_env,
            data_volume=self.data_volume(plan),
            gpu_placement=GpuPlacement(
                self.config.serving_gpu_node_selector, self.config.serving_gpu_tolerations
            ),
        )

    def apply(self, plan: ServingPlan, kube: DynamicClient) -> Applied:
        deployed = False
        observed = True  # KubeRay has reconciled every RayService's current spec (its status is of it)
        states: dict[str, tuple[str, str]] = {}
        for nation_plan in plan.nations:
            if self.data_volume(nation_plan):
                _ensure_data_claim(kube, nation_plan.nation)
            desired = with_applied_spec_hash(self.rayservice(nation_plan))
            metadata = desired["metadata"]
            live = kube_objects.read_object(
                kube, desired["apiVersion"], desired["kind"], metadata["name"], metadata["namespace"]
            )
            if live is None:
                live = kube_objects.create_object(kube, desired)
                deployed = True
            elif needs_replacing(live, desired):
                live = kube_objects.replace_object(kube, desired)  # whole spec: nothing stale stays
                deployed = True
            states.update(_application_states(live))
            generation = (live.get("metadata") or {}).get("generation")
            seen = (live.get("status") or {}).get("observedGeneration")
            observed = observed and seen in (None, generation)  # None: a KubeRay that does not say
        return Applied(deployed, states, settled=not deployed and observed)


def with_applied_spec_hash(desired: dict[str, Any]) -> dict[str, Any]:
    """`desired` annotated with the sha256 of its spec (canonical JSON)."""
    metadata = desired["metadata"]
    annotations = {
        **(metadata.get("annotations") or {}),
        APPLIED_SPEC_ANNOTATION: body_digest(desired["spec"]),
    }
    return {**desired, "metadata": {**metadata, "annotations": annotations}}


def needs_replacing(live: dict[str, Any], desired: dict[str, Any]) -> bool:
    """Whether the live object must be replaced: the desired spec changed since it was written (its hash),
    or someone changed a field the operator sets. Fields the API server added as defaults (a structural
    schema's `default`, k8s docs: /docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/
    #defaulting) are not a change."""
    live_hash = ((live.get("metadata") or {}).get("annotations") or {}).get(APPLIED_SPEC_ANNOTATION)
    if live_hash != desired["metadata"]["annotations"][APPLIED_SPEC_ANNOTATION]:
        return True
    return not _holds(live.get("spec"), desired["spec"])


def _holds(live: Any, desired: Any) -> bool:
    """Whether `live` has every value of `desired`: the same keys with values it holds, the same list
    lengths with items it holds, equal scalars; keys only `live` has are defaults."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(k in live and _holds(live[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(_holds(a, b) for a, b in zip(live, desired, strict=True))
        )
    return bool(live == desired)


def _application_states(rayservice: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Each application's (status, message) as KubeRay reports it, with its deployments' messages."""
    active_service = (rayservice.get("status") or {}).get("activeServiceStatus") or {}
    states = {}
    for name, app in (active_service.get("applicationStatuses") or {}).items():
        causes = [str(d.get("message")) for d in (app.get("serveDeploymentStatuses") or {}).values()]
        message = "\n".join([str(app.get("message") or ""), *[c for c in causes if c and c != "None"]])
        states[name] = (str(app.get("status") or ""), message.strip())
    return states


def _ensure_data_claim(kube: DynamicClient, nation: str) -> None:
    """The nation's data volume; created once and never replaced or deleted by the operator (it goes with
    the namespace at offboarding, after the key that could read it was shredded)."""
    claim = build_data_volume_claim_for_nation(nation)
    metadata = claim["metadata"]
    if kube_objects.read_object(kube, "v1", claim["kind"], metadata["name"], metadata["namespace"]) is None:
        kube_objects.create_object(kube, claim)
