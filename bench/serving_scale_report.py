"""The scale-out benchmark's results (bench/serving_scale.py) as a table and a BENCHMARKS.md section; pure."""

from __future__ import annotations

from typing import Any

from bench_support import markdown_table
from rich.table import Table

SECTION = "Serving: scale-out (gateway replicas, nations at once)"
GROUPS = {  # CpuMeter's groups, as the table names them
    "client": "client",
    "proxy": "HTTP proxy",
    "ingress": "ingress replicas",
    "model": "model",
    "ray": "rest of Ray",
}
BUSY = 0.90  # the machine's CPUs this busy: more replicas have no CPU left to use
QUIET = 0.80  # below this share of the busy CPUs for this benchmark's processes, other work disturbed the run


def _latency(summary: dict[str, Any]) -> str:
    return f"{summary['p50_ms']:.2f} / {summary['p99_ms']:.2f} ms"


def _rates(ratios: list[float]) -> str:
    return f"rounds {min(ratios):.2f}–{max(ratios):.2f}" if ratios else ""


def cpu_ceiling(cpu: dict[str, Any]) -> float:
    """Requests per second the machine's CPUs allow at the CPU our processes spent per request."""
    total = float(cpu["cpu_ms_per_request_total"])
    return cpu["cpus"] * 1e3 / total if total else 0.0


def _busiest(cpu: dict[str, Any]) -> tuple[str, float]:
    processes = cpu["busiest_processes_cores"]
    name = next(iter(processes), "")
    return name, float(processes.get(name, 0.0))


def _cpu(cpu: dict[str, Any]) -> str:
    per = ", ".join(f"{GROUPS[group]} {ms:.1f}" for group, ms in cpu["cpu_ms_per_request"].items())
    busiest = ", ".join(
        f"{name} {cores:.2f}" for name, cores in list(cpu["busiest_processes_cores"].items())[:3]
    )
    return (
        f"{cpu['cpus']} CPUs {cpu['machine_busy']:.0%} busy (this benchmark's processes "
        f"{cpu['ours_busy']:.0%}); CPU ms per request: {per} (total {cpu['cpu_ms_per_request_total']:.1f}: "
        f"{cpu_ceiling(cpu):.0f} req/s at most); cores used by the busiest: {busiest}"
    )


def _failed(*summaries: dict[str, Any]) -> int:
    return sum(sum(summary["failures"].values()) for summary in summaries)


def _replica_rows(table: Table, r: dict[str, Any]) -> None:
    n, c, ways = r["replicas"], r["concurrency"], r["ways"]
    for kind, label in (("bare", "bare ingress"), ("gateway", "gateway")):
        one, scaled = ways[f"{kind}-1"], ways[f"{kind}-{n}"]
        table.add_row(
            f"{label}, 1 replica ({c} connections)", f"{one['requests_per_second']:.0f} req/s", "", "1"
        )
        table.add_row("  p50 / p99 latency", _latency(one), "", "")
        table.add_row("  CPU", _cpu(one["cpu"]), "", "")
        table.add_row(
            f"{label}, {n} replicas ({c} connections)",
            f"{scaled['requests_per_second']:.0f} req/s",
            "",
            f"{r[f'{kind}_scaling']:.2f} ({_rates(r[f'{kind}_round_scaling'])})",
        )
        added = r[f"{kind}_rps_per_added_replica"]
        table.add_row(
            "  throughput per added replica",
            f"{added:+.0f} req/s ({added / one['requests_per_second']:+.2f} of one replica's)",
            "",
            "",
        )
        table.add_row("  p50 / p99 latency", _latency(scaled), "", "")
        table.add_row("  CPU", _cpu(scaled["cpu"]), "", "")
    ratios = r["gateway_to_bare"]
    table.add_row(
        f"  gateway / bare ingress, 1 and {n} replicas", f"{ratios['1']:.2f} / {ratios[str(n)]:.2f}", "", ""
    )
    table.add_row("  failed requests (all of the above)", str(_failed(*ways.values())), "", "")


