"""bench/serving_scale_report.py: the scale-out benchmark's section from its results (the run itself is
`make bench-serving-scale`, not a test), and the verdict on what bounds the throughput."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def report(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCH_DIR))  # the scripts import their siblings, as when run
    return importlib.import_module("serving_scale_report")


def _cpu(busy: float, busiest: float, total_ms: float = 12.5, ours: float | None = None) -> dict[str, Any]:
    groups = {"client": 1.0, "proxy": 3.5, "ingress": 5.0, "model": 1.5, "ray": total_ms - 11.0}
    return {
        "cpus": 2,
        "machine_busy": busy,
        "ours_busy": busy - 0.05 if ours is None else ours,
        "cpu_ms_per_request": groups,
        "cpu_ms_per_request_total": total_ms,
        "busiest_processes_cores": {"ServeReplica:fra-gateway:Gateway (7)": busiest, "ProxyActor": 0.3},
        "niceness": {"client": 0, "ingress": 15, "model": 15, "proxy": 15},
    }


def _summary(
    rate: float, busy: float = 0.97, busiest: float = 0.5, ours: float | None = None
) -> dict[str, Any]:
    return {
        "requests_per_second": rate,
        "p50_ms": 80.0,
        "p99_ms": 140.0,
        "failures": {},
        "cpu": _cpu(busy, busiest, ours=ours),
    }


def _results(busy: float, busiest: float, ours: float | None = None) -> dict[str, Any]:
    ways = {
        "bare-1": _summary(110, busy),
        "gateway-1": _summary(100, busy, busiest, ours),
        "bare-2": _summary(108, busy),
        "gateway-2": _summary(102, busy),
    }
    replicas = {
        "concurrency": 8,
        "replicas": 2,
        "rounds": 4,
        "round_seconds": 5.0,
        "ways": ways,
        "gateway_scaling": 1.02,
        "gateway_round_scaling": [0.98, 1.06],
        "bare_scaling": 108 / 110,
        "bare_round_scaling": [0.97, 0.99],
        "gateway_rps_per_added_replica": 2.0,
        "bare_rps_per_added_replica": -2.0,
        "gateway_to_bare": {"1": 100 / 110, "2": 102 / 108},
    }
    nations = {
        "concurrency": 8,
        "connections_per_nation": 2,
        "one_nation": _summary(100),
        "four_nations": _summary(96),
        "by_nation": {nation: _summary(24) for nation in ("FRA", "DEU", "POL", "ITA")},
        "throughput_ratio": 0.96,
        "round_ratios": [0.95, 0.97],
    }
    machine = {"date": "today", "cpu_model": "a CPU", "nproc": 2, "memory_gib": 24.0, "python": "3.11"}
    return {"machine": machine, "versions": {"ray": "2.60.0"}, "replicas": [replicas], "nations": [nations]}


def test_the_section_shows_each_replica_count_its_ratio_and_the_nations(report: Any) -> None:
    section = report.markdown_section(_results(0.97, 0.5), " --seconds 2")
    assert '`make bench-serving-scale SERVING_SCALE_BENCH_ARGS="--seconds 2"`' in section
    assert "| gateway, 1 replica (8 connections) | 100 req/s |  | 1 |" in section
    assert "| gateway, 2 replicas (8 connections) | 102 req/s |  | 1.02 (rounds 0.98–1.06) |" in section
    assert "| ↳ throughput per added replica | +2 req/s (+0.02 of one replica's) |  |  |" in section
    assert "| 4 nations at once: FRA, DEU, POL, ITA (2 connections each) | 96 req/s |  | 0.96" in section
    assert "| ↳ ITA: p50 / p99 latency | 80.00 / 140.00 ms (24 req/s) |  |  |" in section
    assert (
        "12.5 ms of CPU per request over all its processes, which 2 CPUs allow 160 times a second" in section
    )


@pytest.mark.parametrize(
    ("busy", "busiest", "ours", "verdict"),
    [
        (0.97, 0.5, None, "the CPUs bound it, not the replica"),
        (0.97, 0.5, 0.5, "47% of them with other work on the machine: this run does not show"),
        (0.6, 0.95, None, "one replica was bound by its own core"),
        (0.6, 0.5, None, "neither the CPUs nor one process were saturated"),
    ],
    ids=["busy-cpus", "busy-with-other-work", "one-busy-replica", "neither"],
)
def test_the_bound_is_named_from_the_run_s_own_cpu_figures(
    report: Any, busy: float, busiest: float, ours: float | None, verdict: str
) -> None:
    assert verdict in report.bound_text(_results(busy, busiest, ours))
