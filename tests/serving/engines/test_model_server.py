"""The model application's methods, called in-process (the Ray Serve test calls them through handles)."""

from __future__ import annotations

import base64
import os
import pickle
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from sovereign_serving.engines.base import ContextLengthExceeded
from sovereign_serving.integrity import IntegrityError
from sovereign_serving.model_server import ModelServer, build_app

from sovereign.serving_contract import AIR_GAP_ENV
from tests.serving.engines.models import LocalModel, collect, run

# The class behind the deployment: the same code a replica runs, without Ray.
Server = ModelServer.func_or_class
CHAT = {
    "model": "fra/tiny",
    "messages": [{"role": "user", "content": "Hello"}],
    "temperature": 0,
    "max_tokens": 12,
}


@pytest.fixture(scope="module")
def generator(tiny_llama: LocalModel) -> Any:
    return Server(tiny_llama.config(max_tokens=32))


@pytest.fixture(scope="module")
def embedder(minilm: LocalModel) -> Any:
    return Server(minilm.config(task="embed"))


def test_chat_answers_a_chat_completion(generator: Any) -> None:
    answer = run(generator.chat(CHAT))
    assert answer["object"] == "chat.completion"
    assert answer["id"].startswith("chatcmpl-") and isinstance(answer["created"], int)
    assert answer["model"] == "fra/tiny"
    [choice] = answer["choices"]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str) and choice["message"]["content"]
    assert choice["finish_reason"] in ("stop", "length")
    usage = answer["usage"]
    assert usage["completion_tokens"] <= 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_stream_chunks_join_to_the_chat_answer(generator: Any) -> None:
    answer = run(generator.chat(CHAT))
    chunks = run(collect(generator.chat_stream({**CHAT, "stream": True})))
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks)
    assert text == answer["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == answer["choices"][0]["finish_reason"]
    assert chunks[-1]["usage"] == answer["usage"]
    assert all(chunk["usage"] is None for chunk in chunks[:-1])


def test_chat_stream_with_include_usage_ends_with_a_usage_chunk(generator: Any) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    chunks = run(collect(generator.chat_stream(body)))
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_complete_and_complete_stream_agree(generator: Any) -> None:
    body = {"model": "fra/tiny", "prompt": "The gateway", "temperature": 0, "max_tokens": 10, "stop": ["\n"]}
    answer = run(generator.complete(body))
    assert answer["object"] == "text_completion" and answer["id"].startswith("cmpl-")
    chunks = run(collect(generator.complete_stream(body)))
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks) == answer["choices"][0]["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == answer["choices"][0]["finish_reason"]
    assert chunks[-1]["usage"] == answer["usage"]


def test_max_tokens_above_the_model_cap_is_capped(generator: Any) -> None:
    answer = run(generator.chat({**CHAT, "max_tokens": 10_000}))
    assert answer["usage"]["completion_tokens"] <= 32


def test_embed_answers_an_embedding_list(embedder: Any) -> None:
    answer = run(embedder.embed({"model": "fra/minilm", "input": ["one text", "another text"]}))
    assert answer["object"] == "list" and answer["model"] == "fra/minilm"
    assert [item["index"] for item in answer["data"]] == [0, 1]
    assert all(item["object"] == "embedding" and len(item["embedding"]) == 384 for item in answer["data"])
    assert answer["usage"]["prompt_tokens"] == answer["usage"]["total_tokens"] > 0


def test_embed_in_base64_is_little_endian_float32(embedder: Any) -> None:
    floats = run(embedder.embed({"input": "one text"}))["data"][0]["embedding"]
    encoded = run(embedder.embed({"input": "one text", "encoding_format": "base64"}))["data"][0]["embedding"]
    decoded = struct.unpack("<384f", base64.b64decode(encoded))
    assert decoded == pytest.approx(floats, abs=1e-6)


def test_a_generation_model_refuses_embeddings(generator: Any) -> None:
    with pytest.raises(ValueError, match="fra/tiny is a generation model: it does not serve embeddings"):
        run(generator.embed({"input": "text"}))


@pytest.mark.parametrize("method", ["chat", "complete"])
def test_an_embedding_model_refuses_generation(embedder: Any, method: str) -> None:
    with pytest.raises(ValueError, match="fra/minilm is an embedding model"):
        run(getattr(embedder, method)({"messages": [], "prompt": "x"}))
    with pytest.raises(ValueError, match="embedding model"):
        run(collect(getattr(embedder, f"{method}_stream")({"prompt": "x"})))


BAD_CHAT = [
    ("no messages", {"messages": []}, "messages"),
    ("unknown role", {"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ("temperature too high", {**CHAT, "temperature": 3}, "temperature"),
    ("zero max_tokens", {**CHAT, "max_tokens": 0}, "max_tokens"),
    ("several choices", {**CHAT, "n": 2}, "n"),
    ("five stops", {**CHAT, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ("not an object", ["x"], "JSON object"),
]


@pytest.mark.parametrize(("body", "match"), [c[1:] for c in BAD_CHAT], ids=[c[0] for c in BAD_CHAT])
def test_bad_chat_bodies_raise_value_error(generator: Any, body: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match) as caught:
        run(generator.chat(body))
    assert type(caught.value) is ValueError  # plain: it crosses Ray's process boundary intact


def test_a_prompt_beyond_the_models_positions_is_refused_before_anything_is_generated(generator: Any) -> None:
    """The tiny model has 2,048 positions: a longer prompt raises ContextLengthExceeded (the gateway's 400
    `context_length_exceeded`), a stream before its first chunk. It survives pickling (Ray's boundary)."""
    long = {**CHAT, "messages": [{"role": "user", "content": "Hello world " * 4_800}]}
    with pytest.raises(ContextLengthExceeded) as plain:
        run(generator.chat(long))
    assert plain.value.context_length == 2048 and plain.value.prompt_tokens > 2048
    copied = pickle.loads(pickle.dumps(plain.value))
    assert (copied.prompt_tokens, copied.context_length) == (plain.value.prompt_tokens, 2048)
    chunks: list[Any] = []

    async def first_chunk() -> None:
        chunks.append(await anext(generator.chat_stream(long)))

    with pytest.raises(ContextLengthExceeded):
        run(first_chunk())
    assert chunks == []
    with pytest.raises(ContextLengthExceeded):
        run(generator.complete({"prompt": "Hello world " * 4_800, "max_tokens": 4}))


def test_an_embedding_input_beyond_the_models_positions_is_refused_not_truncated(embedder: Any) -> None:
    """MiniLM has 512 positions (its tokenizer would cut there): a longer input is refused whole, naming
    its index, before anything is embedded; one that fits is embedded as it is; a search query is cut."""
    with pytest.raises(ContextLengthExceeded) as refused:
        run(embedder.embed({"input": ["short", "word " * 600]}))
    assert (refused.value.input_index, refused.value.context_length) == (1, 512)
    assert refused.value.prompt_tokens == 602  # with [CLS] and [SEP]
    copied = pickle.loads(pickle.dumps(refused.value))
    assert (copied.input_index, str(copied)) == (1, str(refused.value))
    fits = run(embedder.embed({"input": "word " * 510}))
    assert fits["usage"]["prompt_tokens"] == 512
    # The retriever's search query alone is cut at the positions (no client body can ask for it).
    searched = run(embedder.embed({"input": ["word " * 600]}, truncate=True))
    assert searched["usage"]["prompt_tokens"] == 512


def test_bad_completion_and_embedding_bodies_raise_value_error(generator: Any, embedder: Any) -> None:
    with pytest.raises(ValueError, match="exactly one prompt"):
        run(generator.complete({"prompt": ["a", "b"]}))
    with pytest.raises(ValueError, match="input"):
        run(embedder.embed({"input": []}))
    with pytest.raises(ValueError, match="384 dimensions"):
        run(embedder.embed({"input": "x", "dimensions": 128}))


def test_construction_sets_the_air_gap_environment(
    tiny_llama: LocalModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in AIR_GAP_ENV:
        monkeypatch.delenv(name, raising=False)
    Server(tiny_llama.config())
    assert {name: os.environ.get(name) for name in AIR_GAP_ENV} == AIR_GAP_ENV


def test_a_tampered_model_is_never_loaded(tiny_llama: LocalModel, tmp_path: Path) -> None:
    shutil.copytree(tiny_llama.source, tmp_path / "model")
    (tmp_path / "model" / "tokenizer_config.json").write_text("{}")
    tampered = LocalModel(tmp_path / "model", tiny_llama.sha256)
    with pytest.raises(IntegrityError, match="tokenizer_config.json"):
        Server(tampered.config())


def test_build_app_validates_its_args(tiny_llama: LocalModel) -> None:
    build_app(tiny_llama.config().model_dump(by_alias=True))
    with pytest.raises(ValueError, match="maxTokens"):
        build_app({**tiny_llama.config().model_dump(by_alias=True), "maxTokens": "many"})
