"""The runtime `none`: ModelDeployments and DataSets are admitted but nothing runs them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from kubernetes.dynamic import DynamicClient

from sovereign.domain.nations import gateway_route_prefix
from sovereign_operator.builders.dataset import JobTarget
from sovereign_operator.builders.serving_plan import AuditPlacement, Federation, ServingPlan
from sovereign_operator.config import OperatorConfig
from sovereign_operator.runtimes.base import Applied


class NoRuntime:
    name: ClassVar[str] = "none"
    serves: ClassVar[bool] = False

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config

    def federation(self, nations: Sequence[str]) -> Federation | None:
        return None

    def audit_placement(self, nation: str) -> AuditPlacement | None:
        return None

    def job_target(self, nation: str) -> JobTarget | str:
        return "serving runtime 'none': DataSets are admitted but not ingested"

    def endpoint(self, nation: str) -> str:
        return f"{gateway_route_prefix(nation)}/v1"

    def apply(self, plan: ServingPlan, kube: DynamicClient) -> Applied:
        return Applied(deployed=False)
