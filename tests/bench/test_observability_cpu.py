"""Where the CPU goes with observability off vs on (bench/serving.py): processes put in groups by their
command lines, the CPU bound computed from the groups' CPU per request, and the section's rows."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from rich.table import Table

from bench.cpu_meter import OTLP_RECEIVER_MODULE, CpuMeter, group_of
from bench.observability_cpu import GROUPS, cpu_bound, cpu_comparison, cpu_rows, cpu_text

INGRESS, MODEL = ("bench-fra-gateway-observed",), ("bench-trivial-model",)
SITE = "/work/.venv/lib/python3.11/site-packages"


@pytest.mark.parametrize(
    ("argv", "group", "name"),
    [
        (["ray::ProxyActor.proxy_request"], "proxy", "ProxyActor"),
        (
            ["ray::ServeReplica:bench-fra-gateway-observed:Gateway"],
            "ingress",
            "ServeReplica:bench-fra-gateway-observed:Gateway (42)",
        ),
        (["ray::ServeReplica:fra-gateway:Gateway"], "ray", "ServeReplica:fra-gateway:Gateway"),
        (
            ["ray::ServeReplica:bench-trivial-model:FakeModel"],
            "model",
            "ServeReplica:bench-trivial-model:FakeModel",
        ),
        (["ray::AuditWriter.append"], "audit_writer", "AuditWriter"),
        (["ray::QuotaKeeper.lease"], "quota_keeper", "QuotaKeeper"),
        (
            ["/usr/bin/python3", "-m", OTLP_RECEIVER_MODULE, "--port", "4318"],
            "otlp_receiver",
            "OTLP receiver",
        ),
        ([f"{SITE}/ray/core/src/ray/gcs/gcs_server", "--node-ip-address=127.0.0.1"], "ray", "gcs_server"),
        (["/usr/bin/python3", "-u", f"{SITE}/ray/dashboard/agent.py"], "ray", "python3"),
        (["ray::IDLE"], "ray", "IDLE"),
        (["/opt/openbao/bao", "server", "-config=/tmp/state/vault.hcl"], "devstack", "bao"),
        ([], "ray", "42"),
    ],
    ids=[
        "proxy",
        "measured-gateway",
        "gateway-not-measured",
        "model",
        "audit-writer",
        "quota-keeper",
        "otlp-receiver",
        "gcs",
        "ray-agent",
        "idle-worker",
        "devstack-server",
        "gone",
    ],
)
def test_a_process_is_grouped_by_its_command_line(argv: list[str], group: str, name: str) -> None:
    assert group_of(42, argv, INGRESS, MODEL) == (group, name)


# Waits for a line, burns 0.2 s of CPU, says so, then waits for the end of its input.
BURN = """
import sys, time
sys.stdin.readline()
while time.process_time() < 0.2:
    pass
