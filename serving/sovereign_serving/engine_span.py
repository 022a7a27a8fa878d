"""A model server replica's span and duration metric of one engine call (GenAI semantic conventions).

Every method of the model server takes the caller's W3C trace context (the gateway passes its model call
span's `carrier()`) and opens a SERVER span `engine generate` / `engine embed` as its child, with the model,
the operation and the token counts (never content); its duration also goes to the Ray histogram
`gen_ai_server_request_duration` (Prometheus: `ray_gen_ai_server_request_duration_bucket`).
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from ray.util.metrics import Histogram

from sovereign.serving_contract import ModelServerConfig
from sovereign.telemetry import context_from, tracer

# GenAI semconv: gen_ai.provider.name (a custom value: no well-known one fits a self-hosted platform) and
# the bucket boundaries the GenAI metrics conventions advise for gen_ai.server.request.duration (seconds).
PROVIDER = "sovereign"
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]


def request_duration_histogram() -> Histogram:
    """The replica's histogram of seconds per model call, by tenant, model and operation."""
    return Histogram(
        "gen_ai_server_request_duration",
        description="Seconds per model call in the replica (GenAI gen_ai.server.request.duration).",
        boundaries=DURATION_BUCKETS,
        tag_keys=("tenant", "model", "operation"),
    )


class EngineSpan:
    """The replica's span of one call (GenAI semconv, "Semantic conventions for generative AI spans":
    `gen_ai.operation.name`, `gen_ai.request.model`, `gen_ai.usage.*_tokens`,
    `gen_ai.response.finish_reasons`) as a child of the caller's span (`duration`: the replica's
    `request_duration_histogram`). Not made current: a streamed call
    ends it in a later step of its generator, and nothing inside the engine opens spans. Records the
    request duration when it ends."""

    def __init__(
        self,
        duration: Histogram,
        config: ModelServerConfig,
        name: str,
        operation: str,
        trace_context: dict[str, str] | None,
        max_tokens: int | None = None,
    ) -> None:
        self._tags = {"tenant": config.nation, "model": config.name, "operation": operation}
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.request.model": config.name,
            "sovereign.tenant": config.nation,
        }
        if max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = max_tokens
        self._duration = duration
        self._started = time.perf_counter()
        self.span: Span = tracer().start_span(
            name, context=context_from(trace_context), kind=SpanKind.SERVER, attributes=attributes
        )

    def usage(self, input_tokens: int, output_tokens: int | None, finish_reason: str | None = None) -> None:
        self.span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
        if output_tokens is not None:
            self.span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
        if finish_reason is not None:
            self.span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])

    def end(self, error: BaseException | None = None) -> None:
        if error is not None:  # the type only: a message may quote the request
            self.span.set_attribute("error.type", type(error).__name__)
            self.span.set_status(Status(StatusCode.ERROR))
        self.span.end()
        self._duration.observe(time.perf_counter() - self._started, tags=self._tags)
