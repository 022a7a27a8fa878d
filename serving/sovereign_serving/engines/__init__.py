"""Engines behind one interface (`base.Engine`): transformers on CPU, vLLM on GPU.

`load_engine(config)` imports only the selected engine's libraries.
"""

from __future__ import annotations

from sovereign.serving_contract import ModelServerConfig
from sovereign.specs.model_deployment import refused_engine_args
from sovereign_serving.engines.base import (
    EmbedResult,
    Engine,
    GenerateRequest,
    GenerateResult,
    StreamDelta,
    Usage,
)


def check_engine_args(config: ModelServerConfig) -> None:
    """Fail closed before anything loads: engineArgs that would load code or unpinned files (admission
    refuses them too; this holds for a config that reached Ray by another way)."""
    refused = refused_engine_args(config.engine_args)
    if refused:
        reasons = "; ".join(f"engineArgs.{key}: {why}" for key, why in refused.items())
        raise ValueError(f"model {config.name} refused: {reasons}")


def load_engine(config: ModelServerConfig) -> Engine:
    """Build the config's engine (loads the weights: verify them first). Refuses `REFUSED_ENGINE_ARGS`."""
    check_engine_args(config)
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
    "check_engine_args",
    "load_engine",
]
