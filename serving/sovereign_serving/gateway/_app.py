"""The nation's gateway: a Ray Serve deployment with a FastAPI ingress speaking the OpenAI API.

Each request: bearer token (own nation's users only) → one request of the caller's quotas (`_ratelimit.py`:
the user's, the nation's, a peer cap) → the body, read up to MAX_BODY_BYTES (413 beyond) → body checks
(unsupported parameters: 400 naming them) → policy decision on the model → the model's `limits` (messages,
characters, embedding inputs: 400 naming the parameter) → the prompt's and `max_tokens`' tokens reserved
(429 if they do not fit; settled with the real usage after the answer) → the model application through a
Ray Serve handle, its `maxTokens` capping the request (a prompt beyond the model's context is
refused there before generating: 400 `context_length_exceeded`) → the answer with its marking in
`X-Sovereign-Classification` and `X-Sovereign-Releasable-To`. Every refusal after authentication is recorded
in the nation's audit log (`_admission.py`); a 401 is counted in a metric only.

Federation (one Ray cluster per nation, kuberay): another nation's model with a `federationUrl` is called
over HTTP at its owner's gateway (`_federation.py`), after this gateway's own decision, with an assertion
this gateway signs as its nation (`_signer.py`, the nation's gateway key in Vault), never the user's token;
without a signer (`GatewayConfig.federation`) nothing is forwarded (503 `federation_unavailable`). The owner
serves such calls on `/federation/v1/...`, the same paths, to a peer gateway's assertion only (a user's
token there: 401), for the route and body it was signed for, used once by any of its replicas
(`_peer_gateway`: the replica's cache, then the nation's QuotaKeeper), only for the models the owner owns,
decided by the owner's policy and charged to the caller's quotas there; the public routes refuse an
assertion (401). Both nations' records of the call carry its `federationLink`.

Datasets (issue 8, `_grounding.py`, `_retrieval.py`): a chat or completion body's `sovereign` extension
names datasets; each is decided (`read`) and audited like the model, searched in its owner's retriever (or
at its owner's gateway, `/federation/v1/sovereign/search`), and the chunks go into the prompt; the answer
lists its sources and is marked with the least upper bound of the model's and the chunks' markings.
`POST /v1/sovereign/search` returns the chunks themselves, decided and audited the same way.

Telemetry (`_telemetry.py`): a SERVER span per request (a trace of its own, linked to the client's
`traceparent`: the audit record's trace id is never the client's), children for
authentication, the policy decision (`_decide`, where every request's `ModelDecision` is made) and the model
call (GenAI CLIENT span, its context passed to the replica as `trace_context`); Ray metrics for token usage
and decisions. Names, codes and counts only, never content.

The config is the deployment's `user_config` (a GatewayConfig), applied by `reconfigure` on every
replica. Fail closed: a bad one is refused and, until a valid one arrives, every request is 503
`config_refused` (the previous config is not served: it may be what the refused one was to change); before
the first valid one every request is 503 `not_configured`.
"""


# No `from __future__ import annotations` here: FastAPI must see the routes' annotations as classes in
# the replica, where Serve rewrites their signatures (strings there are taken for query parameters).

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from pydantic import ValidationError
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import RayServeException
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response, StreamingResponse

from sovereign.domain.markings import Principal
from sovereign.identity.federation_assertions import ReplayCache
from sovereign.serving_contract import GatewayConfig
from sovereign.telemetry import configure_tracing, current_trace_id
from sovereign_serving.audit_writer import AuditClient, AuditUnavailable
from sovereign_serving.engines.base import ContextLengthExceeded
from sovereign_serving.loopback import keep_replica_server_on_loopback

from . import _grounding as grounding_api
from . import _openai as openai_api
from . import _telemetry as telemetry
from ._access import Access, DatasetDecision, ModelDecision, Permitted, check_task
from ._admission import Admission, current_admission, refusal_recorded, set_admission
from ._errors import GatewayError, bad_request, model_failed, unavailable, vault_unavailable
from ._federation import FEDERATION_PREFIX, Federation, current_link, received_link, set_link
from ._ratelimit import QuotaClient, quota_table
from ._retrieval import Retrieval
from ._routes_datasets import DatasetRoutes

