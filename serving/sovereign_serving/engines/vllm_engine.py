"""The GPU engine: vLLM's async engine, kept thin. It runs only on GPU nodes with the `[vllm]` extra.

vLLM is CUDA-only and is not installed on CPU machines: it is imported inside the constructor, never at
module import, so this module (and `vllm_engine_args`, the mapping tested as data) imports anywhere.
The mapping targets vLLM's `AsyncEngineArgs` of vLLM >= 0.10 (`runner="pooling"` for embedding models).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sovereign.serving_contract import ModelServerConfig
from sovereign.specs.model_deployment import REFUSED_ENGINE_ARGS
from sovereign_serving.engines.base import (
    EmbedResult,
    FinishReason,
    GenerateRequest,
    GenerateResult,
    StreamDelta,
    Usage,
    chat_prompt,
    check_context,
    check_embedding_inputs,
    effective_max_tokens,
)

VLLM_MISSING = (
    "the vllm engine needs a GPU node and the [vllm] extra (pip install 'sovereign-ai-platform[vllm]')"
)

# What engineArgs may not set: which weights are loaded is the spec's `source`, verified by digest.
PINNED_ENGINE_ARGS = frozenset(
    {
        "model",
        "tokenizer",
        "revision",
        "tokenizer_revision",
        "code_revision",
        "download_dir",
        "served_model_name",
    }
)


def vllm_engine_args(config: ModelServerConfig) -> dict[str, Any]:
    """The `AsyncEngineArgs` keyword arguments of a model: the verified local `source` for weights and
    tokenizer, the served name, `maxTokens` as `max_model_len` unless engineArgs give one, the pooling
    runner for embedding models, then every other engineArg passed through unchanged."""
    pinned = sorted((PINNED_ENGINE_ARGS | REFUSED_ENGINE_ARGS.keys()) & set(config.engine_args))
    if pinned:
        raise ValueError(
            f"engineArgs may not set {pinned}: the model's files are its verified `source`, and no code "
            "is loaded from them"
        )
    args: dict[str, Any] = {
        "model": config.source,
        "tokenizer": config.source,
        "served_model_name": config.name,
        "max_model_len": config.max_tokens,
        "trust_remote_code": False,
    }
    if config.task == "embed":
        args["runner"] = "pooling"
    args.update(config.engine_args)
    return args


def vllm_context_length(config: ModelServerConfig) -> int:
    """The context the adapter refuses prompts and embedding inputs against, before vLLM sees them: the
    `max_model_len` vLLM is given (`maxTokens`, or engineArgs' own), so a prompt vLLM would refuse with its
    own error (a 502 at the gateway) is the client's 400 `context_length_exceeded` instead."""
    value = vllm_engine_args(config)["max_model_len"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"engineArgs.max_model_len must be a positive number of tokens, not {value!r}")
    return value


class VLLMEngine:
    def __init__(self, config: ModelServerConfig) -> None:
        try:
            from vllm import AsyncEngineArgs, AsyncLLMEngine
        except ImportError as error:
            raise RuntimeError(VLLM_MISSING) from error
        self.task = config.task
        self._cap = config.max_tokens
        self._context = vllm_context_length(config)  # refused before vLLM loads anything
        self._engine = AsyncLLMEngine.from_engine_args(AsyncEngineArgs(**vllm_engine_args(config)))
        self._tokenizer: Any = None

    async def generate(self, request: GenerateRequest) -> GenerateResult:
        text, usage = "", Usage(0, 0)
        finish: FinishReason = "length"
        async for delta in self.stream(request):
            text += delta.text
            if delta.finish_reason is not None and delta.usage is not None:
                finish, usage = delta.finish_reason, delta.usage
        return GenerateResult(
            text=text,
            finish_reason=finish,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )

    async def stream(self, request: GenerateRequest) -> AsyncIterator[StreamDelta]:
        prompt = await self._prompt(request)
        # Refused here (400 at the gateway) rather than by vLLM's own ValueError (502).
        ids = self._tokenizer.encode(prompt, add_special_tokens=request.messages is None)
        check_context(len(ids), self._context)
        from vllm import SamplingParams

        params = SamplingParams(
            max_tokens=effective_max_tokens(request, self._cap),
            temperature=request.temperature,
            top_p=request.top_p,
            stop=list(request.stop) or None,
            seed=request.seed,
        )
        sent = 0
        async for output in self._engine.generate(prompt, params, uuid.uuid4().hex):
            completion = output.outputs[0]
            if len(completion.text) > sent:
                yield StreamDelta(text=completion.text[sent:])
                sent = len(completion.text)
            if output.finished:
                finish: FinishReason = "length" if completion.finish_reason == "length" else "stop"
                usage = Usage(len(output.prompt_token_ids or ()), len(completion.token_ids))
                yield StreamDelta(text="", finish_reason=finish, usage=usage)

    async def embed(self, texts: Sequence[str], truncate: bool = False) -> EmbedResult:
        tokenizer = await self._loaded_tokenizer()
        inputs = [tokenizer.encode(text)[: self._context if truncate else None] for text in texts]
        check_embedding_inputs([len(ids) for ids in inputs], self._context)
        from vllm import PoolingParams

        vectors: list[list[float]] = []
        tokens = 0
        for ids in inputs:
            prompt = {"prompt_token_ids": ids}  # vLLM's TokensPrompt: exactly the ids checked above
            async for output in self._engine.encode(prompt, PoolingParams(), uuid.uuid4().hex):
                if output.finished:
                    vectors.append([float(x) for x in output.outputs.data])
                    tokens += len(output.prompt_token_ids)
        return EmbedResult(vectors=vectors, prompt_tokens=tokens)

    async def _loaded_tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = await self._engine.get_tokenizer()
        return self._tokenizer

    async def _prompt(self, request: GenerateRequest) -> str:
        await self._loaded_tokenizer()
        if request.messages is None:
            return str(request.prompt)
        return chat_prompt(self._tokenizer, request.messages)
