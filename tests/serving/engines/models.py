"""The engine tests' models (a checkpoint and its digests, and the ModelServerConfig that serves it) and two
small helpers to drive coroutines; the fixtures that build the models: tests/serving/engines/conftest.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sovereign.serving_contract import ModelServerConfig

T = TypeVar("T")


@dataclass(frozen=True)
class LocalModel:
    source: Path
    sha256: dict[str, str]

    def config(self, task: str = "generate", max_tokens: int = 64, **fields: Any) -> ModelServerConfig:
        return ModelServerConfig.model_validate(
            {
                "name": "fra/tiny" if task == "generate" else "fra/minilm",
                "nation": "FRA",
                "source": str(self.source),
                "sha256": self.sha256,
                "task": task,
                "engine": "transformers",
                "maxTokens": max_tokens,
                **fields,
            }
        )


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def collect(iterator: AsyncIterator[T]) -> list[T]:
    return [item async for item in iterator]
