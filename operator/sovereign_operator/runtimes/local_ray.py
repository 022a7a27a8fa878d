"""The runtime `local-ray` (the devstack): every nation's applications on one local Ray cluster.

`apply` PUTs one `ServeDeploySchema` holding every nation's applications to the Ray dashboard (the PUT is
declarative for the whole Ray cluster), only when the body changed since the last PUT (a restart PUTs again:
harmless) or when Serve's status lacks one of its applications (the Ray head restarted and lost them), then
reads each application's state from Serve's status.

The nation's Ray processes read its `model-serving` ServiceAccount token from `<token dir>/<nation>/token`,
which is kept outside the operator, as a kubelet keeps a pod's projected token (k8s docs:
/docs/concepts/storage/projected-volumes/#serviceaccounttoken); the operator never requests a nation's token,
it only names the file. Until the file is there, a reader fails closed (no Vault login).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

from kubernetes.dynamic import DynamicClient

from sovereign.clients import ray
from sovereign.domain.nations import gateway_route_prefix
from sovereign_operator import failpoints
from sovereign_operator.builders.dataset import JobTarget, token_file_for_nation
from sovereign_operator.builders.serve_config import build_serve_deploy_config
from sovereign_operator.builders.serving_plan import AuditPlacement, Federation, ServingPlan
from sovereign_operator.config import OperatorConfig
from sovereign_operator.runtimes.base import Applied, body_digest

log = logging.getLogger(__name__)


class LocalRayRuntime:
    name: ClassVar[str] = "local-ray"
    serves: ClassVar[bool] = True

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config  # with the Ray dashboard's URL and Serve's port (OperatorConfig checks both)
        self._last_body_digest: str | None = None  # what was last PUT

    # -- where things run ---------------------------------------------------------------------------------

    def federation(self, nations: Sequence[str]) -> Federation | None:
        return None  # one Ray cluster: every gateway calls every model by handle

    def audit_placement(self, nation: str) -> AuditPlacement | None:
        """Under the operator's audit dir, logged in with the nation's token file (both needed)."""
        directory, tokens = self.config.audit_dir, self.config.service_account_token_dir
        if directory is None or tokens is None:
            return None
        return AuditPlacement(directory, token_file_for_nation(tokens, nation))

    def job_target(self, nation: str) -> JobTarget | str:
        dataset_dir, tokens = self.config.dataset_dir, self.config.service_account_token_dir
        if dataset_dir is None or tokens is None:
            return "SOVEREIGN_DATASET_DIR and SOVEREIGN_SERVICE_ACCOUNT_TOKEN_DIR are not both set"
        assert self.config.ray_dashboard_url is not None
        # The devstack's Ray head runs from the operator's own environment: the same interpreter has the code.
        return JobTarget(
            self.config.ray_dashboard_url,
            self.config.ray_token,
            dataset_dir,
            token_file_for_nation(tokens, nation),
            sys.executable,
            token_file_here=True,
        )

    def endpoint(self, nation: str) -> str:
        return f"{gateway_route_prefix(nation)}/v1"

    # -- applying a plan ----------------------------------------------------------------------------------

    def serve_config(self, plan: ServingPlan) -> dict[str, Any]:
        """The body PUT to the dashboard: every nation's applications, on Serve's HTTP port."""
        return build_serve_deploy_config(plan.applications, self.config.serve_http_port)

    def apply(self, plan: ServingPlan, kube: DynamicClient) -> Applied:
        dashboard_url = self.config.ray_dashboard_url
        assert dashboard_url is not None
        body = self.serve_config(plan)
        digest = body_digest(body)
        deployed = False
        try:
            if digest != self._last_body_digest:
                self._put(dashboard_url, body)
                self._last_body_digest = digest
                deployed = True
            states = states_with_causes(ray.get_serve_status(dashboard_url, token=self.config.ray_token))
            missing = sorted(app["name"] for app in body["applications"] if app["name"] not in states)
            if missing and not deployed:
                # Ray lost applications it had been given (its head restarted, or someone deleted them):
                # the same body again brings every nation's applications back.
                log.warning(f"the local Ray cluster lacks {', '.join(missing)}: the Serve config put again")
                self._put(dashboard_url, body)
                deployed = True
                states = states_with_causes(ray.get_serve_status(dashboard_url, token=self.config.ray_token))
        except Exception:
            self._last_body_digest = None  # unknown what Ray kept: the next pass PUTs again
            raise
        return Applied(deployed, states, settled=not deployed)

    def _put(self, dashboard_url: str, body: dict[str, Any]) -> None:
        failpoints.reach("serving:before-put")
        ray.put_serve_applications(dashboard_url, body, token=self.config.ray_token)
        failpoints.reach("serving:after-put")
        log.info(f"Serve config with {len(body['applications'])} applications put to the local Ray cluster")


def states_with_causes(status_json: dict[str, Any]) -> dict[str, tuple[str, str]]:
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
