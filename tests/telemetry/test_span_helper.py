"""The span helper and the receiver: spans reach a real OTLP/HTTP receiver, failures keep only their type."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from sovereign_devstack.otlp_receiver import OtlpReceiver

# Each case runs in its own interpreter: a process installs its tracer provider once.
EMIT = textwrap.dedent(
    """
    from sovereign.telemetry import configure_tracing, flush_tracing, span, carrier, context_from
    assert configure_tracing("probe", **{"sovereign.tenant": "FRA"})
    try:
        with span("outer", attributes={"sovereign.decision": "allow", "skipped": None}):
            with span("inner"):
                raise ValueError("secret-canary-7f3a in the message")
    except ValueError:
        pass
    with span("caller"):
        headers = carrier()
    with span("callee", context=context_from(headers)):
        pass
    flush_tracing()
    """
)


def _emit(receiver: OtlpReceiver, **extra_env: str) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "PATH": "/usr/bin:/bin", **extra_env}
    subprocess.run([sys.executable, "-c", EMIT], env=env, check=True, timeout=60)


@pytest.mark.process
def test_spans_arrive_over_otlp_http_with_their_tenant_and_without_exception_messages(
    otlp_receiver: OtlpReceiver,
) -> None:
    _emit(otlp_receiver)
    spans = {span["name"]: span for span in otlp_receiver.spans()}
    assert set(spans) == {"outer", "inner", "caller", "callee"}
    assert spans["inner"]["parent_span_id"] == spans["outer"]["span_id"]
    assert spans["inner"]["status"] == "STATUS_CODE_ERROR"
    assert spans["inner"]["attributes"] == {"error.type": "ValueError"}
    assert spans["inner"]["events"] == []  # no exception event, which would quote the message
    assert spans["outer"]["attributes"]["sovereign.decision"] == "allow"
    assert "skipped" not in spans["outer"]["attributes"]
    assert spans["outer"]["resource"]["sovereign.tenant"] == "FRA"
    # A carrier continues the trace in the callee.
    assert spans["callee"]["trace_id"] == spans["caller"]["trace_id"]
    assert spans["callee"]["parent_span_id"] == spans["caller"]["span_id"]
    assert all(b"secret-canary-7f3a" not in body for body in otlp_receiver.raw_bodies())


@pytest.mark.process
def test_without_an_endpoint_nothing_is_exported(otlp_receiver: OtlpReceiver) -> None:
    script = EMIT.replace(
        'assert configure_tracing("probe", **{"sovereign.tenant": "FRA"})',
        'assert not configure_tracing("probe")',
    )
    subprocess.run([sys.executable, "-c", script], env={"PATH": "/usr/bin:/bin"}, check=True, timeout=60)
    assert otlp_receiver.spans() == []


@pytest.mark.process
@pytest.mark.parametrize(("batch_env", "exports"), [(None, range(4, 9)), ("512", range(1, 2))])
def test_spans_are_exported_in_batches_of_64_unless_the_sdk_variable_says_otherwise(
    otlp_receiver: OtlpReceiver, batch_env: str | None, exports: range
) -> None:
    """Small batches: encoding one holds the GIL, and a smaller one stalls the process's requests less."""
    script = textwrap.dedent(
        """
        from sovereign.telemetry import configure_tracing, flush_tracing, span
        assert configure_tracing("probe")
        for _ in range(256):
            with span("step"):
                pass
        flush_tracing()
        """
    )
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint, "PATH": "/usr/bin:/bin"}
    if batch_env is not None:
        env["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"] = batch_env
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    assert len(otlp_receiver.spans()) == 256
    assert len(otlp_receiver.raw_bodies()) in exports  # 256 spans: 4 batches of 64 at least, or one


def test_the_receiver_refuses_what_is_not_otlp(otlp_receiver: OtlpReceiver) -> None:
    import httpx

    url = f"{otlp_receiver.endpoint}/v1/traces"
    assert (
        httpx.post(
            url, content=b"\xff\x00garbage", headers={"Content-Type": "application/x-protobuf"}
        ).status_code
        == 400
    )
    assert httpx.post(url, content=b"x", headers={"Content-Type": "text/plain"}).status_code == 415
    assert otlp_receiver.spans() == []
