"""The engine-independent parts: request checks, chat prompts, stop strings over a growing text."""

from __future__ import annotations

import pytest
from sovereign_serving.engines.base import (
    GenerateRequest,
    StopScanner,
    chat_prompt,
    cut_at_stop,
    effective_max_tokens,
    fallback_chat_prompt,
)

STOP_CASES = [
    ("no stops", "hello world", (), "hello world"),
    ("stop inside", "hello world", ("o w",), "hell"),
    ("earliest of two", "abcdef", ("de", "bc"), "a"),
    ("stop at start", "stop here", ("stop",), ""),
    ("partial stop at end is kept", "hello wo", ("world",), "hello wo"),
    ("stop spanning pieces", "one two three", ("two",), "one "),
]


@pytest.mark.parametrize(
    ("text", "stops", "expected"), [c[1:] for c in STOP_CASES], ids=[c[0] for c in STOP_CASES]
)
def test_stop_scanner_emits_the_cut_text_whatever_the_pieces(
    text: str, stops: tuple[str, ...], expected: str
) -> None:
    assert cut_at_stop(text, stops)[0] == expected
    for step in (1, 2, 3, len(text) or 1):
        scanner = StopScanner(stops)
        emitted = "".join(scanner.feed(text[:end]) for end in range(step, len(text) + step, step))
        assert emitted + scanner.finish() == expected


def test_stop_scanner_holds_back_a_possible_stop() -> None:
    scanner = StopScanner(("world",))
    assert scanner.feed("hello wor") == "hello "
    assert scanner.feed("hello worm") == "worm"
    assert scanner.finish() == ""


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"messages": [], "prompt": "x"},
        {"prompt": "x", "max_tokens": 0},
        {"prompt": "x", "temperature": -1},
        {"prompt": "x", "top_p": 0},
        {"prompt": "x", "stop": ("",)},
    ],
    ids=["neither", "both", "zero-max-tokens", "negative-temperature", "zero-top-p", "empty-stop"],
)
def test_bad_requests_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        GenerateRequest(**fields)  # type: ignore[arg-type]


def test_max_tokens_defaults_to_and_is_capped_by_the_model() -> None:
    assert effective_max_tokens(GenerateRequest(prompt="x"), 64) == 64
    assert effective_max_tokens(GenerateRequest(prompt="x", max_tokens=500), 64) == 64
    assert effective_max_tokens(GenerateRequest(prompt="x", max_tokens=5), 64) == 5


def test_a_tokenizer_without_chat_template_gets_the_fallback_prompt() -> None:
    class Plain:
        chat_template = None

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert chat_prompt(Plain(), messages) == fallback_chat_prompt(messages)
    assert fallback_chat_prompt(messages) == "system: Be brief.\nuser: Hi\nassistant:"
