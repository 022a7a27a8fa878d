"""The vLLM adapter: the mapping from a model's config to vLLM's engine arguments, as data."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from sovereign_serving.engines import load_engine
from sovereign_serving.engines.base import ContextLengthExceeded, check_context, check_embedding_inputs
from sovereign_serving.engines.vllm_engine import VLLM_MISSING, vllm_context_length, vllm_engine_args

from sovereign.serving_contract import ModelServerConfig

BASE = {
    "name": "fra/analyst",
    "nation": "FRA",
    "source": "/models/analyst",
    "sha256": {"model.safetensors": "0" * 64},
    "task": "generate",
    "engine": "vllm",
    "maxTokens": 4096,
}
EXPECTED = {
    "model": "/models/analyst",
    "tokenizer": "/models/analyst",
    "served_model_name": "fra/analyst",
    "max_model_len": 4096,
    "trust_remote_code": False,
}

CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("defaults", {}, EXPECTED),
    (
        "engine args pass through",
        {"engineArgs": {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.85, "dtype": "bfloat16"}},
        {**EXPECTED, "tensor_parallel_size": 2, "gpu_memory_utilization": 0.85, "dtype": "bfloat16"},
    ),
    (
        "max_model_len given wins",
        {"engineArgs": {"max_model_len": 32768}},
        {**EXPECTED, "max_model_len": 32768},
    ),
    ("embedding model pools", {"task": "embed"}, {**EXPECTED, "runner": "pooling"}),
]


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_config_maps_to_engine_args(change: dict[str, Any], expected: dict[str, Any]) -> None:
    assert vllm_engine_args(ModelServerConfig.model_validate({**BASE, **change})) == expected


@pytest.mark.parametrize(
    "key",
    [
        "model",
        "tokenizer",
        "revision",
        "download_dir",
        "served_model_name",
        "trust_remote_code",
        "code_revision",
        "hf_config_path",
        "speculative_config",
        "load_format",
        "worker_extension_cls",
    ],
)
def test_engine_args_cannot_change_which_files_or_code_load(key: str) -> None:
    config = ModelServerConfig.model_validate({**BASE, "engineArgs": {key: "elsewhere"}})
    with pytest.raises(ValueError, match=key):
        vllm_engine_args(config)


def test_the_model_server_refuses_remote_code_before_loading_anything() -> None:
    config = ModelServerConfig.model_validate({**BASE, "engineArgs": {"trust_remote_code": True}})
    with pytest.raises(ValueError) as caught:
        load_engine(config)  # the check comes before vLLM is imported: no GPU needed to prove it
    assert "engineArgs.trust_remote_code: would run Python code shipped with the model's files" in str(
        caught.value
    )


CONTEXTS = [
    ("maxTokens is vLLM's max_model_len", {}, 4096),
    ("engineArgs' max_model_len wins", {"engineArgs": {"max_model_len": 32768}}, 32768),
    ("a small model", {"maxTokens": 16}, 16),
    ("an embedding model", {"task": "embed", "maxTokens": 512}, 512),
]


@pytest.mark.parametrize(("change", "context"), [c[1:] for c in CONTEXTS], ids=[c[0] for c in CONTEXTS])
def test_the_adapter_refuses_against_the_context_vllm_is_given(change: dict[str, Any], context: int) -> None:
    """What the adapter checks a prompt and each embedding input against, before vLLM sees them (vLLM's own
    refusal would be a 502): exactly the max_model_len it gives vLLM."""
    config = ModelServerConfig.model_validate({**BASE, **change})
    assert vllm_context_length(config) == vllm_engine_args(config)["max_model_len"] == context
    check_context(context - 1, vllm_context_length(config))  # room for one generated token
    with pytest.raises(ContextLengthExceeded, match=f"maximum context length is {context} tokens"):
        check_context(context, vllm_context_length(config))
    check_embedding_inputs([1, context], vllm_context_length(config))  # an input that fills it is embedded
    with pytest.raises(ContextLengthExceeded) as beyond:
        check_embedding_inputs([1, context + 1], vllm_context_length(config))
    assert (beyond.value.input_index, beyond.value.prompt_tokens) == (1, context + 1)


@pytest.mark.parametrize("value", [0, -1, True, "32k", 1.5])
def test_a_max_model_len_that_is_no_number_of_tokens_is_refused(value: Any) -> None:
    config = ModelServerConfig.model_validate({**BASE, "engineArgs": {"max_model_len": value}})
    with pytest.raises(ValueError, match="max_model_len must be a positive number of tokens"):
        vllm_context_length(config)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_without_vllm_the_error_says_what_is_needed() -> None:
    with pytest.raises(RuntimeError) as caught:
        load_engine(ModelServerConfig.model_validate(BASE))
    assert str(caught.value) == VLLM_MISSING
    assert "the vllm engine needs a GPU node and the [vllm] extra" in VLLM_MISSING
