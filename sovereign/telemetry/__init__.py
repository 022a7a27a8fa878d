"""Traces and metrics for every component, without content.

`configure_tracing(service)` once per process (operator, CLI, each Ray Serve replica) exports spans over
OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT` (the SDK's own environment variables apply: OTEL_BSP_*,
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_SDK_DISABLED; batches of 64 spans unless
OTEL_BSP_MAX_EXPORT_BATCH_SIZE is set); without an endpoint nothing is exported.
`span(...)` opens a span that never records an exception's message (it may quote content): only its type.
`carrier()` / `context_from(carrier)` carry the W3C trace context across Ray Serve handle calls.
`sovereign/clients/` builds its clients with `TracedJSONAdapter` (hvac), `TracedApiClient` (kubernetes) and
`TracedTransport` (httpx): a CLIENT span per call to Vault, Kubernetes or Ray, wherever the clients are used.
`configure_metrics(service, port)` serves Prometheus metrics; `reconcile_span(kind, attributes)` wraps one
reconcile pass (span `reconcile <kind>`, duration histogram and failure counter).

What may go into a span, an event, a log line or a metric: names, nations, markings, decisions, policy ids,
counts and durations. Never prompts, completions, embeddings' inputs, tokens or keys.
"""

from typing import TYPE_CHECKING, Any

from sovereign.telemetry._metrics import (
    DELETED,
    ERROR,
    RETRY,
    SUCCESS,
    Reconcile,
    configure_metrics,
    error_type,
    reconcile_span,
)
from sovereign.telemetry._tracing import (
    OTLP_ENDPOINT_ENV,
    carrier,
    configure_tracing,
    context_from,
    current_trace_id,
    flush_tracing,
    span,
    tracer,
    untraced,
)

__all__ = [
    "DELETED",
    "ERROR",
    "OTLP_ENDPOINT_ENV",
    "RETRY",
    "SUCCESS",
    "Reconcile",
    "TracedApiClient",
    "TracedJSONAdapter",
    "TracedTransport",
    "carrier",
    "configure_metrics",
    "configure_tracing",
    "context_from",
    "current_trace_id",
    "error_type",
    "flush_tracing",
    "reconcile_span",
    "span",
    "tracer",
    "untraced",
]

# The client hooks import hvac, kubernetes and httpx: loaded on first use, so a Ray Serve replica that only
# opens spans does not import the clients it never uses.
if TYPE_CHECKING:
    from sovereign.telemetry._instrument import TracedApiClient, TracedJSONAdapter, TracedTransport

_CLIENT_HOOKS = ("TracedApiClient", "TracedJSONAdapter", "TracedTransport")


def __getattr__(name: str) -> Any:
    if name in _CLIENT_HOOKS:
        from sovereign.telemetry import _instrument

        return getattr(_instrument, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
