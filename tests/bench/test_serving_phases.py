"""The request split of bench/serving_phases.py on data: phases from spans, summaries, py-spy stacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.serving_phases import (
    Sent,
    inclusive_ms,
    phase_summary,
    request_phases,
    short_paths,
    speedscope,
    trace_id_of,
    write_speedscope,
)

TRACE = "0af7651916cd43dd8448eb211c80319c"
MS = 1_000_000  # ns


def span(
    name: str, start_ms: float, end_ms: float, span_id: str, parent: str | None = "s0"
) -> dict[str, Any]:
    return {
        "trace_id": TRACE,
        "span_id": span_id,
        "parent_span_id": parent,
        "name": name,
        "start_ns": int(start_ms * MS),
        "end_ns": int(end_ms * MS),
    }


def request_spans(quota: bool = False) -> list[dict[str, Any]]:
    """One observed request: 10 ms in the replica, of which token 1, policy 0.5, audit 3, model 2.5."""
    spans = [
        span("POST /v1/chat/completions", 0, 10, "s0", parent=None),
        span("authenticate", 0.5, 1.5, "s1"),
        span("policy decide", 1.5, 2.0, "s2"),
        span("audit append", 2.0, 5.0, "s3"),
        span("chat fra/trivial", 6.0, 8.5, "s4"),
        span("engine generate", 6.5, 8.0, "s5", parent="s4"),  # the model replica's: not a phase of ours
    ]
    if quota:
        spans.append(span("quota admit", 1.5, 1.75, "s6"))
    return spans


def test_a_request_is_split_into_its_phases_by_its_trace() -> None:
    phases, incomplete = request_phases(request_spans(), [Sent(TRACE, 0.0135)])
    assert incomplete == 0
    (found,) = phases
    assert found["client"] == pytest.approx(13.5)
    assert found["replica"] == pytest.approx(10)
    assert found["proxy_hop"] == pytest.approx(3.5)
    assert (found["token"], found["policy"], found["audit"], found["model"]) == pytest.approx(
        (1, 0.5, 3, 2.5)
    )
    assert found["quota"] == 0  # served from the replica's lease: no span
    assert found["replica_other"] == pytest.approx(3)


def test_quota_spans_count_when_the_keeper_was_asked() -> None:
    phases, _ = request_phases(request_spans(quota=True), [Sent(TRACE, 0.012)])
    assert phases[0]["quota"] == pytest.approx(0.25)
    assert phases[0]["replica_other"] == pytest.approx(2.75)


@pytest.mark.parametrize("missing", ["POST /v1/chat/completions", "audit append", "chat fra/trivial"])
def test_a_request_without_a_complete_trace_is_left_out_and_counted(missing: str) -> None:
    spans = [s for s in request_spans() if s["name"] != missing]
    assert request_phases(spans, [Sent(TRACE, 0.02)]) == ([], 1)


def test_other_traces_and_unknown_requests_are_not_mixed_in() -> None:
    other = {**span("audit append", 0, 50, "x1"), "trace_id": "1" * 32}
    phases, incomplete = request_phases([*request_spans(), other], [Sent(TRACE, 0.02), Sent("2" * 32, 0.02)])
    assert len(phases) == 1 and incomplete == 1
    assert phases[0]["audit"] == pytest.approx(3)


def test_the_summary_takes_p50_and_p99_of_each_phase_and_the_keeper_share() -> None:
    phases = [
        {"client": float(i), "quota": 1.0 if i % 4 == 0 else 0.0}
        | {p: 0.0 for p in ("proxy_hop", "replica", "token", "policy", "audit", "model", "replica_other")}
        for i in range(100)
    ]
    summary = phase_summary(phases)
    assert summary["requests"] == 100
    assert summary["quota_keeper_share"] == 0.25
    assert summary["phases"]["client"] == {"p50_ms": 50.0, "p99_ms": 99.0}
    assert phase_summary([]) == {"requests": 0}


@pytest.mark.parametrize(
    ("header", "trace_id"),
    [
        (f"00-{TRACE}-b7ad6b7169203331-01", TRACE),
        (None, None),
        ("garbage", None),
        ("00-short-b7ad6b7169203331-01", None),
    ],
)
def test_the_trace_id_comes_from_traceresponse(header: str | None, trace_id: str | None) -> None:
    assert trace_id_of(header) == trace_id


COLLAPSED = "\n".join(
    [
        "run (asyncio/events.py:80);handle (sovereign_serving/gateway/_handlers.py:70) 30",
        "run (threading.py:1)"
        ";worker (opentelemetry/sdk/trace/export/__init__.py:300)"
        ";export (opentelemetry/exporter/otlp/proto/http/trace_exporter/__init__.py:150) 10",
        "run (asyncio/events.py:80);end (opentelemetry/sdk/trace/__init__.py:900) 10",
        "not a stack line",
    ]
)


def test_span_cost_is_the_share_of_stacks_through_opentelemetry() -> None:
    # 50 samples at 100 Hz over 10 requests: 50 ms per request in all.
    assert inclusive_ms(COLLAPSED, ("opentelemetry/",), 100, 10) == 20.0
    assert inclusive_ms(COLLAPSED, ("opentelemetry/exporter/",), 100, 10) == 10.0
    assert inclusive_ms(COLLAPSED, ("opentelemetry/",), 100, 0) == 0.0


def test_the_flame_graph_is_a_speedscope_sampled_profile_of_the_same_stacks(tmp_path: Path) -> None:
    profile = speedscope(COLLAPSED, "observed replica", 100)
    frames = profile["shared"]["frames"]
    (sampled,) = profile["profiles"]
    assert sampled["type"] == "sampled" and sampled["unit"] == "milliseconds"
    assert sampled["weights"] == [300.0, 100.0, 100.0] and sampled["endValue"] == 500.0
    # Root first, as py-spy wrote them; frames shared between stacks.
    first = [frames[i] for i in sampled["samples"][0]]
    assert first == [
        {"name": "run", "file": "asyncio/events.py", "line": 80},
        {"name": "handle", "file": "sovereign_serving/gateway/_handlers.py", "line": 70},
    ]
    assert sampled["samples"][2][0] == sampled["samples"][0][0]
    path = tmp_path / "observed.speedscope.json"
    write_speedscope(COLLAPSED, "observed replica", 100, path)
    assert json.loads(path.read_text()) == profile


def test_full_file_names_are_named_from_their_package_down() -> None:
    stacks = (
        "run (/usr/local/lib/python3.11/threading.py:982)"
        ";end (/srv/.venv/lib/python3.11/site-packages/opentelemetry/sdk/trace/__init__.py:900)"
        ";permit (/srv/app/serving/sovereign_serving/gateway/_access.py:120)"
        ";load (<frozen importlib._bootstrap>:1) 3"
    )
    assert short_paths(stacks, Path("/srv/app")) == (
        "run (python3.11/threading.py:982)"
        ";end (opentelemetry/sdk/trace/__init__.py:900)"
        ";permit (serving/sovereign_serving/gateway/_access.py:120)"
        ";load (<frozen importlib._bootstrap>:1) 3"
    )
