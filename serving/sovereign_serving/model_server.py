"""The Ray Serve application of one model: `ModelServer`, built by `build_app` from a `ModelServerConfig`.

A Serve config refers to it as `import_path: sovereign_serving.model_server:build_app` with the config
(by alias) as `args`. The application has no HTTP route: the nation's gateway calls its methods through a
Ray Serve handle, with OpenAI-shaped bodies it has already authenticated and authorised, and gets
OpenAI-shaped dicts back (`chat`, `complete`, `embed`; the `*_stream` methods are async generators of
chunk dicts, called with `handle.options(stream=True)`). Bodies are validated again here; a bad body, or a
method the model's task does not offer, raises ValueError.

Tracing: every method takes the caller's W3C trace context as `trace_context` (the gateway passes its model
call span's `carrier()`) and opens a SERVER span `engine generate` / `engine embed` as its child, with the
model, the operation and the token counts (never content); its duration also goes to the Ray histogram
`gen_ai_server_request_duration` (Prometheus: `ray_gen_ai_server_request_duration_bucket`).

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
from typing import Any, Literal, TypeVar

from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from ray import serve
from ray.serve import Application
from ray.util.metrics import Histogram

from sovereign.serving_contract import AIR_GAP_ENV, ModelServerConfig
from sovereign.telemetry import configure_tracing, context_from, tracer
from sovereign_serving.engines import GenerateRequest, GenerateResult, StreamDelta, Usage, load_engine
from sovereign_serving.integrity import verify_model_files
from sovereign_serving.loopback import keep_replica_server_on_loopback

MAX_STOP_STRINGS = 4  # as OpenAI's API
# GenAI semconv: gen_ai.provider.name (a custom value: no well-known one fits a self-hosted platform) and
# the bucket boundaries the GenAI metrics conventions advise for gen_ai.server.request.duration (seconds).
PROVIDER = "sovereign"
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
B = TypeVar("B", bound=BaseModel)


# -- request bodies (OpenAI's, reduced to what the engines honour) ---------------------------------------


class _Body(BaseModel):
    # OpenAI clients send fields this server does not use (user, presence_penalty...): ignored, not refused.
    model_config = ConfigDict(extra="ignore", frozen=True)


class StreamOptions(_Body):
    include_usage: bool = False


class _Sampling(_Body):
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: Literal[1] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > MAX_STOP_STRINGS or any(not stop for stop in stops):
            raise ValueError(f"stop: at most {MAX_STOP_STRINGS} non-empty strings")
        return value

    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatBody(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)


class CompletionBody(_Sampling):
    prompt: str | list[str]
    echo: Literal[False] = False
    logprobs: None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("prompt: exactly one prompt per request")
        return value

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class EmbeddingBody(_Body):
    model: str | None = None
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)

    @field_validator("input")
    @classmethod
    def _some_input(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("input: at least one text")
        return value

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


async def _chained(first: StreamDelta | None, rest: AsyncIterator[StreamDelta]) -> AsyncIterator[StreamDelta]:
    if first is None:
        return
    yield first
    async for delta in rest:
        yield delta


def _parse(model: type[B], body: Any) -> B:
    """The body as `model`, or a plain ValueError listing what is wrong (it crosses Ray's boundary)."""
    if not isinstance(body, dict):
        raise ValueError(f"the request body must be a JSON object, not {type(body).__name__}")
    try:
        return model.model_validate(body)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
            for problem in error.errors(include_url=False)
        )
        raise ValueError(f"invalid request: {problems}") from None


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


# -- tracing ---------------------------------------------------------------------------------------------


class _EngineSpan:
    """The replica's span of one call (GenAI semconv, "Semantic conventions for generative AI spans":
    `gen_ai.operation.name`, `gen_ai.request.model`, `gen_ai.usage.*_tokens`,
    `gen_ai.response.finish_reasons`) as a child of the caller's span. Not made current: a streamed call
    ends it in a later step of its generator, and nothing inside the engine opens spans. Records the
    request duration when it ends."""

    def __init__(
        self,
        server: ModelServer,
        name: str,
        operation: str,
        trace_context: dict[str, str] | None,
        max_tokens: int | None = None,
    ) -> None:
        self._tags = {"tenant": server._config.nation, "model": server._config.name, "operation": operation}
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.request.model": server._config.name,
            "sovereign.tenant": server._config.nation,
        }
        if max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = max_tokens
        self._duration = server._duration
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


# -- the deployment ------------------------------------------------------------------------------------


# A replica whose files fail the integrity check fails the same way on every retry: give up early.
@serve.deployment(max_constructor_retry_count=3)
class ModelServer:
    """One replica of one model. Methods take OpenAI request bodies (dicts) and return OpenAI dicts."""

    def __init__(self, config: ModelServerConfig) -> None:
        os.environ.update(AIR_GAP_ENV)  # defence in depth: the runtime_env sets the same
        keep_replica_server_on_loopback()
        configure_tracing("sovereign-model-server", **{"sovereign.tenant": config.nation})
        self._duration = Histogram(
            "gen_ai_server_request_duration",
            description="Seconds per model call in the replica (GenAI gen_ai.server.request.duration).",
            boundaries=DURATION_BUCKETS,
            tag_keys=("tenant", "model", "operation"),
        )
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

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: Usage | None = None) -> dict:
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
        parsed = _parse(EmbeddingBody, body)
        traced = _EngineSpan(self, "engine embed", "embeddings", trace_context)
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
        traced = _EngineSpan(self, "engine generate", operation, trace_context, request.max_tokens)
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
        traced = _EngineSpan(self, "engine generate", operation, trace_context, request.max_tokens)
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
        parsed = _parse(ChatBody, body)
        messages = [{"role": message.role, "content": message.text()} for message in parsed.messages]
        return parsed, self._generate_request(
            parsed, messages=messages, max_tokens=parsed.max_completion_tokens
        )

    def _completion_request(self, body: dict[str, Any]) -> tuple[CompletionBody, GenerateRequest]:
        self._require("generate", "completions")
        parsed = _parse(CompletionBody, body)
        return parsed, self._generate_request(parsed, prompt=parsed.text())

    def _generate_request(
        self,
        parsed: _Sampling,
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