APP_STATE_TTL = 2.0  # seconds a read of the model applications' states is reused
MAX_RECORDED_NAME = 256  # an audit record's resource names are at most this long

logger = logging.getLogger("sovereign.gateway")

# FastAPI's own OpenTelemetry instrumentation (on by default since 0.16x) is off: it records the query string,
# logs exception messages and validation inputs (content), and would add a second SERVER span. The gateway's
# `TraceRequests` records the method, the route and the status only.
NO_FASTAPI_TELEMETRY = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
app = FastAPI(
    title="Sovereign gateway", docs_url=None, redoc_url=None, openapi_url=None, telemetry=NO_FASTAPI_TELEMETRY
)
app.add_middleware(telemetry.TraceRequests)


@app.exception_handler(GatewayError)
async def _gateway_error(request: Request, error: GatewayError) -> Response:
    await refusal_recorded(request, error)  # a refusal after authentication goes into the audit log
    return error.response()


@app.exception_handler(StarletteHTTPException)
async def _http_error(_: Request, error: StarletteHTTPException) -> Response:
    kind = "not_found" if error.status_code == 404 else "invalid_request"
    message = "no such route" if error.status_code == 404 else "the request cannot be served"
    return GatewayError(error.status_code, message, code=kind).response()


def _why(error: Exception) -> str:
    """Why a config was refused, without the values it held."""
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
            for e in error.errors(include_input=False, include_url=False)
        )
    return f"{type(error).__name__}: {error}"


def _context_exceeded(error: BaseException) -> ContextLengthExceeded | None:
    """The model server's refusal of a too long prompt, as Ray hands it over (the error itself, or a
    RayTaskError whose cause it is)."""
    for candidate in (error, getattr(error, "cause", None)):
        if isinstance(candidate, ContextLengthExceeded):
            return candidate
    return None