def _nation_rows(table: Table, r: dict[str, Any]) -> None:
    one, four, c = r["one_nation"], r["four_nations"], r["concurrency"]
    nations = list(r["by_nation"])
    table.add_row(
        f"one nation: {nations[0]}'s gateway ({c} connections)",
        f"{one['requests_per_second']:.0f} req/s",
        "",
        "1",
    )
    table.add_row("  p50 / p99 latency", _latency(one), "", "")
    table.add_row("  CPU", _cpu(one["cpu"]), "", "")
    table.add_row(
        f"{len(nations)} nations at once: {', '.join(nations)} "
        f"({r['connections_per_nation']} connections each)",
        f"{four['requests_per_second']:.0f} req/s",
        "",
        f"{r['throughput_ratio']:.2f} ({_rates(r['round_ratios'])})",
    )
    table.add_row("  p50 / p99 latency, all nations", _latency(four), "", "")
    for nation, summary in r["by_nation"].items():
        table.add_row(
            f"  {nation}: p50 / p99 latency",
            f"{_latency(summary)} ({summary['requests_per_second']:.0f} req/s)",
            "",
            "",
        )
    table.add_row("  CPU", _cpu(four["cpu"]), "", "")
    table.add_row("  failed requests (all of the above)", str(_failed(one, four)), "", "")


def results_table(results: dict[str, Any]) -> Table:
    table = Table("measure", "value", "goal", "ratio to baseline", title=SECTION)
    for r in results["replicas"]:
        _replica_rows(table, r)
    for r in results["nations"]:
        _nation_rows(table, r)
    return table


def _cpu_sentence(cpu: dict[str, Any]) -> str:
    name, cores = _busiest(cpu)
    return (
        f"the CPUs {cpu['machine_busy']:.0%} busy (this benchmark's processes {cpu['ours_busy']:.0%}, "
        f"the rest other work on the machine), the busiest process {name} on {cores:.2f} of a core, and "
        f"{cpu['cpu_ms_per_request_total']:.1f} ms of CPU per request over all its processes, which "
        f"{cpu['cpus']} CPUs allow {cpu_ceiling(cpu):.0f} times a second"
    )


def _verdict(cpu: dict[str, Any]) -> str:
    """What bounded the throughput of one replica: the machine's CPUs, the replica's own core, or neither."""
    ingress = [
        cores for name, cores in cpu["busiest_processes_cores"].items() if name.startswith("ServeReplica")
    ]
    if cpu["machine_busy"] >= BUSY and cpu["ours_busy"] < QUIET * cpu["machine_busy"]:
        return (
            f"the CPUs were busy, but {cpu['machine_busy'] - cpu['ours_busy']:.0%} of them with other work "
            "on the machine: this run does not show what bounds the platform (run it on a quiet machine)"
        )
    if cpu["machine_busy"] >= BUSY:
        return (
            "the CPUs bound it, not the replica: the client, the HTTP proxy, the replicas and the model "
            f"share the same {cpu['cpus']}, so an added replica has little CPU left to use"
        )
    if ingress and max(ingress) >= BUSY:
        return "one replica was bound by its own core (one Python process), which an added replica relieves"
    return "neither the CPUs nor one process were saturated: waiting between the processes bounds it"


def _niceness_sentence(cpu: dict[str, Any]) -> str:
    nice = cpu.get("niceness") or {}
    serving = sorted({nice[group] for group in ("proxy", "ingress", "model") if group in nice})
    if "client" not in nice or not serving or serving == [nice["client"]]:
        return ""
    return (
        f"Ray runs the HTTP proxy, the replicas and the model at nice {'/'.join(map(str, serving))} (its "
        f"workers' niceness) and the client runs at {nice['client']}: on busy CPUs the client, and any other "
        "work on the machine at a lower niceness, is scheduled first."
    )


