"""The OpenAI request bodies the gateway accepts and the shapes it returns (lists, SSE, usage)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sovereign_serving.config import GatewayModel

from ._errors import bad_request

DONE = b"data: [DONE]\n\n"
MAX_TOKEN_FIELDS = {"chat": ("max_tokens", "max_completion_tokens"), "completion": ("max_tokens",)}


def parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("the request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object", code="invalid_json")
    return body


def model_name(body: Mapping[str, Any]) -> str:
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise bad_request("`model` is required and must be a string", param="model")
    return name


def wants_stream(body: Mapping[str, Any]) -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise bad_request("`stream` must be a boolean", param="stream")
    return stream


def check_chat(body: Mapping[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise bad_request("`messages` must be a non-empty list of message objects", param="messages")


def check_completion(body: Mapping[str, Any]) -> None:
    prompt = body.get("prompt")
    if not (isinstance(prompt, str) or (isinstance(prompt, list) and prompt)):
        raise bad_request("`prompt` must be a string or a non-empty list", param="prompt")


def check_embedding(body: Mapping[str, Any]) -> None:
    given = body.get("input")
    if not (isinstance(given, str) or (isinstance(given, list) and given)):
        raise bad_request("`input` must be a string or a non-empty list", param="input")


def capped(body: dict[str, Any], model: GatewayModel, kind: str) -> dict[str, Any]:
    """The body with its token limits within the model's maxTokens (set to it when absent)."""
    result = dict(body)
    fields = MAX_TOKEN_FIELDS[kind]
    present = False
    for field in fields:
        value = result.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad_request(f"`{field}` must be a positive integer", param=field)
        result[field] = min(value, model.max_tokens)
        present = True
    if not present:
        result["max_tokens"] = model.max_tokens
    return result


def for_streaming(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The body the model gets (always asked for usage, so tokens can be charged), and whether the
    client asked for the usage chunk itself."""
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("`stream_options` must be an object", param="stream_options")
    include = bool((options or {}).get("include_usage", False))
    return {**body, "stream_options": {**(options or {}), "include_usage": True}}, include


def tokens_used(answer: Any) -> int:
    usage = answer.get("usage") if isinstance(answer, dict) else None
    if not isinstance(usage, dict):
        return 0
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    parts = (usage.get("prompt_tokens"), usage.get("completion_tokens"))
    return sum(p for p in parts if isinstance(p, int))


def is_usage_chunk(chunk: Any) -> bool:
    return isinstance(chunk, dict) and not chunk.get("choices") and isinstance(chunk.get("usage"), dict)


def sse(chunk: Any) -> bytes:
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def model_list(models: list[GatewayModel]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": m.name, "object": "model", "created": 0, "owned_by": m.markings.owner.lower()}
            for m in models
        ],
    }
