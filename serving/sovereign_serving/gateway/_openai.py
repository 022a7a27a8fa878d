"""The OpenAI request bodies the gateway accepts and the shapes it returns (lists, SSE, usage)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from sovereign.serving_contract import GatewayModel

from ._errors import GatewayError, bad_request
from ._routes import Operation

DONE = b"data: [DONE]\n\n"
MAX_TOKEN_FIELDS = {
    Operation.CHAT: ("max_tokens", "max_completion_tokens"),
    Operation.COMPLETION: ("max_tokens",),
}
MAX_BODY_BYTES = 2 * 1024 * 1024  # a request body above this is refused (413) before it is read whole

# Parameters the models do not honour: a value other than the harmless one is refused (400 naming it)
# rather than ignored, so a client never believes it got what it asked for.
UNSUPPORTED: dict[Operation, dict[str, object]] = {
    Operation.CHAT: {
        "n": 1,
        "logprobs": False,
        "top_logprobs": None,
        "tools": None,
        "functions": None,
        "tool_choice": None,
        "function_call": None,
        "logit_bias": None,
        "audio": None,
    },
    Operation.COMPLETION: {
        "n": 1,
        "best_of": 1,
        "echo": False,
        "logprobs": None,
        "suffix": None,
        "logit_bias": None,
    },
    Operation.EMBED: {},
}


def too_large() -> GatewayError:
    return GatewayError(
        413,
        f"the request body is larger than {MAX_BODY_BYTES} bytes",
        code="request_too_large",
    )


async def read_body(request: Request) -> bytes:
    """The body, refused (413) by its Content-Length or, without one, as soon as the bytes read pass the
    cap: reading stops there."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise bad_request("the Content-Length header is not a number", code="invalid_request")
        if int(declared) > MAX_BODY_BYTES:
            raise too_large()
    received = bytearray()
    async for piece in request.stream():
        received += piece
        if len(received) > MAX_BODY_BYTES:
            raise too_large()
    return bytes(received)


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


def check_body(body: Mapping[str, Any], operation: Operation) -> None:
    """400 naming the field a model operation's body needs and lacks (`messages`, `prompt`, `input`)."""
    match operation:
        case Operation.CHAT:
            check_chat(body)
        case Operation.COMPLETION:
            check_completion(body)
        case Operation.EMBED:
            check_embedding(body)


def check_supported(body: Mapping[str, Any], operation: Operation) -> None:
    """400 naming the first parameter set to a value the models do not honour (`n` other than 1...)."""
    for param, harmless in UNSUPPORTED[operation].items():
        value = body.get(param)
        if value is None or (type(value) is type(harmless) and value == harmless):
            continue
        if harmless is None and value in ([], {}):
            continue
        expected = "absent" if harmless is None else json.dumps(harmless)
        raise bad_request(
            f"`{param}` is not supported here: leave it out or set it to {expected}",
            param=param,
            code="unsupported_parameter",
        )


def _texts(value: Any) -> list[str]:
    """The strings of a message content, prompt or input (text parts of a list; token ids count 1 each)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        found: list[str] = []
        for item in value:
            if isinstance(item, dict):
                text = item.get("text")
                found += [text] if isinstance(text, str) else []
            else:
                found += _texts(item) if isinstance(item, list | str) else ["x"]
        return found
    return []


def check_limits(body: Mapping[str, Any], model: GatewayModel, operation: Operation) -> None:
    """The model's limits (its spec's `limits`): messages, characters, embedding inputs; 400 naming the
    parameter, before the model is called."""
    limits = model.limits
    if operation == Operation.CHAT:
        param, messages = "messages", body.get("messages") or []
        if len(messages) > limits.max_messages:
            raise bad_request(
                f"`messages` has {len(messages)} messages; this model takes at most {limits.max_messages}",
                param="messages",
                code="too_many_messages",
            )
        texts = [t for m in messages if isinstance(m, dict) for t in _texts(m.get("content"))]
    elif operation == Operation.COMPLETION:
        param, texts = "prompt", _texts(body.get("prompt"))
    else:
        param, given = "input", body.get("input")
        inputs = given if isinstance(given, list) else [given]
        if len(inputs) > limits.max_inputs:
            raise bad_request(
                f"`input` has {len(inputs)} inputs; this model takes at most {limits.max_inputs}",
                param="input",
                code="too_many_inputs",
            )
        texts = _texts(given)
    characters = sum(len(text) for text in texts)
    if characters > limits.max_characters:
        raise bad_request(
            f"`{param}` has {characters} characters; this model takes at most {limits.max_characters} "
            "in one request",
            param=param,
            code="too_many_characters",
        )


def capped(body: dict[str, Any], model: GatewayModel, operation: Operation) -> dict[str, Any]:
    """The body with its token limits within the model's maxTokens (set to it when absent)."""
    result = dict(body)
    fields = MAX_TOKEN_FIELDS[operation]
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


CHARACTERS_PER_TOKEN = 4  # the prompt estimate a reservation takes before the model server counts it


def _estimate(value: Any) -> float:
    if isinstance(value, str):
        return len(value) / CHARACTERS_PER_TOKEN
    if isinstance(value, int) and not isinstance(value, bool):
        return 1.0  # a token id
    if isinstance(value, dict):
        return _estimate(value.get("text"))
    if isinstance(value, list):
        return sum(_estimate(item) for item in value)
    return 0.0


def tokens_to_reserve(body: Mapping[str, Any], operation: Operation) -> int:
    """What a request reserves of its caller's token quotas before the model runs: the prompt's (or the
    embedding inputs') characters / 4, a token id one each, rounded up, plus the capped `max_tokens` (a
    body from `capped`); settled with the model server's count afterwards."""
    given: Any
    if operation == Operation.CHAT:
        given = [m.get("content") for m in body.get("messages") or [] if isinstance(m, dict)]
    else:
        given = body.get("prompt" if operation == Operation.COMPLETION else "input")
    prompt = max(1, math.ceil(_estimate(given)))
    if operation == Operation.EMBED:
        return prompt
    limits = [body.get(name) for name in MAX_TOKEN_FIELDS[operation]]
    return prompt + max((v for v in limits if isinstance(v, int) and not isinstance(v, bool)), default=0)


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
