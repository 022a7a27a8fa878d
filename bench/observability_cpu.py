"""Where the CPU goes with the gateway's observability off and on (bench/serving.py): CPU ms per request by
part of the request path, the throughput ratio the CPU alone predicts, and their rows and sentences; pure."""

from __future__ import annotations

from typing import Any

from rich.table import Table

GROUPS = {  # CpuMeter's groups for this comparison, as the section names them
    "client": "client",
    "proxy": "HTTP proxy",
    "ingress": "gateway replica",
    "model": "model",
    "audit_writer": "audit writer",
    "quota_keeper": "quota keeper",
    "otlp_receiver": "OTLP receiver",
    "devstack": "devstack servers",
    "ray": "rest of Ray",
}
RECEIVER = "otlp_receiver"
BUSY = 0.90  # the machine's CPUs this busy in both ways: the CPU each request costs sets the throughput


def cpu_bound(off: dict[str, Any], on: dict[str, Any], left_out: tuple[str, ...] = ()) -> dict[str, float]:
    """The throughput ratio on / off that the CPU alone predicts when the CPUs bound both ways: the CPU ms
    per request of our processes off / on (those of the `left_out` groups not counted)."""

    def total(cpu: dict[str, Any]) -> float:
        spent = cpu["cpu_ms_per_request"]
        return float(cpu["cpu_ms_per_request_total"]) - sum(spent.get(group, 0.0) for group in left_out)

    off_ms, on_ms = total(off), total(on)
    return {"off_ms": off_ms, "on_ms": on_ms, "ratio": off_ms / on_ms if on_ms else 0.0}


def cpu_comparison(off: dict[str, Any], on: dict[str, Any], measured_ratio: float) -> dict[str, Any]:
    """The CPU figures of the two ways (CpuMeter results) side by side with the measured throughput ratio."""
    added = {
        group: on["cpu_ms_per_request"].get(group, 0.0) - off["cpu_ms_per_request"].get(group, 0.0)
        for group in GROUPS
    }
    return {
        "measured_ratio": measured_ratio,
        "cpu_bound": cpu_bound(off, on),
        # Computed, not measured: the same run with the receiver's CPU taken out, as if the collector ran on
        # another host (its share of the CPUs would go to the other processes).
        "cpu_bound_without_otlp_receiver": cpu_bound(off, on, (RECEIVER,)),
        "added_cpu_ms_per_request": added,
        "added_cpu_ms_per_request_total": on["cpu_ms_per_request_total"] - off["cpu_ms_per_request_total"],
    }


def cpu_line(cpu: dict[str, Any]) -> str:
    per = ", ".join(f"{GROUPS[group]} {ms:.2f}" for group, ms in cpu["cpu_ms_per_request"].items())
    return (
        f"{cpu['cpus']} CPUs {cpu['machine_busy']:.0%} busy (this benchmark's processes "
        f"{cpu['ours_busy']:.0%}); CPU ms per request: {per}; total {cpu['cpu_ms_per_request_total']:.2f}"
    )


def added_line(comparison: dict[str, Any]) -> str:
    added = sorted(comparison["added_cpu_ms_per_request"].items(), key=lambda item: -abs(item[1]))
    per = ", ".join(f"{GROUPS[group]} {ms:+.2f}" for group, ms in added)
    return f"{per}; total {comparison['added_cpu_ms_per_request_total']:+.2f} ms"


def _ratio(cpu: dict[str, Any], base: dict[str, Any]) -> str:
    base_ms = base["cpu_ms_per_request_total"]
    return f"{cpu['cpu_ms_per_request_total'] / base_ms:.2f}" if base_ms else ""


