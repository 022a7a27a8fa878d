"""What every Ray Serve replica the operator builds gets: its environment and its scaled CPU and memory.

CPU (and memory) per replica: Ray schedules by logical resources, so a model asking for `cpu: "1"` needs a
whole free Ray CPU. On a cluster (KubeRay) the worker pods are sized from the same specs and `cpu_scale` stays
1. On the devstack's local Ray (2 CPUs shared by every nation) the operator passes a `cpu_scale` below 1 (e.g.
0.05: a 1-CPU model reserves 0.05 Ray CPUs) so that several nations' gateways and models fit; the scale only
changes what Ray reserves, not what a replica may use. `memory_scale` does the same for memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from sovereign.serving_contract import AIR_GAP_ENV

# Smallest CPU reservation of a scaled replica: Ray rounds logical resources to 1/10000.
MIN_NUM_CPUS = 0.01


def replica_runtime_env(telemetry_env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The replicas' environment: the air gap, and the operator's OTEL_* variables (`telemetry_env`) so that
    every replica exports its spans where the operator does (sorted: the same env gives the same bytes).
    The air-gap variables win over a telemetry variable of the same name."""
    given = sorted((telemetry_env or {}).items())
    telemetry = {name: value for name, value in given if name.startswith("OTEL_")}
    return {"env_vars": {**telemetry, **AIR_GAP_ENV}}


def scaled_num_cpus(quantity: str, scale: float) -> float:
    cpus = Decimal(parse_quantity(quantity)) * Decimal(str(scale))
    return max(MIN_NUM_CPUS, round(float(cpus), 4))


def scaled_memory_bytes(quantity: str, scale: float) -> int:
    return int(Decimal(parse_quantity(quantity)) * Decimal(str(scale)))
