"""Where the nations' Ray Serve applications run: one class per runtime, chosen once from the config.

Each runtime answers where things run (`RuntimeLayout`: federation between nations' clusters, the audit
writer's place, a nation's jobs, the endpoint; pure) and applies a `ServingPlan` (`apply`: the only I/O).
Adding a runtime means adding one class here and its name to `OperatorConfig.runtime`.
"""

from __future__ import annotations

from sovereign_operator.builders.dataset import JobTarget
from sovereign_operator.config import OperatorConfig
from sovereign_operator.runtimes.base import Applied, ServingRuntime
from sovereign_operator.runtimes.kuberay import KubeRayRuntime
from sovereign_operator.runtimes.local_ray import LocalRayRuntime
from sovereign_operator.runtimes.none import NoRuntime

RUNTIMES: dict[str, type[ServingRuntime]] = {
    runtime.name: runtime for runtime in (KubeRayRuntime, LocalRayRuntime, NoRuntime)
}


def runtime_for(config: OperatorConfig) -> ServingRuntime:
    """The runtime `config.runtime` names (SOVEREIGN_RUNTIME)."""
    return RUNTIMES[config.runtime](config)


def job_target(config: OperatorConfig, nation: str) -> JobTarget | str:
    """Where `nation`'s ingest jobs run on the configured runtime, or why they do not."""
    return runtime_for(config).job_target(nation)


__all__ = [
    "RUNTIMES",
    "Applied",
    "KubeRayRuntime",
    "LocalRayRuntime",
    "NoRuntime",
    "ServingRuntime",
    "job_target",
    "runtime_for",
]
