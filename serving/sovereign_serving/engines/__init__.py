"""Engines behind one interface (`base.Engine`): transformers on CPU, vLLM on GPU.

`load_engine(config)` imports only the selected engine's libraries.
"""

from __future__ import annotations

from sovereign_serving.config import ModelServerConfig
from sovereign_serving.engines.base import (
    EmbedResult,
    Engine,
    GenerateRequest,
    GenerateResult,
    StreamDelta,
    Usage,
)


def load_engine(config: ModelServerConfig) -> Engine:
    """Build the config's engine (loads the weights: verify them first)."""
    if config.engine == "vllm":
        from sovereign_serving.engines.vllm_engine import VLLMEngine

        return VLLMEngine(config)
    from sovereign_serving.engines.transformers_engine import TransformersEngine

    return TransformersEngine(config)


__all__ = [
    "EmbedResult",
    "Engine",
    "GenerateRequest",
    "GenerateResult",
    "StreamDelta",
    "Usage",
    "load_engine",
]
