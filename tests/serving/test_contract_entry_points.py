"""The entry points the serving contract names (what the operator hands to Ray) are importable."""

from __future__ import annotations

import importlib

import pytest

from sovereign import serving_contract as contract


@pytest.mark.parametrize(
    "import_path",
    [
        contract.GATEWAY_IMPORT_PATH,
        contract.MODEL_SERVER_IMPORT_PATH,
        contract.RETRIEVER_IMPORT_PATH,
        contract.PROXY_ENV[contract.PROXY_CALLBACK_ENV],
    ],
)
def test_each_import_path_names_a_callable(import_path: str) -> None:
    module, _, attribute = import_path.partition(":")
    assert callable(getattr(importlib.import_module(module), attribute))


def test_the_ingest_module_runs_as_a_program() -> None:
    assert callable(importlib.import_module(contract.INGEST_MODULE).main)
