"""The gateway's spans and Ray metrics: names, nations, decisions, counts and durations, never content.

Spans (OTel semantic conventions): a SERVER span per request, a new trace linked to the client's
`traceparent` (continuing it only on the federation routes, from another nation's gateway: `_parent`)
("HTTP spans": `{method} {route}`), children `authenticate`, `policy decide`, `audit append` (the record
made durable: the audit client's batching, the writer's call and its fsync) and, when a replica waits for
its nation's QuotaKeeper, `quota admit` / `quota reserve`, and a CLIENT span per model call as the GenAI
conventions name it ("Semantic conventions for generative client AI spans", Inference and Embeddings:
`{gen_ai.operation.name} {gen_ai.request.model}`). The model call's trace context goes to the model replica
with the handle call (`trace_context=`) and to another nation's gateway as `traceparent`.

Metrics: `ray.util.metrics`, exported by each Ray node's metrics agent in Prometheus format with Ray's
`ray_` prefix (`ray_gen_ai_client_token_usage_bucket{tenant,model,token_type}`,
`ray_sovereign_policy_decisions_total{tenant,decision,reason}`, and the 401s, which no nation's audit log
holds: `ray_sovereign_unauthenticated_requests_total{tenant,reason}`). Tags are names and codes only.

What each costs: a span is about 70 µs of the replica's CPU, its export included (measured with the OTLP/HTTP
exporter on this project's 2-core machines), so steps that take microseconds get none: a request served
from its caller's leased permits and reserved tokens (`_ratelimit.py`: most of them, under large quotas)
has no quota span, only one that waits for the keeper (an actor call) does.

Datasets: a `policy decide` span per dataset (`sovereign.dataset`), counted in
`ray_sovereign_dataset_decisions_total{tenant,decision,reason}`; a `retrieve` span holding a CLIENT span per
dataset searched (`retrieve <dataset>`), with dataset names, chunk counts and the answer's marking: never a
query, a chunk's text or a document id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from functools import cache
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from ray.util.metrics import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sovereign.domain.markings import AnswerMarking, Principal
from sovereign.telemetry import context_from, span, tracer

from ._decision_types import DatasetDecision, ModelDecision
from ._errors import GatewayError
from ._routes import Operation

# GenAI semconv, "Generative AI attributes", gen_ai.operation.name (well-known values) by gateway route.
OPERATIONS = {Operation.CHAT: "chat", Operation.COMPLETION: "text_completion", Operation.EMBED: "embeddings"}
# gen_ai.provider.name: no well-known value fits a self-hosted platform; the conventions allow a custom one
# ("SHOULD be set based on the instrumentation's best knowledge"), kept stable across versions.
PROVIDER = "sovereign"
TOKEN_BUCKETS = [
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
]  # as the GenAI metrics conventions advise


@cache
def _token_usage() -> Histogram:
    # Created on first use, in the replica's process (Ray metrics belong to the process that records them).
    return Histogram(
        "gen_ai_client_token_usage",
        description="Tokens used per model call (GenAI semconv gen_ai.client.token.usage).",
        boundaries=TOKEN_BUCKETS,
        tag_keys=("tenant", "model", "token_type"),
    )


@cache
def _decisions() -> Counter:
    return Counter(
        "sovereign_policy_decisions",
        description="Policy decisions on the requested model, by decision and reason code.",
        tag_keys=("tenant", "decision", "reason"),
    )


@cache
def _dataset_decisions() -> Counter:
    return Counter(
        "sovereign_dataset_decisions",
        description="Policy decisions on the datasets requests name, by decision and reason code.",
        tag_keys=("tenant", "decision", "reason"),
    )


@cache
def _unauthenticated() -> Counter:
    return Counter(
        "sovereign_unauthenticated_requests",
        description="Requests refused before authentication (401), by reason code; never in a nation's log.",
        tag_keys=("tenant", "reason"),
    )


class TraceRequests:
    """ASGI middleware: one SERVER span per HTTP request, linked to the client's W3C `traceparent`.

    Pure ASGI (not BaseHTTPMiddleware): the span stays open until the last byte of a streamed answer.
    Only the method, the route and the status are recorded (no query, no headers).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        method = scope["method"]
        # HTTP semconv, "Name": `{method} {http.route}`, or `{method}` alone when no route matched: the route
        # is known once the router matched (it sets `scope["route"]`); a path no route knows is the caller's
        # free text and stays out of the span.
        attributes = {"http.request.method": method}
        parent, links = _parent(scope, headers)
        server = span(method, kind=SpanKind.SERVER, attributes=attributes, context=parent, links=links)
        with server as current:

            async def traced_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    route = getattr(scope.get("route"), "path", None)
                    if isinstance(route, str):
                        current.update_name(f"{method} {route}")
                        current.set_attributes({"http.route": route, "url.path": route})
                    status = int(message["status"])
                    current.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        current.set_status(Status(StatusCode.ERROR))
                        current.set_attribute("error.type", str(status))
                    message = _with_traceresponse(message, current)
                await send(message)

            await self.app(scope, receive, traced_send)