print("done", flush=True)
sys.stdin.read()
"""


@pytest.mark.process  # a short Python child burning CPU
@pytest.mark.parametrize(
    ("groups", "child_group"),
    [(tuple(GROUPS), "devstack"), (("client", "proxy", "ingress", "model", "ray"), "ray")],
    ids=["reported", "folded-into-rest-of-ray"],
)
def test_the_meter_counts_a_child_in_its_group_or_as_the_rest_of_ray(
    groups: tuple[str, ...], child_group: str
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        meter = CpuMeter(INGRESS, MODEL, groups)
        with meter:  # the child is measured while it lives: it exists at both ends of the window
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline() == "done\n"
        result = meter.result(requests=10)
    finally:
        child.stdin.close()
        child.wait(timeout=60)
    assert list(result["cpu_ms_per_request"]) == list(groups)
    assert result["cpu_ms_per_request"][child_group] >= 10.0  # of the child's 200 ms, over 10 requests
    assert result["cpu_ms_per_request_total"] == pytest.approx(sum(result["cpu_ms_per_request"].values()))
    assert result["niceness"]["client"] >= 0
    assert ("devstack" in result["niceness"]) == (child_group == "devstack")


def _cpu(busy: float, **ms: float) -> dict[str, Any]:
    spent = {group: ms.get(group, 0.0) for group in GROUPS}
    return {
        "cpus": 2,
        "machine_busy": busy,
        "ours_busy": busy - 0.02,
        "cpu_ms_per_request": spent,
        "cpu_ms_per_request_total": sum(spent.values()),
        "busiest_processes_cores": {"ProxyActor": 0.6},
        "niceness": {"client": 0, "ingress": 15, "otlp_receiver": 0, "proxy": 15},
    }


OFF = _cpu(0.98, client=2.0, proxy=3.0, ingress=4.0, model=0.5, quota_keeper=0.1, ray=0.4)  # 10 ms
ON = _cpu(
    0.99,
    client=2.0,
    proxy=3.0,
    ingress=4.7,
    model=0.5,
    audit_writer=0.5,
    quota_keeper=0.1,
    otlp_receiver=0.8,
    ray=0.4,
)  # 12 ms


def test_the_cpu_bound_is_the_cpu_per_request_off_over_on_with_and_without_the_receiver() -> None:
    comparison = cpu_comparison(OFF, ON, measured_ratio=0.84)
    assert comparison["cpu_bound"] == pytest.approx({"off_ms": 10.0, "on_ms": 12.0, "ratio": 10 / 12})
    assert comparison["cpu_bound_without_otlp_receiver"] == pytest.approx(
        {"off_ms": 10.0, "on_ms": 11.2, "ratio": 10 / 11.2}
    )
    added = comparison["added_cpu_ms_per_request"]
    assert added == pytest.approx(
        {group: 0.0 for group in GROUPS} | {"ingress": 0.7, "audit_writer": 0.5, "otlp_receiver": 0.8}
    )
    assert comparison["added_cpu_ms_per_request_total"] == pytest.approx(2.0)
    assert cpu_bound(OFF, _cpu(0.5)) == {"off_ms": 10.0, "on_ms": 0.0, "ratio": 0.0}


def _observability(off: dict[str, Any], on: dict[str, Any]) -> dict[str, Any]:
    return {
        "concurrency": 8,
        "observability_off": {"cpu": off},
        "observability_on": {"cpu": on},
        "cpu": cpu_comparison(off, on, 0.84),
        "one_connection": {
            "observability_off": {"cpu": off},
            "observability_on": {"cpu": on},
            "cpu": cpu_comparison(off, on, 0.9),
        },
    }


def test_the_rows_show_each_way_the_added_cpu_and_both_bounds() -> None:
    table = Table("measure", "value", "goal", "ratio to baseline")
    cpu_rows(table, _observability(OFF, ON))
    rows = list(zip(*(column.cells for column in table.columns), strict=True))
    by_measure = {str(measure).strip(): (value, ratio) for measure, value, _, ratio in rows}
    off_value, off_ratio = by_measure["CPU, observability off"]
    assert off_ratio == "1"
    assert "2 CPUs 98% busy (this benchmark's processes 96%)" in off_value
    assert "gateway replica 4.00, model 0.50, audit writer 0.00" in off_value
    assert off_value.endswith("total 10.00")
    assert by_measure["CPU, observability on"][1] == "1.20"
    added, _ = by_measure["added CPU ms per request (on − off)"]
    assert added.startswith("OTLP receiver +0.80, gateway replica +0.70, audit writer +0.50, client +0.00")
    assert added.endswith("total +2.00 ms")
    bound = "CPU bound: CPU ms per request off / on (the throughput ratio the CPU alone predicts)"
    assert by_measure[bound] == ("10.00 / 12.00 ms", "0.83 (measured 0.84)")
    without = (
        "CPU bound without the OTLP receiver's CPU (computed, not measured: a collector on another host)"
    )
    assert by_measure[without] == ("10.00 / 11.20 ms", "0.89")
    assert "CPU, one connection, observability on" in by_measure
    assert "added CPU ms per request on one connection (on − off)" in by_measure


def test_the_text_names_the_bound_and_whether_the_cpus_set_the_throughput() -> None:
    busy = cpu_text(_observability(OFF, ON))
    assert "all busy): client 0, gateway replica 15, OTLP receiver 0, HTTP proxy 15." in busy
    assert (
        "the CPUs were 98% (off) and 99% (on) busy, so the CPU each request costs sets the throughput: "
        "it predicts 0.83 (10.00 ms off" in busy
    )
    assert "0.83 (10.00 ms off / 12.00 ms on per request), measured 0.84" in busy
    assert "most in the OTLP receiver (+0.80)" in busy
    assert "not measured: the collector on another host) the CPU would predict 0.89" in busy
    idle = cpu_text(_observability(_cpu(0.5, proxy=1.0), _cpu(0.6, proxy=1.0, ingress=0.2)))
    assert (
        "the CPUs were only 50% (off) and 60% (on) busy, so waiting, not the CPU alone, sets the "
        "throughput; the CPU per request alone would predict 0.83" in idle
    )
