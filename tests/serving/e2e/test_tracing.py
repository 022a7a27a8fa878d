"""Traces, metrics and audit of the serving path, as the platform's SREs and a nation's auditors see them:
the client's trace continued by the nation's gateway and the model replica in a real OTLP/HTTP receiver,
nothing of a prompt or a token in any span, export or log, the replicas' metrics on the Ray node's Prometheus
endpoint, and every decision in the audit logs of the nations it involves, under the request's trace id.

One platform and one local Ray for the module: the operator and the Ray head get the receiver as their
OTEL_EXPORTER_OTLP_ENDPOINT (the replicas inherit the head's environment), with a short batch delay; the
operator gets an audit directory, as `sovereign up` gives it one.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sovereign_devstack.otlp_receiver import OtlpReceiver

from tests.helpers import wait_until
from tests.operator.harness import Platform
from tests.serving.e2e.harness import SOVEREIGN, Serving, running_local_ray, serving_platform

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as started:
        yield started


@pytest.fixture(scope="module")
def ray_temp_dir() -> Iterator[Path]:
    # The Ray session (and its logs) of this module only; short, as Ray's socket paths must stay < 108 chars.
    path = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def audit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit")


@pytest.fixture(scope="module")
def traced(
    platform: Platform,
    receiver: OtlpReceiver,
    ray_temp_dir: Path,
    audit_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Serving]:
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    audit = {
        "SOVEREIGN_AUDIT_DIR": str(audit_dir),
        "SOVEREIGN_SERVICE_ACCOUNT_TOKEN_DIR": str(tmp_path_factory.mktemp("serviceaccount-tokens")),
    }
    # Ray's metrics agent reports every 10 s by default; 1 s keeps the metrics test short.
    ray_env = {**otel, "RAY_TMPDIR": str(ray_temp_dir), "RAY_metrics_report_interval_ms": "1000"}
    with contextlib.ExitStack() as stack:
        local_ray, _ = stack.enter_context(running_local_ray(tmp_path_factory.mktemp("ray"), ray_env))
        operator, models, digests = stack.enter_context(
            serving_platform(platform, local_ray, tmp_path_factory, {**otel, **audit})
        )
        serving = Serving(platform, local_ray, operator, models, digests)
        serving.apply_analyst_and_embedder()
        yield serving


def client(serving: Serving, nation: str, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=serving.endpoint(nation), api_key=token, max_retries=0, timeout=60)


def traceparent() -> tuple[str, str, str]:
    """A client's own span context: (trace id, span id, W3C traceparent header)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def gateway_trace(receiver: OtlpReceiver, client_trace_id: str) -> str:
    """The trace the gateway started for a client's request: a user's request never continues the client's
    trace (the audit record's trace id is never one a client chose); its SERVER span links the client's."""

    def started() -> str | None:
        for span in receiver.spans():
            linked = {link["trace_id"] for link in span["links"]}
            if span["kind"] == "SPAN_KIND_SERVER" and client_trace_id in linked:
                return str(span["trace_id"])
        return None

    trace_id = wait_until(started, f"the gateway's trace linking {client_trace_id}", timeout=30)
    assert trace_id != client_trace_id
    return trace_id


def trace_spans(receiver: OtlpReceiver, client_trace_id: str, *names: str) -> dict[str, dict[str, Any]]:
    """The spans of the trace the gateway started for the client's, by name, once every one of `names`
    has arrived."""
    trace_id = gateway_trace(receiver, client_trace_id)

    def arrived() -> dict[str, dict[str, Any]] | None:
        spans = {span["name"]: span for span in receiver.spans() if span["trace_id"] == trace_id}
        return spans if set(names) <= set(spans) else None

    return wait_until(arrived, f"spans {names} of trace {trace_id}", timeout=30)


def assert_gateway_spans(
    spans: dict[str, dict[str, Any]],
    server_name: str,
    client_span_id: str,
    nation: str,
    model: str,
    overlapped: bool = False,
) -> dict[str, Any]:
    """The gateway's SERVER span starts its trace, linked to the client's span; authentication, the
    allowing decision and its audit record are its children. The record is durable before the model is
    called or, `overlapped` (the nation's own model, streamed or not), while it is called: it started first
    and ended before the answer. Returns the decision span."""
    server = spans[server_name]
    assert server["kind"] == "SPAN_KIND_SERVER"
    assert server["parent_span_id"] is None
    assert [link["span_id"] for link in server["links"]] == [client_span_id]
    assert server["attributes"]["http.response.status_code"] == 200
    assert server["resource"]["sovereign.tenant"] == nation
    for child in ("authenticate", "policy decide", "audit append"):
        assert spans[child]["parent_span_id"] == server["span_id"]
    assert spans["authenticate"]["attributes"]["sovereign.caller.nationality"] == nation
    # The decision made durable (the writer's call and its fsync): names and counts only. No quota span: the
    # quotas here are large, so permits come from the replica's lease.
    record = spans["audit append"]
    assert record["attributes"] == {"sovereign.tenant": nation, "sovereign.audit.event": "decision"}
    model_call = min(s["start_ns"] for s in spans.values() if s["kind"] == "SPAN_KIND_CLIENT")
    if overlapped:
        assert record["start_ns"] <= model_call and record["end_ns"] <= server["end_ns"]
    else:
        assert record["end_ns"] <= model_call
    decision = spans["policy decide"]["attributes"]
    assert decision["sovereign.decision"] == "allow"
    assert decision["sovereign.tenant"] == nation
    assert decision["sovereign.caller.nationality"] == nation
    assert decision["gen_ai.request.model"] == model
    assert decision["sovereign.policy.ids"] and all(
        isinstance(i, str) for i in decision["sovereign.policy.ids"]
    )
    assert re.fullmatch(r"[0-9a-f]{16}", decision["sovereign.policy.bundle_version"])
    return decision


