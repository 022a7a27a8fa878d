"""The soak's results (bench/soak.py): its section of RELIABILITY.md, a table on stderr, JSON on stdout."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from bench_support import machine_line, replace_benchmark_section
from rich.console import Console
from rich.table import Table
from soak_checks import Check, Drift
from soak_traffic import KINDS

RELIABILITY_MD = Path(__file__).resolve().parent.parent / "RELIABILITY.md"
SECTION = "Soak"
FULL_MINUTES = 10.0


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f}"


def _ratio(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def results_json(
    machine: dict[str, Any], args: argparse.Namespace, driven: dict[str, Any], ev: dict[str, Any]
) -> dict[str, Any]:
    drifts: dict[str, Drift] = ev["drifts"]
    return {
        "machine": machine,
        "minutes": args.minutes,
        "connections": args.connections,
        "capacityPerSecond": driven["capacity"],
        "ratePerSecond": driven["rate"],
        "load": args.load,
        "counts": dict(ev["counts"]),
        "unexpected": dict(ev["unexpected"]),
        "latency": {
            kind: {
                "firstP50": d.first_p50,
                "lastP50": d.last_p50,
                "p50Ratio": d.p50_ratio,
                "firstP99": d.first_p99,
                "lastP99": d.last_p99,
                "p99Ratio": d.p99_ratio,
                "firstCount": d.first_count,
                "lastCount": d.last_count,
            }
            for kind, d in drifts.items()
        },
        "memoryGrowth": ev["growth"],
        "rssKiB": {"firstMinute": ev["rssFirst"], "end": ev["rssLast"]},
        "audit": {
            "expected": ev["match"].expected,
            "matched": ev["match"].matched,
            "missing": ev["match"].missing,
            "duplicated": ev["match"].duplicated,
            "others": ev["match"].others,
        },
        "spans": ev["spans"],
        "timeline": [{"start": t, "answers": n, "p50": p50, "p99": p99} for t, n, p50, p99 in ev["timeline"]],
        "gcsRssKiB": ev["gcs"],
        "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in ev["checks"]],
    }


def markdown(
    machine: dict[str, Any], args: argparse.Namespace, driven: dict[str, Any], ev: dict[str, Any]
) -> str:
    checks: list[Check] = ev["checks"]
    drifts: dict[str, Drift] = ev["drifts"]
    shortened = f" Shortened run: {args.minutes:g} minutes." if args.minutes < FULL_MINUTES else ""
    window = ev["window"]
    lines = [
        machine_line(
            machine, f"load average {machine['loadavg']} at the start, {machine['loadavgEnd']} at the end"
        ),
        f"Command: `make soak` (`.venv/bin/python bench/soak.py --minutes {args.minutes:g}`).{shortened}",
        "",
        "The platform as `sovereign up --no-examples` starts it (devstack Kubernetes API, OpenBao, operator, "
        "token projector, a local Ray on 2 CPUs), audit on, every component's spans exported over OTLP; "
        "FRA and DEU Tenants, FRA's tiny Llama `fra/analyst` (released to DEU), MiniLM `fra/embedder` and "
        "DataSet `fra/intel-summaries`. Mix per round: "
        + ", ".join(f"{k.weight} {k.name}" for k in KINDS)
        + " (chat and stream: an FRA analyst; grounded: a chat over the DataSet; denied: an FRA user cleared "
        "NATO UNCLASSIFIED asking the NATO RESTRICTED model, 403; cross-nation: a DEU analyst on DEU's "
        f"endpoint asking `fra/analyst`), {16} tokens at most per answer.",
        "",
        f"Capacity measured: **{driven['capacity']:.1f} requests/s** ({args.connections} connections, closed "
        f"loop, {args.capacity_seconds:g} s); driven open loop at {args.load:.0%} of it: "
        f"**{driven['rate']:.1f} requests/s** for {args.minutes:g} min "
        f"({sum(ev['counts'].values())} requests; {ev['spans']} spans received).",
        "",
        "| check | result | numbers |",
        "|---|---|---|",
        *[f"| {c.name} | {'pass' if c.passed else 'FAIL'} | {c.detail} |" for c in checks],
        "",
        f"Latency, first vs last {window:g} s of the soak (ms; ratios last/first):",
        "",
        "| kind | requests | p50 first | p50 last | p50 ratio | p99 first | p99 last | p99 ratio |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {kind} | {ev['counts'].get(kind, sum(ev['counts'].values()))} | {_ms(d.first_p50)} | "
            f"{_ms(d.last_p50)} | {_ratio(d.p50_ratio)} | {_ms(d.first_p99)} | {_ms(d.last_p99)} | "
            f"{_ratio(d.p99_ratio)} |"
            for kind, d in drifts.items()
        ],
        "",
        "Every minute of the soak (all kinds): "
        + ", ".join(
            f"min {int(t // 60) + 1}: {n} answers, p50 {_ms(p50)} ms, p99 {_ms(p99)} ms"
            for t, n, p50, p99 in ev["minutes"]
        )
        + ".",
        "",
        f"Memory (RSS) per process, end of the first {window:g} s vs the end (ratio end/first):",
        "",
        "| process | first (MiB) | end (MiB) | ratio |",
        "|---|---|---|---|",
        *[
            f"| {name} | {ev['rssFirst'][name] / 1024:.0f} | {ev['rssLast'][name] / 1024:.0f} | {ratio:.3f} |"
            for name, ratio in sorted(ev["growth"].items(), key=lambda item: -item[1])
        ],
        "",
        "Audit: decision records matched to the driver's requests by the gateway's trace id "
        "(`traceresponse`), for every request of the run (warm-up and capacity included): "
        + "; ".join(
            f"{nation} {ev['match'].matched[nation]} records for {ev['match'].expected[nation]} decisions"
            for nation in sorted(ev["match"].expected)
        )
        + (
            f" Besides: {', '.join(f'{n} {c}' for n, c in sorted(ev['match'].others.items()) if c)} decision "
            "records of requests the driver gave up on (its 60 s timeout) or of no request of its own."
            if any(ev["match"].others.values())
            else ""
        ),
        "",
        "What the soak found is in the next section.",
    ]
    return "\n".join(lines)


def publish(
    machine: dict[str, Any],
    args: argparse.Namespace,
    driven: dict[str, Any],
    ev: dict[str, Any],
    console: Console,
) -> None:
    replace_benchmark_section(RELIABILITY_MD, SECTION, markdown(machine, args, driven, ev))
    table = Table("check", "result", "numbers")
    for check in ev["checks"]:
        table.add_row(check.name, "[green]pass[/]" if check.passed else "[red]FAIL[/]", check.detail)
    console.print(table)
    if args.output == "json":
        json.dump(results_json(machine, args, driven, ev), sys.stdout, indent=2)
        print()
