"""Traces and metrics for every component, without content.

`configure_tracing(service)` once per process (operator, CLI, each Ray Serve replica) exports spans over
OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT` (the SDK's own environment variables apply: OTEL_BSP_*,
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_SDK_DISABLED); without an endpoint nothing is exported.
`span(...)` opens a span that never records an exception's message (it may quote content): only its type.
`carrier()` / `context_from(carrier)` carry the W3C trace context across Ray Serve handle calls.

What may go into a span, an event, a log line or a metric: names, nations, markings, decisions, policy ids,
counts and durations. Never prompts, completions, embeddings' inputs, tokens or keys.
"""

from sovereign.telemetry._tracing import (
    OTLP_ENDPOINT_ENV,
    carrier,
    configure_tracing,
    context_from,
    flush_tracing,
    span,
    tracer,
)

__all__ = [
    "OTLP_ENDPOINT_ENV",
    "carrier",
    "configure_tracing",
    "context_from",
    "flush_tracing",
    "span",
    "tracer",
]
