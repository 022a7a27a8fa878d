"""What every serving runtime is: where things run (`RuntimeLayout`, pure) and `apply(plan)`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from kubernetes.dynamic import DynamicClient

from sovereign_operator.builders.serving_plan import RuntimeLayout, ServingPlan
from sovereign_operator.config import OperatorConfig


def body_digest(body: Mapping[str, object]) -> str:
    """The sha256 of `body` as canonical JSON: what a runtime last sent, to tell whether it changed."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Applied:
    """What applying a plan did: whether it sent a new configuration, and each Ray application's
    (status, message) as the runtime reports it (Ray Serve's statuses: RUNNING, DEPLOYING, ...).

    `settled`: the states were reported after the runtime took the current configuration (none was sent by
    this pass, and the runtime says it observed the last one). Only then may a RUNNING state vouch that a
    request routed by the new configuration succeeds: statuses read right after a change may describe the
    previous one."""

    deployed: bool
    states: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    settled: bool = False


class ServingRuntime(RuntimeLayout, Protocol):
    """A place where the nations' Ray Serve applications run. One class per runtime; the operator makes one
    at start from its config (`runtime_for`) and hands it a plan on every serving pass."""

    name: ClassVar[str]  # the value of SOVEREIGN_RUNTIME
    serves: ClassVar[bool]  # False: ModelDeployments and DataSets are admitted but not served
    config: OperatorConfig

    def __init__(self, config: OperatorConfig) -> None: ...

    def apply(self, plan: ServingPlan, kube: DynamicClient) -> Applied:
        """Bring the runtime to `plan` (level-based: write only what differs) and report the applications'
        states."""
        ...