def test_a_chat_request_is_one_trace_from_the_client_to_the_model_replica(
    traced: Serving, receiver: OtlpReceiver
) -> None:
    trace_id, client_span, header = traceparent()
    fra = client(traced, "fra", traced.token("FRA", "NATO SECRET"))
    answer = fra.chat.completions.create(
        model="fra/analyst",
        messages=[{"role": "user", "content": "Status report?"}],
        max_tokens=8,
        temperature=0,
        extra_headers={"traceparent": header},
    )
    assert answer.usage is not None
    spans = trace_spans(
        receiver,
        trace_id,
        "POST /v1/chat/completions",
        "authenticate",
        "policy decide",
        "audit append",
        "chat fra/analyst",
        "engine generate",
    )
    decision = assert_gateway_spans(
        spans, "POST /v1/chat/completions", client_span, "FRA", "fra/analyst", overlapped=True
    )
    assert decision["sovereign.classification"] == "NATO RESTRICTED"

    # GenAI semconv "Inference" span: a CLIENT span of the gateway with the request and the real usage.
    call = spans["chat fra/analyst"]
    assert call["kind"] == "SPAN_KIND_CLIENT"
    assert call["parent_span_id"] == spans["POST /v1/chat/completions"]["span_id"]
    assert call["attributes"] == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "sovereign",
        "gen_ai.request.model": "fra/analyst",
        "gen_ai.request.max_tokens": 8,
        "gen_ai.request.temperature": 0.0,
        "gen_ai.response.finish_reasons": [answer.choices[0].finish_reason],
        "gen_ai.usage.input_tokens": answer.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": answer.usage.completion_tokens,
        "sovereign.tenant": "FRA",
    }
    # The model replica's span, in another Ray process, continues the model call.
    engine = spans["engine generate"]
    assert engine["parent_span_id"] == call["span_id"]
    assert engine["service"] == "sovereign-model-server" and engine["resource"]["sovereign.tenant"] == "FRA"
    assert engine["attributes"]["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert engine["attributes"]["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens
    assert spans["POST /v1/chat/completions"]["service"] == "sovereign-gateway"


def test_a_streamed_chat_and_an_embedding_are_traced_to_their_ends(
    traced: Serving, receiver: OtlpReceiver
) -> None:
    trace_id, client_span, header = traceparent()
    fra = client(traced, "fra", traced.token("FRA", "NATO SECRET"))
    chunks = list(
        fra.chat.completions.create(
            model="fra/analyst",
            messages=[{"role": "user", "content": "Stream it"}],
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"traceparent": header},
        )
    )
    usage = chunks[-1].usage
    assert usage is not None
    spans = trace_spans(
        receiver, trace_id, "POST /v1/chat/completions", "chat fra/analyst", "engine generate"
    )
    # The stream starts while its record is on its way; its first byte waited for the record.
    assert_gateway_spans(
        spans, "POST /v1/chat/completions", client_span, "FRA", "fra/analyst", overlapped=True
    )
    call = spans["chat fra/analyst"]
    # The call's span ends with the stream: it holds the usage of the last chunk.
    assert call["attributes"]["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert call["attributes"]["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert call["attributes"]["gen_ai.response.finish_reasons"]
    assert call["end_ns"] <= spans["POST /v1/chat/completions"]["end_ns"]
    assert spans["engine generate"]["parent_span_id"] == call["span_id"]

    trace_id, client_span, header = traceparent()
    deu = client(traced, "deu", traced.token("DEU", "NATO CONFIDENTIAL"))
    embedded = deu.embeddings.create(
        model="deu/embedder", input="two words", extra_headers={"traceparent": header}
    )
    spans = trace_spans(receiver, trace_id, "POST /v1/embeddings", "embeddings deu/embedder", "engine embed")
    assert_gateway_spans(spans, "POST /v1/embeddings", client_span, "DEU", "deu/embedder", overlapped=True)
    call = spans["embeddings deu/embedder"]
    assert call["attributes"]["gen_ai.operation.name"] == "embeddings"
    assert call["attributes"]["gen_ai.usage.input_tokens"] == embedded.usage.prompt_tokens
    assert spans["engine embed"]["parent_span_id"] == call["span_id"]


def _files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (path for path in root.rglob("*") if path.is_file() and not path.is_symlink())


def test_no_prompt_and_no_token_in_any_span_export_or_log(
    traced: Serving, receiver: OtlpReceiver, ray_temp_dir: Path
) -> None:
    secret = uuid.uuid4().hex
    fra_token = traced.token("FRA", "NATO SECRET")
    pol_token = traced.token("POL", "NATO SECRET")
    prompt = [{"role": "user", "content": f"The code word is {secret}. Repeat it."}]
    client(traced, "fra", fra_token).chat.completions.create(
        model="fra/analyst", messages=prompt, max_tokens=4
    )
    # POL has no release of fra/analyst: refused, and the refusal is traced as a deny.
    trace_id, client_span, header = traceparent()
    with pytest.raises(openai.PermissionDeniedError):
        client(traced, "pol", pol_token).chat.completions.create(
            model="fra/analyst", messages=prompt, extra_headers={"traceparent": header}
        )
    spans = trace_spans(receiver, trace_id, "POST /v1/chat/completions", "policy decide", "audit append")
    assert spans["audit append"]["attributes"]["sovereign.audit.event"] == "decision"  # the denial's record
    denied = spans["policy decide"]["attributes"]
    assert denied["sovereign.decision"] == "deny" and denied["sovereign.tenant"] == "POL"
    assert denied["sovereign.decision.reasons"] and "sovereign.classification" not in denied
    assert spans["POST /v1/chat/completions"]["attributes"]["http.response.status_code"] == 403
    assert [link["span_id"] for link in spans["POST /v1/chat/completions"]["links"]] == [client_span]
    assert not any(name.startswith("chat ") for name in spans)  # no model call after a deny
    wait_until(
        lambda: any(
            s["name"] == "engine generate" and s["attributes"].get("gen_ai.request.max_tokens") == 4
            for s in receiver.spans()
        ),
        "the replica's span of the request with the secret",
    )

    needles = {"the prompt's secret": secret.encode()}
    for name, token in (("FRA's token", fra_token), ("POL's token", pol_token)):
        needles[name] = token.encode()
        needles[f"{name} signature"] = token.rsplit(".", 1)[-1].encode()
    bodies = receiver.raw_bodies()
    assert bodies
    attributes = repr([(s["attributes"], s["events"], s["resource"]) for s in receiver.spans()]).encode()
    logs = list(_files(ray_temp_dir, traced.ray.state_dir / "logs", traced.operator.log_path))
    # The scan reads what Ray Serve wrote for this module's requests: its access log of the refused one.
    assert any(b"/pol/v1/chat/completions" in path.read_bytes() for path in logs)
    for what, needle in needles.items():
        assert not any(needle in body for body in bodies), f"{what} in an OTLP export"
        assert needle not in attributes, f"{what} in a span attribute"
        leaked = [path for path in logs if needle in path.read_bytes()]
        assert not leaked, f"{what} in {leaked}"


def _series(text: str, metric: str, **labels: str) -> list[float]:
    """The values of `metric`'s samples whose labels include `labels` (Prometheus text format)."""
    found = []
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        if name != metric:
            continue
        label_text, _, value = rest.rpartition("}")
        sample = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', label_text))
        if all(sample.get(key) == wanted for key, wanted in labels.items()):
            found.append(float(value.split()[0]))
    return found


def test_token_usage_durations_and_decisions_on_the_ray_metrics_endpoint(traced: Serving) -> None:
    fra = client(traced, "fra", traced.token("FRA", "NATO SECRET"))
    fra.chat.completions.create(
        model="fra/analyst", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    with pytest.raises(openai.PermissionDeniedError):
        client(traced, "pol", traced.token("POL", "NATO SECRET")).chat.completions.create(
            model="fra/analyst", messages=[{"role": "user", "content": "hi"}]
        )

    def scraped() -> str | None:
        text = httpx.get(traced.ray.metrics_url, timeout=10).text
        wanted = [
            _series(
                text,
                "ray_gen_ai_client_token_usage_count",
                tenant="FRA",
                model="fra/analyst",
                token_type=token_type,
            )
            for token_type in ("input", "output")
        ] + [
            _series(text, "ray_gen_ai_server_request_duration_count", tenant="FRA", model="fra/analyst"),
            _series(
                text,
                "ray_sovereign_policy_decisions_total",
                tenant="FRA",
                decision="allow",
                reason="permitted",
            ),
            _series(text, "ray_sovereign_policy_decisions_total", tenant="POL", decision="deny"),
        ]
        return text if all(values and max(values) >= 1 for values in wanted) else None

    text = wait_until(
        scraped, "the serving metrics on the Ray node's metrics endpoint", timeout=60, interval=1
    )
    # Tags are names and codes: no label value is longer than a model name or a code.
    labels = re.findall(
        r'(\w+)="([^"]*)"', "\n".join(line for line in text.splitlines() if "sovereign" in line)
    )
    assert labels and all(len(value) < 80 for _, value in labels)


def audit_records(serving: Serving, audit_dir: Path, nation: str) -> list[dict[str, Any]]:
    """The nation's decision records, as its auditors read them (`sovereign audit show`, its own role)."""
    shown = subprocess.run(
        [
            *SOVEREIGN,
            "audit",
            "show",
            "--nation",
            nation,
            "--dir",
            str(audit_dir / nation.lower()),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=serving.cli_env(),
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    return [record for record in json.loads(shown.stdout) if record["kind"] == "decision"]


def test_every_decision_is_in_the_audit_logs_of_the_nations_involved_under_its_trace_id(
    traced: Serving, audit_dir: Path, receiver: OtlpReceiver
) -> None:
    """Under the trace the gateway started (never the client's: a client cannot choose the id an audit
    record carries), in both nations' logs."""
    secret = uuid.uuid4().hex
    prompt = [{"role": "user", "content": f"Brief me on {secret}."}]
    allowed_trace, _, allowed_header = traceparent()
    # DEU's analyst on FRA's model, released to DEU: in DEU's log (the caller's gateway) and FRA's (owner).
    client(traced, "deu", traced.token("DEU", "NATO CONFIDENTIAL")).chat.completions.create(
        model="fra/analyst", messages=prompt, max_tokens=4, extra_headers={"traceparent": allowed_header}
    )
    denied_trace, _, denied_header = traceparent()
    with pytest.raises(openai.PermissionDeniedError):
        client(traced, "pol", traced.token("POL", "NATO SECRET")).chat.completions.create(
            model="fra/analyst", messages=prompt, extra_headers={"traceparent": denied_header}
        )

    client_traces = (allowed_trace, denied_trace)
    allowed_trace, denied_trace = (gateway_trace(receiver, client_trace) for client_trace in client_traces)
    by_trace = {
        nation: {r["details"].get("traceId"): r for r in audit_records(traced, audit_dir, nation)}
        for nation in ("FRA", "DEU", "POL")
    }
    for nation in ("DEU", "FRA"):
        record = by_trace[nation][allowed_trace]
        assert record["decision"]["outcome"] == "allowed" and record["resources"] == ["fra/analyst"]
        assert record["actor"]["nation"] == "DEU" and record["details"]["gateway"] == "DEU"
        assert record["decision"]["policyIds"] and record["decision"]["bundleVersion"]
    # The refusal is in the caller's log and, as an attempt on its model, in the owner's; never in DEU's.
    for nation in ("POL", "FRA"):
        record = by_trace[nation][denied_trace]
        assert record["decision"]["outcome"] == "denied" and record["actor"]["nation"] == "POL"
        assert record["details"]["reasonCodes"]
    assert denied_trace not in by_trace["DEU"]
    assert not set(client_traces) & {trace for records in by_trace.values() for trace in records}
    assert secret not in json.dumps(by_trace)

    verified = subprocess.run(
        [*SOVEREIGN, "audit", "verify", "--nation", "FRA", "--dir", str(audit_dir / "fra"), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=traced.cli_env(),
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] and report["streams"]["decisions"]["lastSeq"] >= 2


def test_a_path_no_route_knows_stays_out_of_the_trace(traced: Serving, receiver: OtlpReceiver) -> None:
    """The gateway names its SERVER span after the matched route; an unknown path is the caller's free
    text (it could be anything), so the span is named by the method alone and the path is not recorded."""
    secret = uuid.uuid4().hex
    trace_id, client_span, header = traceparent()
    answer = httpx.get(f"{traced.endpoint('fra')}/{secret}", headers={"traceparent": header}, timeout=30)
    assert answer.status_code == 404
    server = trace_spans(receiver, trace_id, "GET")["GET"]
    assert server["parent_span_id"] is None
    assert [link["span_id"] for link in server["links"]] == [client_span]
    # The gateway tells the client its own trace (W3C `traceresponse`), the one its audit records carry.
    assert answer.headers["traceresponse"].startswith(f"00-{server['trace_id']}-{server['span_id']}-")
    assert server["attributes"]["http.response.status_code"] == 404
    assert "http.route" not in server["attributes"] and "url.path" not in server["attributes"]
    assert not any(secret.encode() in body for body in receiver.raw_bodies())
