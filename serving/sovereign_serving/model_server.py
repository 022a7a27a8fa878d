"""The Ray Serve application of one model: `ModelServer`, built by `build_app` from a `ModelServerConfig`.

A Serve config refers to it as `import_path: sovereign_serving.model_server:build_app` with the config
(by alias) as `args`. The application has no HTTP route: the nation's gateway calls its methods through a
Ray Serve handle, with OpenAI-shaped bodies it has already authenticated and authorised, and gets
OpenAI-shaped dicts back (`chat`, `complete`, `embed`; the `*_stream` methods are async generators of
chunk dicts, called with `handle.options(stream=True)`). Bodies are validated again here; a bad body, or a
method the model's task does not offer, raises ValueError.

The bodies it takes are in `model_requests.py`. Tracing: every method takes the caller's W3C trace context
as `trace_context` and opens a SERVER span as its child (`engine_span.py`).

On construction a replica sets the air-gap environment, verifies every file's sha256 (a failure raises
`IntegrityError`, so the application goes DEPLOY_FAILED with the failing file in its message) and only
then loads the engine.
"""

from __future__ import annotations

import base64
import os
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from ray import serve
from ray.serve import Application

from sovereign.serving_contract import AIR_GAP_ENV, ModelServerConfig
from sovereign.telemetry import configure_tracing
from sovereign_serving.engine_span import EngineSpan, request_duration_histogram
from sovereign_serving.engines import GenerateRequest, GenerateResult, StreamDelta, Usage, load_engine
from sovereign_serving.integrity import verify_model_files
from sovereign_serving.loopback import keep_replica_server_on_loopback
from sovereign_serving.model_requests import (
    ChatBody,
    CompletionBody,
    EmbeddingBody,
    SamplingBody,
    parse_body,
)


async def _chained(first: StreamDelta | None, rest: AsyncIterator[StreamDelta]) -> AsyncIterator[StreamDelta]:
    if first is None:
        return
    yield first
    async for delta in rest:
        yield delta


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _result_usage(result: GenerateResult) -> dict[str, int]:
    return _usage(Usage(result.prompt_tokens, result.completion_tokens))


