"""The serving benchmark's goals with every safeguard on, against the bare ingress measured in the same
alternating rounds (bench/serving.py): what the gateway adds, what the throughputs alone predict it adds, and
the section's rows; pure."""

from __future__ import annotations

from typing import Any

from observability_cpu import cpu_line
from rich.table import Table


def over_bare(gateway: dict[str, Any], bare: dict[str, Any], connections: int) -> dict[str, float]:
    """What the gateway with every safeguard on adds to the bare ingress (both `_summary`s of the same
    rounds), and the mean latency the throughputs alone predict it adds: with `connections` clients each
    sending its next request when the last is answered, mean latency = connections / throughput (Little's
    law), so on CPUs both keep busy the added latency is the throughput lost, not a wait of its own."""
    gateway_rps, bare_rps = gateway["requests_per_second"], bare["requests_per_second"]
    return {
        "connections": connections,
        "throughput_ratio": gateway_rps / bare_rps,
        "added_p50_ms": gateway["p50_ms"] - bare["p50_ms"],
        "added_p99_ms": gateway["p99_ms"] - bare["p99_ms"],
        "added_mean_ms": gateway["mean_ms"] - bare["mean_ms"],
        "littles_law_added_mean_ms": connections * (1 / gateway_rps - 1 / bare_rps) * 1e3,
    }


def goal_rows(table: Table, o: dict[str, Any], goals: dict[str, float]) -> None:
    """Every safeguard on vs the bare ingress, measured in the same alternating rounds: the added p50 / p99
    against their goals, at `o['concurrency']` connections and at one, and the mean the throughputs alone
    predict (Little's law)."""
    added_goal = f"<= +{goals['added_p50_ms_over_bare']:g} / +{goals['added_p99_ms_over_bare']:g} ms"
    for key, bare in (
        ("concurrency", o["bare_ingress"]),
        ("one_connection", o["one_connection"]["bare_ingress"]),
    ):
        over = o["safeguards_over_bare"][key]
        connections = over["connections"]
        table.add_row(
            f"bare ingress, same rounds ({connections} connection{'s' if connections > 1 else ''})",
            f"{bare['requests_per_second']:.0f} req/s, p50 / p99 "
            f"{bare['p50_ms']:.2f} / {bare['p99_ms']:.2f} ms",
            "",
            "1",
        )
        met = (
            over["added_p50_ms"] <= goals["added_p50_ms_over_bare"]
            and over["added_p99_ms"] <= goals["added_p99_ms_over_bare"]
        )
        table.add_row(
            "  gateway with every safeguard on: added p50 / p99",
            f"{over['added_p50_ms']:+.2f} / {over['added_p99_ms']:+.2f} ms",
            f"{added_goal} ({'met' if met else 'not met'})",
            f"{over['throughput_ratio']:.2f} (req/s)",
        )
        table.add_row(
            "  added mean latency: measured / what the throughputs alone predict (connections ÷ req/s)",
            f"{over['added_mean_ms']:+.2f} / {over['littles_law_added_mean_ms']:+.2f} ms",
            "",
            "",
        )
        if "cpu" in bare:
            table.add_row("  CPU, bare ingress", cpu_line(bare["cpu"]), "", "")


def needed_ratio(bare_rps: float, connections: int, added_ms: float) -> float:
    """The throughput ratio to the bare ingress at which `connections` closed-loop clients wait at most
    `added_ms` more on average: connections / ratio·bare − connections / bare <= added."""
    return 1 / (1 + added_ms / 1e3 * bare_rps / connections)


def goal_text(o: dict[str, Any], goals: dict[str, float]) -> str:
    """What bounds the latency goals in this run, from its own figures."""
    over, one = o["safeguards_over_bare"]["concurrency"], o["safeguards_over_bare"]["one_connection"]
    n, bare, on = over["connections"], o["bare_ingress"], o["observability_on"]
    goal = goals["added_p50_ms_over_bare"]
    parts = [
        f"What bounds the goals over the bare ingress here: at {n} connections each client sends its next "
        "request when the last is answered, so the mean latency is the connections over the throughput "
        f"(Little's law): the throughputs alone predict {over['littles_law_added_mean_ms']:+.2f} ms added on "
        f"average, {over['added_mean_ms']:+.2f} ms was measured. The added latency is the throughput lost: "
        f"+{goal:g} ms at {n} connections needs the gateway with every safeguard on to keep "
        f"{needed_ratio(bare['requests_per_second'], n, goal):.2f} of the bare ingress's throughput "
        f"(measured {over['throughput_ratio']:.2f})."
    ]
    if "cpu" in bare and "cpu" in on:
        bare_ms, on_ms = bare["cpu"]["cpu_ms_per_request_total"], on["cpu"]["cpu_ms_per_request_total"]
        parts.append(
            f"It spends {on_ms:.2f} ms of CPU per request against the bare ingress's {bare_ms:.2f} ms "
            f"({bare_ms / on_ms:.2f} the other way round), the machine {on['cpu']['machine_busy']:.0%} busy."
        )
    single = o["one_connection"]
    off1, bare1 = single["observability_off"], single["bare_ingress"]
    added = single.get("cpu", {}).get("added_cpu_ms_per_request", {})
    text = (
        f"At one connection nothing queues: the gateway adds {one['added_p50_ms']:+.2f} ms at p50 "
        f"({off1['p50_ms'] - bare1['p50_ms']:+.2f} ms with the safeguards off)"
    )
    if added:
        text += (
            f"; with them on its replica spends {added.get('ingress', 0.0):+.2f} ms more CPU per request, on "
            f"each request's path, and the audit writer {added.get('audit_writer', 0.0):+.2f} ms in its own "
            "process"
        )
    parts.append(text + ".")
    return " ".join(parts)
