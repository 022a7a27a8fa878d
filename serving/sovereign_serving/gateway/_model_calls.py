"""Model calls: the model applications of this Ray cluster through Ray Serve handles, whole answers and SSE
streams, and their failures as the client's 400, 502 or 503.

A handle call to an application without a healthy replica (failed integrity check, still deploying) waits for
one indefinitely, so an application Ray Serve does not report RUNNING is 503 at once; the states are read in
the background at most every APP_STATE_TTL seconds. The replica continues the call's trace from
`trace_context`. A call that ends without the model's usage pays what it reserved (`_admission.charge`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, RayServeException
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator
from starlette.responses import Response, StreamingResponse

from sovereign_serving.engines.base import ContextLengthExceeded

from . import _openai as openai_api
from . import _telemetry as telemetry
from ._admission import charge
from ._decision_types import Permitted
from ._decisions import DURABLE, Recording, answered_when_durable, durable_first
from ._errors import GatewayError, model_failed, unavailable
from ._routes import Operation

APP_STATE_TTL = 2.0  # seconds a read of the model applications' states is reused

logger = logging.getLogger("sovereign.gateway")

Handle = DeploymentHandle[Any]  # the model server's and retriever's methods are not typed through Ray


def _context_exceeded(error: BaseException) -> ContextLengthExceeded | None:
    """The model server's refusal of a too long prompt, as Ray hands it over (the error itself, or a
    RayTaskError whose cause it is)."""
    for candidate in (error, getattr(error, "cause", None)):
        if isinstance(candidate, ContextLengthExceeded):
            return candidate
    return None


def _param(operation: Operation | None) -> str:
    """The body field a too long prompt is in."""
    return (
        "input" if operation is Operation.EMBED else "messages" if operation is Operation.CHAT else "prompt"
    )


class ModelCalls:
    """A replica's handles on the model (and retriever) applications of its Ray cluster."""

    def __init__(self) -> None:
        self._handles: dict[str, Handle] = {}
        self._app_states: tuple[float, dict[str, str]] = (0.0, {})  # (read at, name → Ray status)
        self._app_state_refresh: asyncio.Future[None] | None = None

    def clear(self) -> None:
        """Every handle forgotten (a new config may have replaced the applications)."""
        self._handles.clear()

    def forget(self, application: str) -> None:
        self._handles.pop(application, None)

    async def _running(self, application: str) -> bool:
        """Whether Ray Serve reports the application RUNNING; a request waits for Ray's controller only
        when the application is not known yet (one shared refresh)."""
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

    async def handle(self, application: str) -> Handle:
        """The application's handle, or 503 `model_unavailable` when it is not running."""
        if not await self._running(application):
            charge(0)  # the model never saw the request: its reservation goes back
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

    def _model_error(self, application: str, error: Exception, operation: Operation | None) -> GatewayError:
        beyond = _context_exceeded(error)
        if beyond is not None:  # the model server refused the prompt before generating: the client's 400
            charge(0)  # nothing was generated: the reservation goes back
            return GatewayError(
                400, f"{beyond}; shorten it", param=_param(operation), code="context_length_exceeded"
            )
        if isinstance(error, BackPressureError):  # its queue is full: busy, not gone (keep the handle)
            charge(0)  # the model never saw the request: its reservation goes back
            logger.warning("model application %s is at its queue's limit", application)
            return unavailable(
                "the model is busy; retry shortly", code="model_busy", headers={"Retry-After": "1"}
            )
        if isinstance(error, RayServeException | RayActorError):
            self.forget(application)
            logger.warning("model application %s unavailable: %s", application, type(error).__name__)
            return unavailable("the model is not available right now", code="model_unavailable")
        logger.warning("model application %s failed: %s", application, type(error).__name__)
        return model_failed()

    async def answer(
        self, permitted: Permitted, operation: Operation, body: dict[str, Any], call: telemetry.ModelCall
    ) -> Any:
        """The model's whole answer."""
        application = permitted.model.application
        try:
            handle = await self.handle(application)
            context = call.carrier()
            match operation:
                case Operation.CHAT:
                    answer = await handle.chat.remote(body, trace_context=context)
                case Operation.COMPLETION:
                    answer = await handle.complete.remote(body, trace_context=context)
                case _:
                    answer = await handle.embed.remote(body, trace_context=context)
        except GatewayError as error:
            call.fail(type(error).__name__)
            raise
        except Exception as error:  # noqa: BLE001 — mapped to 400/502/503 without internals
            call.fail(type(error).__name__)
            raise self._model_error(application, error, operation) from None
        call.finish_with(answer)
        return answer

    async def stream(
        self,
        permitted: Permitted,
        operation: Operation,
        body: dict[str, Any],
        call: telemetry.ModelCall,
        recording: Recording = DURABLE,
    ) -> Response:
        """The answer's chunks as SSE; the call's span ends with the stream (`_events`). The model starts
        while the decision's `recording` may still be on its way; its first byte waits for the record to be
        durable (a failed record stops the model and refuses the request)."""
        application = permitted.model.application
        begun: Any = None  # the model's answer, once asked for (cancelled if the record fails)
        try:
            async with durable_first(recording):  # an error before the first byte, too
                body, include_usage = openai_api.for_streaming(body)
                handle = (await self.handle(application)).options(stream=True)
                if operation is Operation.CHAT:
                    chunks = handle.chat_stream.remote(body, trace_context=call.carrier())
                else:
                    chunks = handle.complete_stream.remote(body, trace_context=call.carrier())
                # A handle with stream=True returns one.
                if not isinstance(chunks, DeploymentResponseGenerator):
                    raise TypeError(type(chunks).__name__)
                begun = chunks
                first = await answered_when_durable(recording, _first_chunk(chunks))
        except GatewayError as error:
            if begun is not None:
                begun.cancel()  # e.g. the record failed: the model stops, and none of its answer is sent
            call.fail(type(error).__name__)
            raise
        except Exception as error:  # noqa: BLE001 — before the first byte: a proper error status
            call.fail(type(error).__name__)
            raise self._model_error(application, error, operation) from None
        return StreamingResponse(
            self._events(application, chunks, first, include_usage, call),
            media_type="text/event-stream",
            headers={**permitted.headers(), "Cache-Control": "no-cache"},
        )

    async def _events(
        self,
        application: str,
        chunks: AsyncIterator[Any],
        first: Any,
        include_usage: bool,
        call: telemetry.ModelCall,
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
            yield openai_api.sse(self._model_error(application, error, None).body())
        finally:  # a stream cancelled or broken before its end pays what it reserved
            charge((used or counted) if finished else None)
            last = {"usage": (usage or {}).get("usage"), "choices": [{"finish_reason": r} for r in reasons]}
            call.finish_with(last)
        yield openai_api.DONE


async def _first_chunk(chunks: DeploymentResponseGenerator[Any]) -> Any:
    return await anext(chunks, None)
