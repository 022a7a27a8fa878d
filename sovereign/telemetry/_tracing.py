"""The tracer provider of a process and the content-free span helper (see the package docstring)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

log = logging.getLogger(__name__)

OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
_TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
INSTRUMENTATION = "sovereign"

# Spans per export unless OTEL_BSP_MAX_EXPORT_BATCH_SIZE says otherwise: the exporter's thread encodes a
# batch holding the GIL, which stalls the process's event loop meanwhile; on these machines 64 spans take
# about 1 ms and the SDK's default 512 about 10 ms, which the gateway's p99 showed (BENCHMARKS.md).
EXPORT_BATCH_SPANS = 64
_BATCH_SIZE_ENV = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"

_configured: str | None = None
_lock = threading.Lock()
_UNTRACED = otel_context.create_key("sovereign-untraced")


def configure_tracing(service: str, **resource: str) -> bool:
    """Install the process's tracer provider once; returns whether spans are exported.

    `resource` adds attributes to every span of the process (e.g. `sovereign.tenant`). Without an OTLP
    endpoint in the environment, or with OTEL_SDK_DISABLED=true, the no-op tracer stays and nothing leaves.
    """
    global _configured
    with _lock:
        if _configured is not None:
            return _configured != ""
        endpoint = os.environ.get(_TRACES_ENDPOINT_ENV) or os.environ.get(OTLP_ENDPOINT_ENV)
        if not endpoint or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
            _configured = ""
            return False
        # Imported here: processes without an endpoint never load the exporter.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": service, **resource}))
        # The exporter reads the endpoint, headers and timeout from the OTEL_EXPORTER_OTLP_* variables.
        batch = None if os.environ.get(_BATCH_SIZE_ENV) else EXPORT_BATCH_SPANS  # None: the SDK reads it
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), max_export_batch_size=batch))
        trace.set_tracer_provider(provider)
        _configured = service
        log.info("tracing: %s exports spans over OTLP/HTTP", service)
        return True


def flush_tracing(timeout_millis: int = 5000) -> None:
    """Export what is buffered now (before a short-lived process exits)."""
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush(timeout_millis)


def tracer() -> trace.Tracer:
    return trace.get_tracer(INSTRUMENTATION)


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
    context: otel_context.Context | None = None,
    links: Sequence[trace.Link] = (),
) -> Iterator[Span]:
    """A current span that records a failure as its exception's type only (`error.type`), never its
    message, and re-raises. Attributes whose value is None are left out."""
    if otel_context.get_value(_UNTRACED):
        yield trace.INVALID_SPAN
        return
    clean = {key: value for key, value in (attributes or {}).items() if value is not None}
    with tracer().start_as_current_span(
        name,
        context=context,
        kind=kind,
        attributes=clean,
        links=links,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as error:
            current.set_attribute("error.type", type(error).__name__)
            current.set_status(Status(StatusCode.ERROR))
            raise


def current_trace_id() -> str | None:
    """The current trace's id in hex (as trace viewers show it), or None outside a recorded trace."""
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


@contextmanager
def untraced() -> Iterator[None]:
    """No span inside (housekeeping such as renewing the leader's Lease every few seconds would bury the
    reconciles' traces under thousands of root spans)."""
    token = otel_context.attach(otel_context.set_value(_UNTRACED, True))
    try:
        yield
    finally:
        otel_context.detach(token)


def carrier() -> dict[str, str]:
    """The current trace context as W3C headers (`traceparent`, `tracestate`), to pass along a call."""
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


def context_from(headers: Mapping[str, str] | None) -> otel_context.Context:
    """The trace context a caller passed (HTTP headers or a carrier); an empty one starts a new trace."""
    return propagate.extract(dict(headers or {}))