def _embedding(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


# A replica whose files fail the integrity check fails the same way on every retry: give up early.
@serve.deployment(max_constructor_retry_count=3)
class ModelServer:
    """One replica of one model. Methods take OpenAI request bodies (dicts) and return OpenAI dicts."""

    def __init__(self, config: ModelServerConfig) -> None:
        os.environ.update(AIR_GAP_ENV)  # defence in depth: the runtime_env sets the same
        keep_replica_server_on_loopback()
        configure_tracing("sovereign-model-server", **{"sovereign.tenant": config.nation})
        self._duration = request_duration_histogram()
        self._config = config
        verify_model_files(config.source, config.sha256)
        self._engine = load_engine(config)

    # chat.completion ------------------------------------------------------------------------------------

    async def chat(self, body: dict[str, Any], trace_context: dict[str, str] | None = None) -> dict[str, Any]:
        parsed, request = self._chat_request(body)
        result = await self._generate(request, "chat", trace_context)
        return {
            **self._header("chatcmpl", "chat.completion"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text},
                    "finish_reason": result.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": _result_usage(result),
        }

    async def chat_stream(
        self, body: dict[str, Any], trace_context: dict[str, str] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Chunks: the assistant role, content deltas, one with `finish_reason` and `usage` (every other
        chunk has `usage: None`), and with `stream_options.include_usage` a last one with no choices."""
        parsed, request = self._chat_request(body)
        header = self._header("chatcmpl", "chat.completion.chunk")

        def chunk(
            delta: dict[str, Any], finish: str | None = None, usage: Usage | None = None
        ) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return {**header, "choices": [choice], "usage": _usage(usage) if usage else None}

        deltas = self._stream(request, "chat", trace_context)
        # The first delta before the first chunk: a prompt beyond the context (ContextLengthExceeded)
        # fails the call before anything is sent, so the gateway answers 400, not a broken stream.
        first = await anext(deltas, None)
        yield chunk({"role": "assistant", "content": ""})
        async for delta in _chained(first, deltas):
            if delta.text:
                yield chunk({"content": delta.text})
            if delta.finish_reason is not None:
                yield chunk({}, delta.finish_reason, delta.usage)
                if parsed.include_usage() and delta.usage is not None:
                    yield {**header, "choices": [], "usage": _usage(delta.usage)}

    # text_completion ------------------------------------------------------------------------------------

    async def complete(
        self, body: dict[str, Any], trace_context: dict[str, str] | None = None
    ) -> dict[str, Any]:
        parsed, request = self._completion_request(body)
        result = await self._generate(request, "text_completion", trace_context)
        choice = {"index": 0, "text": result.text, "finish_reason": result.finish_reason, "logprobs": None}
        return {
            **self._header("cmpl", "text_completion"),
            "choices": [choice],
            "usage": _result_usage(result),
        }

    async def complete_stream(
        self, body: dict[str, Any], trace_context: dict[str, str] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Chunks as OpenAI streams a completion (`object: text_completion`), usage as in chat_stream."""
        parsed, request = self._completion_request(body)
        header = self._header("cmpl", "text_completion")
        delta: StreamDelta
        async for delta in self._stream(request, "text_completion", trace_context):
            if delta.text or delta.finish_reason is not None:
                choice = {
                    "index": 0,
                    "text": delta.text,
                    "finish_reason": delta.finish_reason,
                    "logprobs": None,
                }
                yield {**header, "choices": [choice], "usage": _usage(delta.usage) if delta.usage else None}
            if delta.finish_reason is not None and parsed.include_usage() and delta.usage is not None:
                yield {**header, "choices": [], "usage": _usage(delta.usage)}

    # embedding ------------------------------------------------------------------------------------------

    async def embed(
        self, body: dict[str, Any], trace_context: dict[str, str] | None = None, truncate: bool = False
    ) -> dict[str, Any]:
        """An input longer than the model's positions is refused (ContextLengthExceeded: the gateway's 400
        `context_length_exceeded` naming `input`), never embedded cut; only the retriever's search query
        is cut there (`truncate`, which no client body can set)."""
        self._require("embed", "embeddings")
        parsed = parse_body(EmbeddingBody, body)
        traced = self._span("engine embed", "embeddings", trace_context)
        try:
            result = await self._engine.embed(parsed.texts(), truncate=truncate)
        except BaseException as error:
            traced.end(error)
            raise
        traced.usage(result.prompt_tokens, None)
        traced.end()
        size = len(result.vectors[0]) if result.vectors else 0
        if parsed.dimensions is not None and parsed.dimensions != size:
            raise ValueError(f"dimensions: {self._config.name} embeds in {size} dimensions only")
        return {
            "object": "list",
            "model": self._config.name,
            "data": [
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": _embedding(vector, parsed.encoding_format),
                }
                for index, vector in enumerate(result.vectors)
            ],
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
        }

    # helpers --------------------------------------------------------------------------------------------

    async def _generate(
        self, request: GenerateRequest, operation: str, trace_context: dict[str, str] | None
    ) -> GenerateResult:
        traced = self._span("engine generate", operation, trace_context, request.max_tokens)
        try:
            result = await self._engine.generate(request)
        except BaseException as error:
            traced.end(error)
            raise
        traced.usage(result.prompt_tokens, result.completion_tokens, result.finish_reason)
        traced.end()
        return result

    async def _stream(
        self, request: GenerateRequest, operation: str, trace_context: dict[str, str] | None
    ) -> AsyncIterator[StreamDelta]:
        """The engine's deltas; the span ends with the stream (finished, failed or abandoned)."""
        traced = self._span("engine generate", operation, trace_context, request.max_tokens)
        error: BaseException | None = None
        try:
            async for delta in self._engine.stream(request):
                if delta.finish_reason is not None and delta.usage is not None:
                    traced.usage(
                        delta.usage.prompt_tokens, delta.usage.completion_tokens, delta.finish_reason
                    )
                yield delta
        except BaseException as failure:
            error = failure
            raise
        finally:
            traced.end(error)

    def _chat_request(self, body: dict[str, Any]) -> tuple[ChatBody, GenerateRequest]:
        self._require("generate", "chat completions")
        parsed = parse_body(ChatBody, body)
        messages = [{"role": message.role, "content": message.text()} for message in parsed.messages]
        return parsed, self._generate_request(
            parsed, messages=messages, max_tokens=parsed.max_completion_tokens
        )

    def _completion_request(self, body: dict[str, Any]) -> tuple[CompletionBody, GenerateRequest]:
        self._require("generate", "completions")
        parsed = parse_body(CompletionBody, body)
        return parsed, self._generate_request(parsed, prompt=parsed.text())

    def _generate_request(
        self,
        parsed: SamplingBody,
        messages: list[dict[str, str]] | None = None,
        prompt: str | None = None,
        max_tokens: int | None = None,
    ) -> GenerateRequest:
        requested = max_tokens if max_tokens is not None else parsed.max_tokens
        return GenerateRequest(
            messages=messages,
            prompt=prompt,
            max_tokens=None if requested is None else min(requested, self._config.max_tokens),
            temperature=parsed.temperature,
            top_p=parsed.top_p,
            stop=parsed.stops(),
            seed=parsed.seed,
        )

    def _span(
        self, name: str, operation: str, trace_context: dict[str, str] | None, max_tokens: int | None = None
    ) -> EngineSpan:
        return EngineSpan(self._duration, self._config, name, operation, trace_context, max_tokens)

    def _require(self, task: str, what: str) -> None:
        if self._config.task != task:
            kind = "an embedding model" if self._config.task == "embed" else "a generation model"
            raise ValueError(f"{self._config.name} is {kind}: it does not serve {what}")

    def _header(self, prefix: str, kind: str) -> dict[str, Any]:
        return {
            "id": f"{prefix}-{uuid.uuid4().hex}",
            "object": kind,
            "created": int(time.time()),
            "model": self._config.name,
        }


def build_app(args: dict[str, Any]) -> Application:
    """The model application from its `ModelServerConfig` as a dict (by alias, as in a Serve config)."""
    config = ModelServerConfig.model_validate(args)
    return ModelServer.bind(config)