def _with_traceresponse(start: Message, current: Span) -> Message:
    """The response start with the gateway's own trace in `traceresponse` (W3C Trace Context Level 2), so a
    client finds the trace (and the audit record) of its request; nothing when tracing is off."""
    context = current.get_span_context()
    if not context.is_valid:
        return start
    value = f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    return {**start, "headers": [*start.get("headers", []), (b"traceresponse", value.encode())]}


def _parent(scope: Scope, headers: Mapping[str, str]) -> tuple[otel_context.Context, list[trace.Link]]:
    """Where the request's SERVER span hangs. A user's request starts a trace of the gateway's own, linked
    to the client's span: the trace id an audit record carries is never one a client chose (OTel: a new
    trace at a trust boundary, with a link). Only another nation's gateway, on the federation routes,
    continues its trace, so a cross-nation call is one trace in both nations' logs."""
    caller = context_from(headers)
    path = str(scope.get("path", "")).removeprefix(str(scope.get("root_path", "")))
    if path.startswith("/federation/"):
        return caller, []
    remote = trace.get_current_span(caller).get_span_context()
    return otel_context.Context(), [trace.Link(remote)] if remote.is_valid else []


async def authenticated(tenant: str, authenticate: Callable[[], Awaitable[Principal]]) -> Principal:
    """The principal, inside the `authenticate` span (a refusal leaves its error type, never the token)."""
    trace.get_current_span().set_attribute("sovereign.tenant", tenant)  # the request's SERVER span
    with span("authenticate", attributes={"sovereign.tenant": tenant}) as current:
        try:
            principal = await authenticate()
        except GatewayError as refused:  # counted here: nobody's log holds an unauthenticated request
            if refused.status == 401:
                _unauthenticated().inc(tags={"tenant": tenant, "reason": refused.code or "unauthenticated"})
            raise
        current.set_attribute("sovereign.caller.nationality", principal.nationality)
        return principal


def audit_append(tenant: str, event: str) -> AbstractContextManager[Span]:
    """The `audit append` span around one record's way to the durable log (`event`: decision or refusal):
    the client's batching, the writer's call and its fsync."""
    return span("audit append", attributes={"sovereign.tenant": tenant, "sovereign.audit.event": event})


def quota_admit(tenant: str, caller_nation: str, requests: int) -> AbstractContextManager[Span]:
    """`quota admit`: a replica waiting for its nation's QuotaKeeper to lease `requests` permits."""
    return _quota_span("quota admit", tenant, caller_nation, {"sovereign.quota.requests": requests})


def quota_reserve(tenant: str, caller_nation: str, tokens: int) -> AbstractContextManager[Span]:
    """`quota reserve`: a replica waiting for its nation's QuotaKeeper to reserve `tokens` (a pool or one
    request's)."""
    return _quota_span("quota reserve", tenant, caller_nation, {"sovereign.quota.tokens": tokens})


def _quota_span(
    name: str, tenant: str, caller_nation: str, amount: dict[str, int]
) -> AbstractContextManager[Span]:
    # The caller's nation and counts only, never the user.
    attributes = {"sovereign.tenant": tenant, "sovereign.quota.caller_nation": caller_nation, **amount}
    return span(name, attributes=attributes)


D = TypeVar("D", ModelDecision, DatasetDecision)


def _decided(
    tenant: str,
    principal: Principal,
    decide: Callable[[], D],
    described: Callable[[D], dict[str, Any]],
    counter: Callable[[], Counter],
) -> D:
    """A policy decision inside a `policy decide` span (what was decided, why, by which policies of which
    bundle, for whom; `described`: the resource's own attributes), counted by decision and reason."""
    with span("policy decide", attributes={"sovereign.tenant": tenant}) as current:
        decision = decide()
        attributes = {
            "sovereign.decision": decision.decision,
            "sovereign.decision.reasons": list(decision.reason_codes),
            "sovereign.policy.ids": list(decision.deciding_policy_ids),
            "sovereign.policy.bundle_version": decision.bundle_version,
            "sovereign.caller.nationality": principal.nationality,
            **described(decision),
        }
        current.set_attributes({key: value for key, value in attributes.items() if value is not None})
    for reason in decision.reason_codes:
        counter().inc(tags={"tenant": tenant, "decision": decision.decision, "reason": reason})
    return decision


def decided(tenant: str, principal: Principal, decide: Callable[[], ModelDecision]) -> ModelDecision:
    """The policy decision on the model, counted in the decisions metric."""

    def described(decision: ModelDecision) -> dict[str, Any]:
        marking = decision.marking
        return {
            "gen_ai.request.model": decision.model,
            "sovereign.model.owner": decision.owner,
            "sovereign.classification": str(marking.classification) if marking is not None else None,
        }

    return _decided(tenant, principal, decide, described, _decisions)


