"""A model application for the gateway's tests: the ModelServer's method names, OpenAI-shaped answers.

It echoes what it was asked (the capped `max_tokens`, the number of messages) so tests can see what the
gateway passed on, and fails on request (`"user": "explode"`) so the gateway's 502 can be tested; a chat
stream asked with `"user": "stall"` stops after its first chunk (STALL_SECONDS), as a client cuts it short.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ray import serve
from sovereign_serving.engines.base import check_context

WORDS = ("sovereign", "answer", "here")
FAKE_CONTEXT_LENGTH = 2048  # the tiny model's positions
STALL_SECONDS = 30.0
Carrier = dict[str, str] | None  # the caller's W3C trace context (ModelServer's `trace_context`), unused here


def _check(body: dict[str, Any]) -> None:
    if body.get("user") == "explode":
        raise RuntimeError("the fake model failed on purpose")
    # As the model server refuses a prompt beyond its positions, counting a word as a token.
    texts = [m.get("content") for m in body.get("messages") or []] + [body.get("prompt")]
    words = sum(len(text.split()) for text in texts if isinstance(text, str))
    check_context(words, FAKE_CONTEXT_LENGTH)


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


@serve.deployment(name="FakeModel", ray_actor_options={"num_cpus": 0})
class FakeModel:
    async def chat(self, body: dict[str, Any], trace_context: Carrier = None) -> dict[str, Any]:
        _check(body)
        content = f"messages={len(body['messages'])} max_tokens={body.get('max_tokens')}"
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": _usage(3, 2),
        }

    async def chat_stream(
        self, body: dict[str, Any], trace_context: Carrier = None
    ) -> AsyncIterator[dict[str, Any]]:
        _check(body)
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": body["model"],
        }
        yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
        if body.get("user") == "stall":
            await asyncio.sleep(STALL_SECONDS)
        for word in WORDS:
            yield {**base, "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]}
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        if (body.get("stream_options") or {}).get("include_usage"):
            yield {**base, "choices": [], "usage": _usage(3, len(WORDS))}

    async def complete(self, body: dict[str, Any], trace_context: Carrier = None) -> dict[str, Any]:
        _check(body)
        return {
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {"index": 0, "text": f"max_tokens={body.get('max_tokens')}", "finish_reason": "length"}
            ],
            "usage": _usage(2, 1),
        }

    async def complete_stream(
        self, body: dict[str, Any], trace_context: Carrier = None
    ) -> AsyncIterator[dict[str, Any]]:
        _check(body)
        base = {"id": "cmpl-fake", "object": "text_completion", "created": 1, "model": body["model"]}
        for word in WORDS:
            yield {**base, "choices": [{"index": 0, "text": word, "finish_reason": None}]}

    async def embed(self, body: dict[str, Any], trace_context: Carrier = None) -> dict[str, Any]:
        _check(body)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return {
            "object": "list",
            "model": body["model"],
            "data": [
                {"object": "embedding", "index": i, "embedding": [0.25, -0.5, float(i)]}
                for i, _ in enumerate(inputs)
            ],
            "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
        }


app = FakeModel.bind()  # import path `tests.serving.gateway.fake_model:app`
