"""Where one request's time goes through the observed gateway: phases from its spans, and flame graphs.

Pure functions over what `serving.py` collects (tested in tests/bench/test_serving_phases.py):
- `request_phases`: for each request the client timed (its latency and the trace id the gateway answered in
  `traceresponse`), the wall time of each phase, from the spans of that trace the OTLP receiver got: the
  SERVER span (the gateway replica's whole ASGI app), its children (`authenticate`, `quota admit` /
  `quota reserve`, `policy decide`, `audit append`, the model's CLIENT span), what is left of the SERVER span
  outside them, and the proxy hop: the client's latency minus the SERVER span (the client, Serve's HTTP
  proxy, its router and the replica's request wrapper, both ways).
- `phase_summary`: median and p99 of each phase over the requests (the medians do not add up: the median of a
  sum is not the sum of the medians); `phase_section`: them as BENCHMARKS.md's sub-section.
- `inclusive_ms`: active ms per request in py-spy's collapsed stacks whose frames match (the spans' share:
  every stack through `opentelemetry/`, in the request path and in the exporter's thread).
- `speedscope`: py-spy's collapsed stacks as a speedscope file (https://www.speedscope.app, or the
  `speedscope` command), a flame graph one opens without the benchmark.

Spans rather than timers kept by the benchmark: the phases are what an SRE sees in the trace viewer, and the
spans are measured on the path they describe (the gateway's code is not changed for the benchmark). A quota
step served from the replica's leased permits or reserved tokens has no span (it takes microseconds, less
than a span costs): it counts as 0 here, and `quota_keeper_share` says how many requests waited for the
keeper.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVER_SPAN = "POST /v1/chat/completions"
# Phase → the child span names whose durations it sums (within one trace).
CHILD_PHASES: dict[str, tuple[str, ...]] = {
    "token": ("authenticate",),
    "quota": ("quota admit", "quota reserve"),
    "policy": ("policy decide",),
    "audit": ("audit append",),
}
MODEL_CALL_PREFIX = "chat "  # the GenAI CLIENT span, `chat <model>`
PHASES = ["client", "proxy_hop", "replica", "token", "quota", "policy", "audit", "model", "replica_other"]
PHASE_LABELS = {
    "client": "client latency (what the client timed)",
    "proxy_hop": "Serve proxy hop (client latency − the gateway's SERVER span)",
    "replica": "gateway replica (its SERVER span)",
    "token": "token check (`authenticate`)",
    "quota": "quota (`quota admit` + `quota reserve`; 0 when served from the replica's lease)",
    "policy": "policy (`policy decide`)",
    "audit": "audit (`audit append`: the writer's call incl. its fsync)",
    "model": "model handle call (`chat fra/trivial`)",
    "replica_other": "rest of the replica (body, answer, middleware, waiting for the event loop)",
}


@dataclass(frozen=True)
class Sent:
    """One request as the client saw it: the gateway's trace id (`traceresponse`) and the latency (s)."""

    trace_id: str
    seconds: float


def trace_id_of(traceresponse: str | None) -> str | None:
    """The trace id of a W3C `traceresponse` header (`00-<trace id>-<span id>-<flags>`)."""
    parts = (traceresponse or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def request_phases(
    spans: Iterable[Mapping[str, Any]], sent: Sequence[Sent]
) -> tuple[list[dict[str, float]], int]:
    """Each timed request's phases in ms, and how many requests had no complete trace (a span dropped or
    not exported yet: left out)."""
    by_trace: dict[str, list[Mapping[str, Any]]] = {}
    wanted = {request.trace_id for request in sent}
    for span in spans:
        if span["trace_id"] in wanted:
            by_trace.setdefault(span["trace_id"], []).append(span)
    phases, incomplete = [], 0
    for request in sent:
        found = _phases(by_trace.get(request.trace_id, []), request.seconds * 1e3)
        if found is None:
            incomplete += 1
        else:
            phases.append(found)
    return phases, incomplete


def _ms(span: Mapping[str, Any]) -> float:
    return (int(span["end_ns"]) - int(span["start_ns"])) / 1e6


def _phases(spans: list[Mapping[str, Any]], client_ms: float) -> dict[str, float] | None:
    server = next((s for s in spans if s["name"] == SERVER_SPAN and s["parent_span_id"] is None), None)
    if server is None:
        return None
    children = [s for s in spans if s["parent_span_id"] == server["span_id"]]
    model = [s for s in children if s["name"].startswith(MODEL_CALL_PREFIX)]
    names = {s["name"] for s in children}
    if not model or not all(names & set(CHILD_PHASES[p]) for p in ("token", "policy", "audit")):
        return None
    phases = {
        phase: sum(_ms(s) for s in children if s["name"] in span_names)
        for phase, span_names in CHILD_PHASES.items()
    }
    phases["model"] = sum(_ms(s) for s in model)
    phases["replica"] = _ms(server)
    phases["replica_other"] = phases["replica"] - sum(phases[p] for p in (*CHILD_PHASES, "model"))
    phases["client"] = client_ms
    phases["proxy_hop"] = client_ms - phases["replica"]
    return phases


def percentile(values: Sequence[float], fraction: float) -> float:
    """As `serving._summary` takes them: the value at that rank of the sorted values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def phase_summary(phases: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """p50 / p99 (ms) of every phase over the requests, how many there were, and the share of them that
    waited for the QuotaKeeper."""
    if not phases:
        return {"requests": 0}
    return {
        "requests": len(phases),
        "quota_keeper_share": sum(1 for p in phases if p["quota"] > 0) / len(phases),
        "phases": {
            phase: {
                "p50_ms": round(percentile([p[phase] for p in phases], 0.50), 3),
                "p99_ms": round(percentile([p[phase] for p in phases], 0.99), 3),
            }
            for phase in PHASES
        },
    }


def phase_section(results: dict[str, Any]) -> list[str]:
    """BENCHMARKS.md's sub-section splitting one request through the observed gateway (spans exported, audit
    durable) into phases, at `--concurrency` connections and at one (`results`: serving.py's)."""
    o, overhead = results["observability"], results["overhead"]
    ways = [("concurrency", f"{o['concurrency']} connections"), ("one_connection", "1 connection")]
    summaries = [o["phases"][way] for way, _ in ways]
    lines = [
        "### Where one request's time goes (observability on)",
        "",
        "| phase | " + " | ".join(f"{label}: p50 / p99 ms" for _, label in ways) + " |",
        "|---|" + "---|" * len(ways),
    ]

    def cells(summary: dict[str, Any], phase: str) -> str:
        found = summary.get("phases", {}).get(phase)
        return f"{found['p50_ms']:.2f} / {found['p99_ms']:.2f}" if found else "–"

    for phase in PHASES:
        lines.append(f"| {PHASE_LABELS[phase]} | " + " | ".join(cells(s, phase) for s in summaries) + " |")

    def reference(label: str, many: dict[str, Any], one: dict[str, Any]) -> None:
        values = [f"{x['p50_ms']:.2f} / {x['p99_ms']:.2f}" for x in (many, one)]
        lines.append(f"| {label} | " + " | ".join(values) + " |")

    reference(
        "reference: bare ingress, client latency (overhead part)",
        overhead["baseline_bare_ingress"],
        overhead["one_connection"]["baseline_bare_ingress"],
    )
    reference(
        "reference: gateway, observability off, client latency",
        o["observability_off"],
        o["one_connection"]["observability_off"],
    )
    replica = (o.get("profile") or {}).get("observed", {}).get("replica")
    if replica:
        lines.append(
            f"| spans (CPU, not wall: `--profile`, ms per request at {o['concurrency']} connections) | "
            f"{replica['spans_ms']:.2f} (export {replica['span_export_ms']:.2f}) of the replica's "
            f"{replica['cpu_ms_per_request']:.2f} | |"
        )
    counts = ", ".join(
        f"{label}: {s['requests']} requests ({s['incomplete_traces']} without a complete trace, left out), "
        f"{s.get('quota_keeper_share', 0) * 100:.1f} % waited for the QuotaKeeper"
        for s, (_, label) in zip(summaries, ways, strict=True)
    )
    batching = (
        f" The audit writer was called {o['audit_writer_calls']} times for {o['audit_records_written']} "
        "records (the replica's client sends the records that arrive while a call is in flight together)."
        if o.get("audit_writer_calls")
        else ""
    )
    lines += [
        "",
        "Wall time per phase of the observed gateway's measured requests (the rounds and the one-connection "
        "run above), from the spans its replica exported, matched to the client's latency by the trace id "
        "the gateway answers in `traceresponse` (bench/serving_phases.py). Phases are children of the "
        "request's SERVER span; the proxy hop is the client's latency minus that span (the client, Serve's "
        "HTTP proxy, its router, the replica's request wrapper, both ways). Medians and p99s do not add up "
        "(each is taken over the requests on its own). A quota step served from the replica's leased "
        "permits and reserved tokens takes microseconds and has no span: it counts as 0. "
        + counts
        + "."
        + batching,
    ]
    return lines


def short_paths(collapsed: str, root: Path) -> str:
    """py-spy's stacks recorded with `--full-filenames`, each file named from its package down
    (`opentelemetry/sdk/trace/__init__.py`, `python3.11/threading.py`, `serving/sovereign_serving/...`).
    py-spy's own shortening drops the top of namespace packages (OpenTelemetry's `sdk/trace/__init__.py`
    becomes `trace/__init__.py`), so their frames could not be told apart."""
    collapsed = _SITE_PACKAGES.sub("(", collapsed)
    collapsed = _STDLIB.sub(r"(\1", collapsed)
    return collapsed.replace(f"({root}/", "(")


_SITE_PACKAGES = re.compile(r"\([^;()]*/site-packages/")
_STDLIB = re.compile(r"\([^;()]*/lib/(python3\.\d+/)")


def _stacks(collapsed: str) -> Iterable[tuple[list[str], int]]:
    """py-spy's raw output: `frame;frame;... count` per line, root first."""
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield stack.split(";"), int(count)


def inclusive_ms(collapsed: str, marks: Sequence[str], rate: int, requests: float) -> float:
    """Active ms per request in stacks with a frame holding any of `marks` (a path part)."""
    samples = sum(count for frames, count in _stacks(collapsed) if any(m in f for f in frames for m in marks))
    return round(samples / rate / requests * 1e3, 3) if requests else 0.0


def speedscope(collapsed: str, name: str, rate: int) -> dict[str, Any]:
    """A speedscope "sampled" profile of py-spy's collapsed stacks, weights in ms (samples at `rate` Hz)."""
    frames: dict[str, int] = {}
    samples, weights = [], []
    for stack, count in _stacks(collapsed):
        samples.append([frames.setdefault(frame, len(frames)) for frame in stack])
        weights.append(count * 1e3 / rate)
    return {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "name": name,
        "exporter": "sovereign bench/serving.py (py-spy raw stacks)",
        "activeProfileIndex": 0,
        "shared": {"frames": [_speedscope_frame(frame) for frame in frames]},
        "profiles": [
            {
                "type": "sampled",
                "name": name,
                "unit": "milliseconds",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            }
        ],
    }


def _speedscope_frame(frame: str) -> dict[str, Any]:
    """py-spy's `function (path/mod.py:12)` → a speedscope frame."""
    function, _, where = frame.partition(" (")
    path, _, line = where.rstrip(")").rpartition(":")
    if not path or not line.isdigit():
        return {"name": frame}
    return {"name": function, "file": path, "line": int(line)}


def write_speedscope(collapsed: str, name: str, rate: int, path: Path) -> None:
    path.write_text(json.dumps(speedscope(collapsed, name, rate)))