def decided_dataset(
    tenant: str, principal: Principal, decide: Callable[[], DatasetDecision]
) -> DatasetDecision:
    """The policy decision on one dataset, counted in its own metric."""

    def described(decision: DatasetDecision) -> dict[str, Any]:
        markings = decision.markings
        return {
            "sovereign.dataset": decision.dataset,
            "sovereign.dataset.owner": decision.owner,
            "sovereign.classification": str(markings.classification) if markings is not None else None,
        }

    return _decided(tenant, principal, decide, described, _dataset_decisions)


@contextmanager
def retrieving(tenant: str, datasets: list[str], top_k: int) -> Iterator[Span]:
    """The `retrieve` span around every dataset's search of one request."""
    attributes = {
        "sovereign.tenant": tenant,
        "sovereign.datasets": datasets,
        "sovereign.retrieval.top_k": top_k,
    }
    with span("retrieve", attributes=attributes) as current:
        yield current


@contextmanager
def searching(tenant: str, dataset: str, owner: str, federated: bool) -> Iterator[Span]:
    """The CLIENT span of one dataset's search (a retriever handle, or the owner's gateway over HTTP)."""
    attributes = {
        "sovereign.tenant": tenant,
        "sovereign.dataset": dataset,
        "sovereign.dataset.owner": owner,
        "sovereign.federated": federated,
    }
    with span(f"retrieve {dataset}", kind=SpanKind.CLIENT, attributes=attributes) as current:
        yield current


def marked(marking: AnswerMarking) -> None:
    """The answer's marking on the request's SERVER span."""
    trace.get_current_span().set_attributes(
        {
            "sovereign.classification": str(marking.classification),
            "sovereign.releasable_to": list(marking.releasable_to),
        }
    )


class ModelCall:
    """The CLIENT span of one model call, not made current: a streamed answer ends it in another task.

    GenAI semconv, "Inference" span: request attributes at the start (model, max_tokens, temperature),
    response attributes (finish reasons, usage) at the end; the token counts also go to the
    `gen_ai_client_token_usage` histogram. `finish`/`fail` end it once.
    """

    def __init__(self, tenant: str, model: str, operation: Operation, body: Mapping[str, Any]) -> None:
        self.tenant, self.model = tenant, model
        name = OPERATIONS[operation]
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        temperature = body.get("temperature")
        attributes = {
            "gen_ai.operation.name": name,
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.request.model": model,
            "gen_ai.request.max_tokens": max_tokens if isinstance(max_tokens, int) else None,
            "gen_ai.request.temperature": (
                float(temperature)
                if isinstance(temperature, int | float) and not isinstance(temperature, bool)
                else None
            ),
            "sovereign.tenant": tenant,
        }
        self.span: Span = tracer().start_span(
            f"{name} {model}",
            kind=SpanKind.CLIENT,
            attributes={key: value for key, value in attributes.items() if value is not None},
        )
        self._ended = False

    @contextmanager
    def current(self) -> Iterator[Span]:
        """The span as the current one while the call is made (so HTTP clients can propagate it)."""
        with trace.use_span(
            self.span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        ):
            yield self.span

    def carrier(self) -> dict[str, str]:
        """This call's W3C trace context, for the model replica."""
        headers: dict[str, str] = {}
        propagate.inject(headers, context=trace.set_span_in_context(self.span))
        return headers

    def finish(
        self,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        finish_reasons: list[str] | None = None,
    ) -> None:
        if self._ended:
            return
        self._ended = True
        if finish_reasons:
            self.span.set_attribute("gen_ai.response.finish_reasons", finish_reasons)
        for token_type, count in (("input", input_tokens), ("output", output_tokens)):
            if count is None:
                continue
            self.span.set_attribute(f"gen_ai.usage.{token_type}_tokens", count)
            tags = {"tenant": self.tenant, "model": self.model, "token_type": token_type}
            _token_usage().observe(count, tags=tags)
        self.span.end()

    def finish_with(self, answer: Any) -> None:
        """End with an OpenAI answer's (or last chunk's) usage and finish reasons."""
        usage = answer.get("usage") if isinstance(answer, dict) else None
        usage = usage if isinstance(usage, dict) else {}
        self.finish(
            _int(usage.get("prompt_tokens")),
            _int(usage.get("completion_tokens")) if "completion_tokens" in usage else None,
            finish_reasons(answer),
        )

    def fail(self, error_type: str) -> None:
        if self._ended:
            return
        self.span.set_attribute("error.type", error_type)
        self.span.set_status(Status(StatusCode.ERROR))
        self.finish()


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def finish_reasons(answer: Any) -> list[str]:
    choices = answer.get("choices") if isinstance(answer, dict) else None
    return [
        str(choice["finish_reason"])
        for choice in choices or []
        if isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str)
    ]