def bound_text(results: dict[str, Any]) -> str:
    """What bounds the throughput, from the run's own CPU figures."""
    sentences = []
    for r in results["replicas"]:
        n, c = r["replicas"], r["concurrency"]
        one, scaled = r["ways"]["gateway-1"], r["ways"][f"gateway-{n}"]
        sentences.append(
            f"At {c} connections the gateway served {one['requests_per_second']:.0f} req/s with 1 replica "
            f"and {scaled['requests_per_second']:.0f} with {n} ({r['gateway_scaling']:.2f}, "
            f"{r['gateway_rps_per_added_replica']:+.0f} req/s per added replica). With 1 replica: "
            f"{_cpu_sentence(one['cpu'])}; with {n}: {_cpu_sentence(scaled['cpu'])}. "
            f"So {_verdict(one['cpu'])}."
        )
    for r in results["nations"]:
        four = r["four_nations"]
        sentences.append(
            f"{len(r['by_nation'])} nations at {r['concurrency']} connections: "
            f"{r['throughput_ratio']:.2f} of one nation's throughput, with {_cpu_sentence(four['cpu'])}."
        )
    if results["replicas"]:
        sentences.append(_niceness_sentence(results["replicas"][0]["ways"]["gateway-1"]["cpu"]))
    return " ".join(sentence for sentence in sentences if sentence)


def markdown_section(results: dict[str, Any], command: str) -> str:
    machine = results["machine"]
    replicas = (
        results["replicas"][0] if results["replicas"] else {"rounds": 0, "round_seconds": 0, "replicas": 2}
    )
    make_args = f' SERVING_SCALE_BENCH_ARGS="{command.strip()}"' if command else ""
    lines = [
        f"Run on {machine['date']}: {machine['cpu_model']}, {machine['nproc']} CPUs, "
        f"{machine['memory_gib']:.1f} GiB memory, Python {machine['python']}, "
        f"Ray {results['versions']['ray']}.",
        f"Command: `make bench-serving-scale{make_args}` "
        f"(`.venv/bin/python bench/serving_scale.py{command}`).",
        "",
    ]
    lines += markdown_table(results_table(results))
    lines += [
        "",
        "The rig of `bench/serving.py` (one local Ray on 2 CPUs, Serve's HTTP proxy, the gateway tests' "
        "fake model answering at once, the client in the benchmark's process; observability off). Replicas: "
        f"FRA's gateway application with 1 and with {replicas['replicas']} replicas, deployed with the Serve "
        "options of the operator's `build_gateway_application(replicas=)` (num_replicas, "
        "max_ongoing_requests 100, max_queued_requests 1000, 0.1 CPU per replica), and the bare ingress with "
        f"the same options as its baseline; {replicas['rounds']} alternating rounds of "
        f"{replicas['round_seconds']:g} s each way after a 3 s warm-up, at each number of connections. "
        "Throughput per added replica: (req/s with N replicas − req/s with 1) / (N − 1). Nations: the "
        "gateways of FRA, DEU, POL and ITA (one replica each, each at its own route prefix, each nation's "
        "analysts with tokens from its own dev issuer, every gateway holding all four Tenants and the same "
        "policy bundle; FRA's trivial model released to the other three, so each gateway decides on its own "
        "users' requests), the connections split evenly over the four vs all of them on FRA's gateway alone, "
        "alternating rounds. CPU: the machine's busy share (/proc/stat, all CPUs, other work on the machine "
        "included) and the CPU time of the benchmark's own processes (/proc/PID/stat: the client, i.e. the "
        "benchmark's process; the HTTP proxy; the measured ingress replicas; the model; the rest of its Ray: "
        "GCS, raylet, Serve controller, quota keepers, idle replicas) per request served; `at most`: the "
        "CPUs / that CPU per request.",
        "",
        bound_text(results),
    ]
    return "\n".join(lines)