def cpu_rows(table: Table, o: dict[str, Any]) -> None:
    """The CPU rows of the observability comparison: each way's CPU, the added CPU and the CPU bound at
    `o['concurrency']` connections, then each way's CPU and the added CPU on one connection."""
    off, on = o["observability_off"]["cpu"], o["observability_on"]["cpu"]
    c = o["cpu"]
    table.add_row("  CPU, observability off", cpu_line(off), "", "1")
    table.add_row("  CPU, observability on", cpu_line(on), "", _ratio(on, off))
    table.add_row("  added CPU ms per request (on − off)", added_line(c), "", "")
    bound, without = c["cpu_bound"], c["cpu_bound_without_otlp_receiver"]
    table.add_row(
        "  CPU bound: CPU ms per request off / on (the throughput ratio the CPU alone predicts)",
        f"{bound['off_ms']:.2f} / {bound['on_ms']:.2f} ms",
        "",
        f"{bound['ratio']:.2f} (measured {c['measured_ratio']:.2f})",
    )
    table.add_row(
        "  CPU bound without the OTLP receiver's CPU (computed, not measured: a collector on another host)",
        f"{without['off_ms']:.2f} / {without['on_ms']:.2f} ms",
        "",
        f"{without['ratio']:.2f}",
    )
    single = o["one_connection"]
    off1, on1 = single["observability_off"]["cpu"], single["observability_on"]["cpu"]
    table.add_row("  CPU, one connection, observability off", cpu_line(off1), "", "1")
    table.add_row("  CPU, one connection, observability on", cpu_line(on1), "", _ratio(on1, off1))
    table.add_row(
        "  added CPU ms per request on one connection (on − off)", added_line(single["cpu"]), "", ""
    )


def cpu_text(o: dict[str, Any]) -> str:
    """How the CPU was measured and what bounds the ratio at `o['concurrency']` connections."""
    off, on, c = o["observability_off"]["cpu"], o["observability_on"]["cpu"], o["cpu"]
    bound, without = c["cpu_bound"], c["cpu_bound_without_otlp_receiver"]
    niceness = ", ".join(f"{GROUPS[group]} {nice}" for group, nice in on["niceness"].items())
    busy = min(off["machine_busy"], on["machine_busy"])
    shares = f"{off['machine_busy']:.0%} (off) and {on['machine_busy']:.0%} (on) busy"
    if busy >= BUSY:
        verdict = f"the CPUs were {shares}, so the CPU each request costs sets the throughput: it predicts"
    else:
        verdict = (
            f"the CPUs were only {shares}, so waiting, not the CPU alone, sets the throughput; the CPU "
            "per request alone would predict"
        )
    most, most_ms = max(c["added_cpu_ms_per_request"].items(), key=lambda item: item[1])
    return (
        "CPU (observability): during the measured rounds of each way, the machine's busy share (/proc/stat, "
        "all CPUs) and the CPU time (/proc/PID/stat) of the benchmark's processes per request, by part: the "
        "client (the benchmark's process), the HTTP proxy, the measured gateway's replica (FRA's gateway "
        "off, the observed one on), the model, FRA's AuditWriter actor, the QuotaKeeper, the OTLP receiver "
        "(a process of its own, as a collector would be), the devstack's servers (Kubernetes API, OpenBao, "
        "operator) and the rest of Ray (GCS, raylet, Serve controller, the idle gateway); a way's rounds "
        "also hold the tail of the other's (spans exported, records written after its round ended). "
        "Niceness (the "
        f"lower gets the CPUs first when they are all busy): {niceness}. At {o['concurrency']} connections "
        f"{verdict} {bound['ratio']:.2f} ({bound['off_ms']:.2f} ms off / {bound['on_ms']:.2f} ms on per "
        f"request), measured {c['measured_ratio']:.2f}; on adds {c['added_cpu_ms_per_request_total']:+.2f} "
        f"ms per request, most in the {GROUPS[most]} ({most_ms:+.2f}). Without the OTLP receiver's CPU "
        f"(computed from this run, not measured: the collector on another host) the CPU would predict "
        f"{without['ratio']:.2f} ({without['off_ms']:.2f} / {without['on_ms']:.2f} ms)."
    )
