"""The one interface every engine implements, and the request and result types it speaks.

An engine is built once per replica from a `ModelServerConfig` (after the weights were verified) and is
called concurrently from the replica's event loop: its methods are async and never block the loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class GenerateRequest:
    """What to generate from: chat `messages` or a plain `prompt` (exactly one of them).

    `max_tokens` is the requested cap (None: the model's `maxTokens`); engines never exceed the config's
    `maxTokens`. `temperature` 0 means greedy decoding. Generation ends at the first of `stop` and the cut
    text does not contain it.
    """

    messages: Sequence[Mapping[str, str]] | None = None
    prompt: str | None = None
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give either messages or prompt")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if self.temperature < 0:
            raise ValueError("temperature must not be negative")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if any(not s for s in self.stop):
            raise ValueError("stop strings must not be empty")


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class GenerateResult:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class StreamDelta:
    """A piece of the answer. The last delta of a stream carries `finish_reason` and `usage` (its text
    may be empty); every other delta carries neither."""

    text: str
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


@dataclass(frozen=True)
class EmbedResult:
    vectors: list[list[float]] = field(repr=False)
    prompt_tokens: int


class ContextLengthExceeded(ValueError):
    """The prompt does not fit the model's context (its positions), with room for one generated token; or
    an embedding input (`input_index`) is longer than the model's positions.

    Raised before anything is generated or embedded; it crosses Ray's boundary (picklable) and the gateway
    answers it 400 `context_length_exceeded`. Counts only, never the text."""

    def __init__(self, prompt_tokens: int, context_length: int, input_index: int | None = None) -> None:
        what = "the prompt" if input_index is None else f"input[{input_index}]"
        super().__init__(
            f"this model's maximum context length is {context_length} tokens, "
            f"but {what} has {prompt_tokens} tokens"
        )
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length
        self.input_index = input_index

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.prompt_tokens, self.context_length, self.input_index))


def check_context(prompt_tokens: int, context_length: int | None) -> None:
    """Refuse a prompt that leaves no room for a generated token (None: the context is not known)."""
    if context_length is not None and prompt_tokens >= context_length:
        raise ContextLengthExceeded(prompt_tokens, context_length)


def check_embedding_inputs(input_tokens: Sequence[int], context_length: int | None) -> None:
    """Refuse the first embedding input longer than the model's positions (special tokens counted): an
    input is embedded whole or not at all, never truncated (None: the context is not known)."""
    if context_length is None:
        return
    for index, tokens in enumerate(input_tokens):
        if tokens > context_length:
            raise ContextLengthExceeded(tokens, context_length, index)


@runtime_checkable
class Engine(Protocol):
    async def generate(self, request: GenerateRequest) -> GenerateResult: ...

    def stream(self, request: GenerateRequest) -> AsyncIterator[StreamDelta]: ...

    async def embed(self, texts: Sequence[str], truncate: bool = False) -> EmbedResult:
        """Vectors of `texts`; an input beyond the model's positions raises ContextLengthExceeded, or with
        `truncate` (the retriever's search query, never a client's input) is cut there."""
        ...


def effective_max_tokens(request: GenerateRequest, cap: int) -> int:
    """The request's max_tokens, never above the model's cap."""
    return cap if request.max_tokens is None else min(request.max_tokens, cap)


def fallback_chat_prompt(messages: Sequence[Mapping[str, str]]) -> str:
    """The prompt of a chat for a tokenizer without a chat template: one `role: content` line per message,
    then `assistant:` to open the answer."""
    lines = [f"{message['role']}: {message['content']}" for message in messages]
    return "\n".join([*lines, "assistant:"])


def chat_prompt(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> str:
    """The prompt text of a chat: the tokenizer's chat template when it has one, else the fallback."""
    if getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template(
            [dict(message) for message in messages], tokenize=False, add_generation_prompt=True
        )
        return str(rendered)
    return fallback_chat_prompt(messages)


class StopScanner:
    """Cuts a growing text at the first stop string, holding back what could still become one.

    `feed(text_so_far)` returns the new text that is safe to emit; once a stop string was seen, `stopped`
    is true and nothing more is emitted. `finish()` returns what was held back at the end. The emitted
    pieces joined equal `cut_at_stop(full_text, stops)`.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stops)
        self._emitted = 0
        self._text = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        self._text = text
        cut = first_stop(text, self._stops)
        if cut is not None:
            self.stopped = True
            return self._take(cut)
        return self._take(len(text) - _held_back(text, self._stops))

    def finish(self) -> str:
        return "" if self.stopped else self._take(len(self._text))

    def _take(self, end: int) -> str:
        piece = self._text[self._emitted : end] if end > self._emitted else ""
        self._emitted = max(self._emitted, end)
        return piece


def first_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index where the earliest stop string starts in `text`, or None."""
    found = [index for index in (text.find(stop) for stop in stops) if index >= 0]
    return min(found) if found else None


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    index = first_stop(text, stops)
    return (text, False) if index is None else (text[:index], True)


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of `text` that is the start of a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest
