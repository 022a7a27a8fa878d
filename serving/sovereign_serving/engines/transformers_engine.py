"""The CPU engine: any local Hugging Face checkpoint through transformers.

Generation runs in a worker thread (`asyncio.to_thread`) so the replica's event loop keeps serving;
streaming goes through transformers' `AsyncTextIteratorStreamer` (the asyncio form of
`TextIteratorStreamer`). Embedding models (task `embed`) are loaded with `AutoModel` and embed by mean
pooling over the attention mask, then L2 normalisation (the sentence-transformers recipe of MiniLM).

`engineArgs` understood here: `dtype` ("float32", "bfloat16", "float16") and `num_threads` (torch's
intra-op threads of the replica's process). Anything else is refused: those are vLLM's arguments.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

import torch
from transformers import (
    AsyncTextIteratorStreamer,
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    StoppingCriteria,
    StoppingCriteriaList,
)

from sovereign.serving_contract import ModelServerConfig
from sovereign_serving.engines.base import (
    EmbedResult,
    FinishReason,
    GenerateRequest,
    GenerateResult,
    StopScanner,
    StreamDelta,
    Usage,
    chat_prompt,
    check_context,
    check_embedding_inputs,
    cut_at_stop,
    effective_max_tokens,
    first_stop,
)

TRANSFORMERS_ENGINE_ARGS = frozenset({"dtype", "num_threads"})
_DTYPES = ("float32", "bfloat16", "float16")
EMBED_BATCH_SIZE = 64
_STOP_WINDOW_TOKENS = 64  # how many trailing tokens are decoded to look for a stop string


class TransformersEngine:
    """One model in this process; safe to call concurrently (each call generates in its own thread)."""

    def __init__(self, config: ModelServerConfig) -> None:
        unknown = sorted(set(config.engine_args) - TRANSFORMERS_ENGINE_ARGS)
        if unknown:
            raise ValueError(
                f"engineArgs {unknown} are not understood by the transformers engine "
                f"(it takes {sorted(TRANSFORMERS_ENGINE_ARGS)})"
            )
        dtype_name = config.engine_args.get("dtype", "float32")
        if dtype_name not in _DTYPES:
            raise ValueError(f"engineArgs.dtype must be one of {list(_DTYPES)}, not {dtype_name!r}")
        if "num_threads" in config.engine_args:
            torch.set_num_threads(int(config.engine_args["num_threads"]))

        self.task = config.task
        self._cap = config.max_tokens
        self._tokenizer = AutoTokenizer.from_pretrained(
            config.source, local_files_only=True, trust_remote_code=False
        )
        model_class = AutoModelForCausalLM if config.task == "generate" else AutoModel
        self._model = model_class.from_pretrained(
            config.source, local_files_only=True, trust_remote_code=False, dtype=getattr(torch, dtype_name)
        )
        self._model.eval()
        # The model's positions: a longer prompt is refused (ContextLengthExceeded) before generating, a
        # longer embedding input before embedding (also beyond the tokenizer's own maximum, where it would
        # truncate).
        self._context: int | None = getattr(self._model.config, "max_position_embeddings", None)
        tokenizer_limit = getattr(self._tokenizer, "model_max_length", None)
        self._embed_context = min(
            [n for n in (self._context, tokenizer_limit) if isinstance(n, int) and 0 < n < 1_000_000],
            default=None,
        )

    # -- generation -----------------------------------------------------------------------------------

    async def generate(self, request: GenerateRequest) -> GenerateResult:
        self._require("generate")
        inputs, prompt_tokens = self._encode(request)
        stops = _StopCriterion(self._tokenizer, request.stop, prompt_tokens)
        kwargs = self._generate_kwargs(request, inputs, stops, cancel=None, streamer=None)
        output = await asyncio.to_thread(self._run_generate, kwargs, request.seed)
        max_new_tokens = kwargs["generation_config"].max_new_tokens
        new_ids = output[0, prompt_tokens:].tolist()
        text, cut = cut_at_stop(self._tokenizer.decode(new_ids, skip_special_tokens=True), request.stop)
        return GenerateResult(
            text=text,
            finish_reason=self._finish_reason(new_ids, max_new_tokens, cut or stops.hit),
            prompt_tokens=prompt_tokens,
            completion_tokens=len(new_ids),
        )

    async def stream(self, request: GenerateRequest) -> AsyncIterator[StreamDelta]:
        self._require("generate")
        inputs, prompt_tokens = self._encode(request)
        stops = _StopCriterion(self._tokenizer, request.stop, prompt_tokens)
        cancel = _Cancelled()
        streamer = AsyncTextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = self._generate_kwargs(request, inputs, stops, cancel=cancel, streamer=streamer)
        worker = asyncio.create_task(asyncio.to_thread(self._run_generate, kwargs, request.seed, streamer))
        scanner = StopScanner(request.stop)
        text = ""
        try:
            async for piece in streamer:
                text += piece
                delta = scanner.feed(text)
                if delta:
                    yield StreamDelta(text=delta)
            output = await worker
        finally:
            cancel.event.set()  # a consumer that went away stops the generation at the next token
        new_ids = output[0, prompt_tokens:].tolist()
        stopped = scanner.stopped or stops.hit
        yield StreamDelta(
            text=scanner.finish(),
            finish_reason=self._finish_reason(new_ids, kwargs["generation_config"].max_new_tokens, stopped),
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(new_ids)),
        )

    def _encode(self, request: GenerateRequest) -> tuple[dict[str, Any], int]:
        if request.messages is not None:
            # A chat template writes its own special tokens (BOS etc.); do not add them twice.
            text, special = chat_prompt(self._tokenizer, request.messages), False
        else:
            text, special = str(request.prompt), True
        inputs = dict(self._tokenizer(text, return_tensors="pt", add_special_tokens=special))
        prompt_tokens = int(inputs["input_ids"].shape[1])
        check_context(prompt_tokens, self._context)
        return inputs, prompt_tokens

    def _generate_kwargs(
        self,
        request: GenerateRequest,
        inputs: dict[str, Any],
        stops: _StopCriterion,
        cancel: _Cancelled | None,
        streamer: Any,
    ) -> dict[str, Any]:
        defaults = self._model.generation_config
        sampling: dict[str, Any] = (
            {"do_sample": False}
            if request.temperature == 0
            else {"do_sample": True, "temperature": request.temperature, "top_p": request.top_p, "top_k": 0}
        )
        # A fresh generation config: the request's parameters, not the checkpoint's sampling defaults.
        generation_config = GenerationConfig(
            max_new_tokens=effective_max_tokens(request, self._cap),
            bos_token_id=defaults.bos_token_id,
            eos_token_id=defaults.eos_token_id,
            pad_token_id=defaults.pad_token_id
            if defaults.pad_token_id is not None
            else self._tokenizer.pad_token_id or defaults.eos_token_id,
            **sampling,
        )
        criteria = [c for c in (stops if request.stop else None, cancel) if c is not None]
        return {
            **inputs,
            "generation_config": generation_config,
            "stopping_criteria": StoppingCriteriaList(criteria),
            "streamer": streamer,
        }

    def _run_generate(self, kwargs: dict[str, Any], seed: int | None, streamer: Any = None) -> Any:
        if seed is not None:
            # Process-wide: reproducible for a seeded request that does not overlap a sampling one.
            torch.manual_seed(seed)
        try:
            return self._model.generate(**kwargs)
        except BaseException:
            if streamer is not None:
                streamer.end()  # otherwise the consumer would wait for ever
            raise

    def _finish_reason(self, new_ids: list[int], max_new_tokens: int, stopped: bool) -> FinishReason:
        if stopped:
            return "stop"
        eos = self._model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        if new_ids and new_ids[-1] in eos_ids:
            return "stop"
        return "length" if len(new_ids) >= max_new_tokens else "stop"

    # -- embeddings -----------------------------------------------------------------------------------

    async def embed(self, texts: Sequence[str], truncate: bool = False) -> EmbedResult:
        self._require("embed")
        return await asyncio.to_thread(self._embed_sync, list(texts), truncate)

    def _embed_sync(self, texts: list[str], truncate: bool) -> EmbedResult:
        cut = {"truncation": True, "max_length": self._embed_context} if truncate else {"truncation": False}
        batches = [
            self._tokenizer(texts[start : start + EMBED_BATCH_SIZE], padding=True, return_tensors="pt", **cut)
            for start in range(0, len(texts), EMBED_BATCH_SIZE)
        ]
        lengths = [int(n) for batch in batches for n in batch["attention_mask"].sum(dim=1)]
        check_embedding_inputs(lengths, self._embed_context)  # before any input is embedded
        vectors: list[list[float]] = []
        tokens = 0
        for batch in batches:
            with torch.inference_mode():
                hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            vectors.extend(torch.nn.functional.normalize(pooled.float(), p=2, dim=1).tolist())
            tokens += int(batch["attention_mask"].sum())
        return EmbedResult(vectors=vectors, prompt_tokens=tokens)

    def _require(self, task: str) -> None:
        if self.task != task:
            kind = "an embedding model" if self.task == "embed" else "a generation model"
            raise ValueError(f"this is {kind} (task {self.task!r}); it cannot {task}")


class _StopCriterion(StoppingCriteria):
    """Stops generation once a stop string appears in the generated text (batch of one)."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_tokens: int) -> None:
        self._tokenizer = tokenizer
        self._stops = tuple(stops)
        self._start = prompt_tokens
        self.hit = False

    def __call__(self, input_ids: Any, scores: Any, **_: Any) -> Any:
        if not self.hit:
            start = max(self._start, input_ids.shape[1] - _STOP_WINDOW_TOKENS)
            tail = self._tokenizer.decode(input_ids[0, start:], skip_special_tokens=True)
            self.hit = first_stop(tail, self._stops) is not None
        return torch.full((input_ids.shape[0],), self.hit, dtype=torch.bool, device=input_ids.device)


class _Cancelled(StoppingCriteria):
    """Stops generation when the consumer of a stream went away."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, input_ids: Any, scores: Any, **_: Any) -> Any:
        stop = self.event.is_set()
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)