@serve.deployment(name="Gateway")
@serve.ingress(app)
class Gateway(DatasetRoutes):
    """One nation's OpenAI-compatible, policy-enforcing endpoint."""

    def __init__(self) -> None:
        keep_replica_server_on_loopback()
        self._access: Access | None = None  # None: never configured, or the last config was refused
        self._nation: str | None = None  # the nation of the first valid config; it never changes
        self._refused = False  # the last config was refused: every request is 503 `config_refused`
        self._quota: QuotaClient | None = None
        self._handles: dict[str, DeploymentHandle] = {}
        self._app_states: tuple[float, dict[str, str]] = (0.0, {})  # (read at, name → Ray status)
        self._app_state_refresh: asyncio.Future[None] | None = None
        self._federation = Federation()
        self._replay = ReplayCache()  # the jtis of peer gateways' assertions this replica accepted
        self._retrieval = Retrieval(self._handle, lambda app: self._handles.pop(app, None), self._federation)
        self._audit: AuditClient | None = None  # None: the config turns audit off

    async def reconfigure(self, config: dict[str, Any]) -> None:
        try:
            parsed = GatewayConfig.model_validate(config)
            if self._nation is not None and parsed.nation != self._nation:
                raise ValueError(f"the gateway of {self._nation} cannot become {parsed.nation}'s")
            access = Access(parsed)
            quotas = quota_table(parsed)
        except Exception as error:  # noqa: BLE001 — any bad config is refused the same way
            # Fail closed: the previous config may be what the refused one was to change (a suspended
            # nation, a removed model), so nothing is served until a valid config arrives.
            self._access, self._refused = None, True
            logger.error("gateway config refused, every request is denied until a valid one: %s", _why(error))
            return
        self._nation = access.nation
        if self._quota is None:
            self._quota = QuotaClient(access.nation)
            # Once per replica process, with the nation the first valid config names (it never changes).
            configure_tracing("sovereign-gateway", **{"sovereign.tenant": access.nation})
        try:
            await self._quota.configure(quotas)
        except Exception:  # noqa: BLE001 — requests find it unavailable and get 503
            logger.exception("the quota keeper of %s could not be configured", access.nation)
        await self._configure_audit(parsed)
        self._federation.configure(parsed.nation, parsed.federation)
        self._access, self._refused = access, False
        self._handles.clear()
        logger.info(
            "gateway of %s configured: %d issuers, %d models, bundle %s",
            access.nation,
            len(access.issuers),
            len(access.models),
            access.engine.bundle.version,
        )

    def _not_configured(self) -> GatewayError:
        if self._refused:
            return unavailable(
                "the gateway's configuration was refused, so nothing is served until a valid one arrives",
                code="config_refused",
            )
        return unavailable("the gateway is not configured yet", code="not_configured")

    async def _configure_audit(self, config: GatewayConfig) -> None:
        if config.audit is None:
            self._audit = None
            return
        if self._audit is None:
            self._audit = AuditClient(config.nation, config.audit)
        try:
            await self._audit.configure(config.audit)
        except Exception as error:  # noqa: BLE001 — requests then find the writer unavailable and get 503
            failure = type(error).__name__
            logger.error("the audit writer of %s could not be configured: %s", config.nation, failure)

    # SECTION routes

    @app.get("/v1/models")
    async def list_models(self, request: Request) -> Response:
        access, principal = await self._admit(request)
        return JSONResponse(openai_api.model_list(access.visible_models(principal)))

    @app.post("/v1/chat/completions")
    async def chat_completions(self, request: Request) -> Response:
        return await self._generate(request, "chat", openai_api.check_chat)

    @app.post("/v1/completions")
    async def completions(self, request: Request) -> Response:
        return await self._generate(request, "completion", openai_api.check_completion)

    @app.post("/v1/embeddings")
    async def embeddings(self, request: Request) -> Response:
        return await self._embed(request)

    @app.post("/v1/sovereign/search")
    async def search(self, request: Request) -> Response:
        return await self._search(request)

    # Another nation's gateway forwarding its user's request for a model this nation owns.

    @app.post("/federation/v1/chat/completions")
    async def federated_chat_completions(self, request: Request) -> Response:
        return await self._generate(request, "chat", openai_api.check_chat, federated=True)

    @app.post("/federation/v1/completions")
    async def federated_completions(self, request: Request) -> Response:
        return await self._generate(request, "completion", openai_api.check_completion, federated=True)

    @app.post("/federation/v1/embeddings")
    async def federated_embeddings(self, request: Request) -> Response:
        return await self._embed(request, federated=True)

    @app.post("/federation/v1/sovereign/search")
    async def federated_search(self, request: Request) -> Response:
        return await self._search(request, federated=True)

    # SECTION the request path

    async def _admit(self, request: Request, federated: bool = False) -> tuple[Access, Principal]:
        """The authenticated caller, charged one request (its user's, its nation's and, from another
        nation, this nation's cap on it: `_ratelimit.py`); from here on a refusal is audited."""
        set_admission(None)
        access = self._access
        if access is None or self._quota is None:
            raise self._not_configured()
        authorization = request.headers.get("authorization")
        if federated:
            principal = await telemetry.authenticated(
                access.nation, lambda: self._peer_gateway(access, request, authorization)
            )
        else:
            set_link(None)  # a new one if the request reaches another nation's gateway
            principal = await telemetry.authenticated(
                access.nation, lambda: access.authenticate(authorization)
            )
        set_admission(Admission(principal, federated, self._audit))
        await self._quota.admit(principal.issuer_nation, principal.sub)
        return access, principal

    async def _reserve(self, tokens: int) -> None:
        """The request's tokens reserved from its caller's quotas before the model runs (429 if they do
        not fit); `_charge` settles them."""
        admission = current_admission()
        if admission is not None and self._quota is not None:
            admission.reservation = await self._quota.reserve(
                admission.principal.issuer_nation, admission.principal.sub, tokens
            )

    async def _peer_gateway(self, access: Access, request: Request, authorization: str | None) -> Principal:
        """A federation route's caller: a peer nation's gateway assertion for this route and exactly this
        body (read here, up to MAX_BODY_BYTES), never a user's token; its link id goes into the records."""
        body = await openai_api.read_body(request)
        request._body = body  # Starlette's own cache of the body: the route reads these same bytes
        route = request.url.path.rsplit(f"{FEDERATION_PREFIX}/", 1)[-1]
        verified = access.authenticate_gateway(authorization, route, body, self._replay)
        if self._quota is not None:  # once for the nation's gateway, not once per replica
            await self._quota.first_use(verified.jti, verified.expires_at)
        set_link(verified.link)
        return verified.principal

    async def _decide(
        self, access: Access, principal: Principal, model: str, federated: bool
    ) -> ModelDecision:
        """The policy decision on the request's model, allowed or denied, traced, counted and recorded in
        the audit log before anything is answered: every generation and embedding request is decided here."""
        decision = telemetry.decided(
            access.nation, principal, lambda: access.decide_model(principal, model, owned_only=federated)
        )
        await self._record(principal, decision, federated)
        return decision

    async def _record(
        self, principal: Principal, decision: ModelDecision | DatasetDecision, federated: bool
    ) -> None:
        """The decision, durable in this nation's audit log (and the owner's, when another nation's model
        is served from this Ray cluster). Fail closed: without its record, no answer, allowed or denied.
        A cross-nation call (a federation route's, or one this gateway will forward) carries the request's
        `federationLink`, which the owner's record of the same call carries too."""
        if self._audit is None:
            return
        remote = not federated and decision.allowed and self._reached_remotely(decision)
        link = received_link() if federated else current_link() if remote else None
        try:
            await self._audit.record_decision(
                subject=principal.sub,
                subject_nation=principal.issuer_nation,
                resources=[decision.resource[:MAX_RECORDED_NAME]],
                # The owner's own gateway records a call forwarded to it; only same-cluster owners here.
                owners=[decision.owner] if decision.owner and not remote else [],
                allowed=decision.allowed,
                reason_codes=decision.reason_codes,
                policy_ids=decision.deciding_policy_ids,
                bundle_version=decision.bundle_version,
                federated=federated,
                trace_id=current_trace_id(),
                federation_link=link,
            )
            if not decision.allowed and (admission := current_admission()) is not None:
                admission.denial_recorded = True  # its 403 is not recorded again as a refusal
        except AuditUnavailable as error:
            logger.error("request refused, its decision could not be recorded: %s", error)
            if (admission := current_admission()) is not None:
                admission.audit_failed = True
            if error.outage is not None:
                raise vault_unavailable(error.outage) from None
            raise unavailable(
                "the decision cannot be recorded in the audit log, so nothing is served",
                code="audit_unavailable",
            ) from None

    def _reached_remotely(self, decision: ModelDecision | DatasetDecision) -> bool:
        """Whether the decided model or dataset is served at its owner's gateway (it has a federationUrl)."""
        access = self._access
        if access is None:
            return False
        catalogue = access.models if isinstance(decision, ModelDecision) else access.datasets
        found = catalogue.get(decision.resource)
        return found is not None and found.federation_url is not None

    async def _generate(self, request: Request, kind: str, check: Any, federated: bool = False) -> Response:
        access, principal = await self._admit(request, federated)
        body, grounding = grounding_api.grounding_of(
            openai_api.parse_body(await openai_api.read_body(request))
        )
        name = openai_api.model_name(body)
        check(body)
        openai_api.check_supported(body, kind)
        stream = openai_api.wants_stream(body)
        if grounding is not None and stream:  # see _grounding.py: the sources have no place in a stream
            raise bad_request("a grounded answer (`sovereign.datasets`) cannot be streamed", param="stream")
        query = grounding_api.query_of(body, kind) if grounding is not None else ""
        permitted = access.permitted(principal, await self._decide(access, principal, name, federated))
        check_task(permitted, "generate", name)
        openai_api.check_limits(body, permitted.model, kind)
        body = openai_api.capped(body, permitted.model, kind)
        await self._reserve(openai_api.tokens_to_reserve(body, kind))
        if grounding is not None:
            return await self._grounded(access, principal, permitted, kind, body, grounding, query, federated)
        call = telemetry.ModelCall(access.nation, name, kind, body)
        if permitted.model.federation_url and not federated:
            return await self._forward(principal, permitted, kind, body, stream, call)
        method = "chat" if kind == "chat" else "complete"
        if stream:
            return await self._stream(permitted, f"{method}_stream", body, call)
        answer = await self._call(permitted, method, body, call)
        self._charge(openai_api.tokens_used(answer))
        return JSONResponse(answer, headers=permitted.headers())

    async def _embed(self, request: Request, federated: bool = False) -> Response:
        access, principal = await self._admit(request, federated)
        body = openai_api.parse_body(await openai_api.read_body(request))
        name = openai_api.model_name(body)
        openai_api.check_embedding(body)
        openai_api.check_supported(body, "embed")
        permitted = access.permitted(principal, await self._decide(access, principal, name, federated))
        check_task(permitted, "embed", name)
        openai_api.check_limits(body, permitted.model, "embed")
        await self._reserve(openai_api.tokens_to_reserve(body, "embed"))
        call = telemetry.ModelCall(access.nation, name, "embed", body)
        if permitted.model.federation_url and not federated:
            return await self._forward(principal, permitted, "embed", body, False, call)
        answer = await self._call(permitted, "embed", body, call)
        self._charge(openai_api.tokens_used(answer))
        return JSONResponse(answer, headers=permitted.headers())

    async def _forward(
        self,
        principal: Principal,
        permitted: Permitted,
        kind: str,
        body: dict[str, Any],
        stream: bool,
        call: telemetry.ModelCall,
    ) -> Response:
        """Another nation's model, through its owner's gateway (which decides again, and whose spans
        continue this trace: the call's `traceparent` goes along), with this gateway's signed assertion
        for `principal`, never the user's token; a federated request is never forwarded further. The
        owner's spans carry the token usage; this call's span records its duration."""

        def charge(tokens: int | None) -> None:
            self._charge(tokens)
            call.finish()

        tokens = 0
        try:
            with call.current():  # the federation client sends the current span as `traceparent`
                if stream:
                    response = await self._federation.stream(permitted, kind, principal, body, charge)
                else:
                    response, tokens = await self._federation.answer(permitted, kind, principal, body)
        except BaseException as error:
            call.fail(type(error).__name__)
            raise
        if response.status_code >= 400:
            call.fail(str(response.status_code))
        if not stream:  # a stream charges (and ends the call) when it ends
            charge(tokens)
        return response

    async def _running(self, application: str) -> bool:
        """Whether Ray Serve reports the application RUNNING.

        A handle call to an application without a healthy replica (failed integrity check, still
        deploying) waits for one indefinitely; the caller gets 503 at once instead. The states are read in
        the background at most every APP_STATE_TTL seconds by one shared refresh, so requests do not wait
        for Ray's controller; a request waits only when the application is not known yet.
        """
        read_at, states = self._app_states
        stale = time.monotonic() - read_at > APP_STATE_TTL
        if stale and (self._app_state_refresh is None or self._app_state_refresh.done()):
            self._app_state_refresh = asyncio.ensure_future(self._refresh_app_states())
        if application not in states and self._app_state_refresh is not None:
            await asyncio.shield(self._app_state_refresh)
            states = self._app_states[1]
        return states.get(application, "").endswith("RUNNING")

    async def _refresh_app_states(self) -> None:
        try:
            status = await asyncio.to_thread(serve.status)
            states = {name: str(app.status) for name, app in status.applications.items()}
        except Exception as error:  # noqa: BLE001 — unknown state: treat as not running
            logger.warning("cannot read Ray Serve's application states: %s", type(error).__name__)
            states = {}
        self._app_states = (time.monotonic(), states)

    async def _handle(self, application: str) -> DeploymentHandle:
        if not await self._running(application):
            self._charge(0)  # the model never saw the request: its reservation goes back
            raise unavailable("the model is not available right now", code="model_unavailable")
        handle = self._handles.get(application)
        if handle is None:
            try:
                handle = await asyncio.to_thread(serve.get_app_handle, application)
            except RayServeException:
                logger.warning("model application %s is not running", application)
                raise unavailable("the model is not available right now", code="model_unavailable") from None
            self._handles[application] = handle
        return handle

    def _model_error(self, application: str, error: Exception, method: str = "") -> GatewayError:
        beyond = _context_exceeded(error)
        if beyond is not None:  # the model server refused the prompt before generating: the client's 400
            self._charge(0)  # nothing was generated: the reservation goes back
            return GatewayError(
                400,
                f"{beyond}; shorten it",
                param="input" if method == "embed" else "messages" if method.startswith("chat") else "prompt",
                code="context_length_exceeded",
            )
        if isinstance(error, RayServeException | RayActorError):
            self._handles.pop(application, None)
            logger.warning("model application %s unavailable: %s", application, type(error).__name__)
            return unavailable("the model is not available right now", code="model_unavailable")
        logger.warning("model application %s failed: %s", application, type(error).__name__)
        return model_failed()

    async def _call(
        self, permitted: Permitted, method: str, body: dict[str, Any], call: telemetry.ModelCall
    ) -> Any:
        """The model's answer; the replica continues the call's trace from `trace_context`."""
        application = permitted.model.application
        try:
            handle = await self._handle(application)
            answer = await getattr(handle, method).remote(body, trace_context=call.carrier())
        except GatewayError as error:
            call.fail(type(error).__name__)
            raise
        except Exception as error:  # noqa: BLE001 — mapped to 400/502/503 without internals
            call.fail(type(error).__name__)
            raise self._model_error(application, error, method) from None
        call.finish_with(answer)
        return answer

    async def _stream(
        self, permitted: Permitted, method: str, body: dict[str, Any], call: telemetry.ModelCall
    ) -> Response:
        """The answer's chunks as SSE; the call's span ends with the stream (`_events`)."""
        application = permitted.model.application
        try:
            body, include_usage = openai_api.for_streaming(body)
            handle = (await self._handle(application)).options(stream=True)
            chunks = getattr(handle, method).remote(body, trace_context=call.carrier())
            first = await anext(chunks, None)
        except GatewayError as error:
            call.fail(type(error).__name__)
            raise
        except Exception as error:  # noqa: BLE001 — before the first byte: a proper error status
            call.fail(type(error).__name__)
            raise self._model_error(application, error, method) from None
        return StreamingResponse(
            self._events(application, chunks, first, include_usage, call),
            media_type="text/event-stream",
            headers={**permitted.headers(), "Cache-Control": "no-cache"},
        )

    async def _events(
        self, application: str, chunks: Any, first: Any, include_usage: bool, call: telemetry.ModelCall
    ) -> AsyncIterator[bytes]:
        used, counted, finished = 0, 0, False
        usage: dict[str, Any] | None = None
        reasons: list[str] = []
        chunk = first
        try:
            while chunk is not None:
                if openai_api.is_usage_chunk(chunk):
                    used, usage = openai_api.tokens_used(chunk), chunk
                    if include_usage:
                        yield openai_api.sse(chunk)
                else:
                    counted += 1
                    used = openai_api.tokens_used(chunk) or used
                    if isinstance(chunk, dict) and isinstance(chunk.get("usage"), dict):
                        usage = chunk
                    reasons += telemetry.finish_reasons(chunk)
                    yield openai_api.sse(chunk)
                chunk = await anext(chunks, None)
            finished = True
        except Exception as error:  # noqa: BLE001 — mid-stream: an error event, then the end
            call.fail(type(error).__name__)
            yield openai_api.sse(self._model_error(application, error).body())
        finally:  # a stream cancelled or broken before its end pays what it reserved
            self._charge((used or counted) if finished else None)
            last = {"usage": (usage or {}).get("usage"), "choices": [{"finish_reason": r} for r in reasons]}
            call.finish_with(last)
        yield openai_api.DONE

    def _charge(self, tokens: int | None) -> None:
        """Settle the request's reservation with the tokens it used (None: unknown, so it pays what it
        reserved)."""
        admission = current_admission()
        if self._quota is not None and admission is not None and admission.reservation is not None:
            self._quota.settle(admission.reservation, tokens)


def build_app(args: dict[str, Any]) -> serve.Application:
    """The gateway application; `args` may hold `config` (a GatewayConfig dict, its first user_config).

    The operator normally sets the user_config in the Serve config's deployment options instead, which
    is also how it changes it later without restarting the gateway.
    """
    unknown = set(args) - {"config"}
    if unknown:
        raise ValueError(f"unknown gateway arguments: {sorted(unknown)}")
    config = args.get("config")
    deployment = Gateway if config is None else Gateway.options(user_config=config)
    return deployment.bind()
