"""The transformers engine against a real tiny Llama and the real MiniLM."""

from __future__ import annotations

import asyncio
import math

import pytest
from sovereign_serving.engines import GenerateRequest, load_engine
from sovereign_serving.engines.transformers_engine import TransformersEngine
from transformers import AutoTokenizer

from tests.serving.engines.models import LocalModel, collect, run

CHAT = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the capital?"})


@pytest.fixture(scope="module")
def engine(tiny_llama: LocalModel) -> TransformersEngine:
    loaded = load_engine(tiny_llama.config(max_tokens=48))
    assert isinstance(loaded, TransformersEngine)
    return loaded


@pytest.fixture(scope="module")
def embedder(minilm: LocalModel) -> TransformersEngine:
    loaded = load_engine(minilm.config(task="embed"))
    assert isinstance(loaded, TransformersEngine)
    return loaded


def greedy(max_tokens: int = 40, **fields: object) -> GenerateRequest:
    return GenerateRequest(messages=CHAT, temperature=0, max_tokens=max_tokens, **fields)  # type: ignore[arg-type]


def test_generate_stops_at_max_tokens(engine: TransformersEngine) -> None:
    result = run(engine.generate(greedy(max_tokens=5)))
    assert (result.completion_tokens, result.finish_reason) == (5, "length")
    assert result.text


def test_max_tokens_never_exceeds_the_model_cap(tiny_llama: LocalModel) -> None:
    capped = load_engine(tiny_llama.config(max_tokens=6))
    assert run(capped.generate(greedy(max_tokens=500))).completion_tokens <= 6
    assert run(capped.generate(GenerateRequest(prompt="The gateway", temperature=0))).completion_tokens <= 6


def test_temperature_zero_is_deterministic(engine: TransformersEngine) -> None:
    assert run(engine.generate(greedy())) == run(engine.generate(greedy()))


def test_a_seed_makes_sampling_reproducible(engine: TransformersEngine) -> None:
    request = GenerateRequest(prompt="Each nation", temperature=1.0, top_p=0.9, seed=7, max_tokens=20)
    assert run(engine.generate(request)).text == run(engine.generate(request)).text


def test_stop_cuts_the_text_before_the_first_stop_string(engine: TransformersEngine) -> None:
    full = run(engine.generate(greedy()))
    stop = full.text[8:11]
    assert len(stop) == 3 and full.text.find(stop) == 8, "the tiny model's greedy text changed; pick a stop"
    result = run(engine.generate(greedy(stop=(stop, "never appears"))))
    assert result.text == full.text[:8]
    assert result.finish_reason == "stop"
    assert result.completion_tokens < full.completion_tokens  # generation ended early, not just the text


@pytest.mark.parametrize("stop", [(), ("e",), ("never appears",)], ids=["no-stop", "stop", "unseen-stop"])
def test_stream_deltas_join_to_the_generated_text(engine: TransformersEngine, stop: tuple[str, ...]) -> None:
    expected = run(engine.generate(greedy(stop=stop)))
    deltas = run(collect(engine.stream(greedy(stop=stop))))
    assert "".join(delta.text for delta in deltas) == expected.text
    assert all(delta.finish_reason is None and delta.usage is None for delta in deltas[:-1])
    final = deltas[-1]
    assert final.finish_reason == expected.finish_reason
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (
        expected.prompt_tokens,
        expected.completion_tokens,
    )


def test_token_counts_are_the_tokenizers(engine: TransformersEngine, tiny_llama: LocalModel) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama.source, local_files_only=True)
    result = run(engine.generate(GenerateRequest(prompt="The gateway decides.", temperature=0, max_tokens=7)))
    assert result.prompt_tokens == len(tokenizer("The gateway decides.")["input_ids"])
    chat = run(engine.generate(greedy(max_tokens=7)))
    rendered = tokenizer.apply_chat_template(list(CHAT), tokenize=False, add_generation_prompt=True)
    assert chat.prompt_tokens == len(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    assert result.completion_tokens == chat.completion_tokens == 7


def test_generation_leaves_the_event_loop_free(engine: TransformersEngine) -> None:
    async def scenario() -> int:
        ticks = 0
        task = asyncio.create_task(engine.generate(greedy(max_tokens=48)))
        while not task.done():
            await asyncio.sleep(0.001)
            ticks += 1
        await task
        return ticks

    assert run(scenario()) > 3


def test_an_abandoned_stream_ends_its_generation(engine: TransformersEngine) -> None:
    async def scenario() -> None:
        stream = engine.stream(greedy(max_tokens=48))
        await anext(stream)
        await stream.aclose()  # the worker thread is told to stop; it must not hang the loop's shutdown

    run(scenario())


def test_a_generation_model_does_not_embed(engine: TransformersEngine) -> None:
    with pytest.raises(ValueError, match="generation model"):
        run(engine.embed(["text"]))


def test_engine_args_of_another_engine_are_refused(tiny_llama: LocalModel) -> None:
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        load_engine(tiny_llama.config(engineArgs={"gpu_memory_utilization": 0.9}))


@pytest.mark.parametrize("value", [True, False])
def test_trust_remote_code_is_refused_whatever_its_value(tiny_llama: LocalModel, value: bool) -> None:
    with pytest.raises(ValueError, match=r"engineArgs\.trust_remote_code: would run Python code"):
        load_engine(tiny_llama.config(engineArgs={"trust_remote_code": value}))


def test_embeddings_are_384_dim_and_normalised(embedder: TransformersEngine) -> None:
    result = run(embedder.embed(["The cat sits on the mat.", "A kitten is sitting on a rug."]))
    assert [len(vector) for vector in result.vectors] == [384, 384]
    for vector in result.vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-5)
    assert result.prompt_tokens > 10


def test_similar_sentences_are_closer_than_unrelated_ones(embedder: TransformersEngine) -> None:
    cat, kitten, tax = run(
        embedder.embed(
            [
                "The cat sits on the mat.",
                "A kitten is sitting on a rug.",
                "Quarterly tax filings are due in April.",
            ]
        )
    ).vectors

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(cat, kitten) > cosine(cat, tax) + 0.3


def test_an_embedding_model_does_not_generate(embedder: TransformersEngine) -> None:
    with pytest.raises(ValueError, match="embedding model"):
        run(embedder.generate(greedy()))
