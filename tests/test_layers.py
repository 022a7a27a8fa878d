"""The import contracts of pyproject.toml (the layers of ARCHITECTURE.md) hold on the code, and each one
breaks on the import it exists to refuse: a contract that names a module wrongly would pass vacuously.

`make test` runs `lint-imports` itself; here the contracts are checked on the real import graph with one
import (or module) added per case, through import-linter's own contract classes."""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from typing import Any

import grimp
import pytest
from importlinter.api import read_configuration
from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.independence import IndependenceContract
from importlinter.contracts.layers import LayersContract
from importlinter.domain.contract import Contract

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
CONTRACT_TYPES: dict[str, type[Contract]] = {
    "layers": LayersContract,
    "independence": IndependenceContract,
    "forbidden": ForbiddenContract,
    "acyclic_siblings": AcyclicSiblingsContract,
}

# (contract id, importer, imported): an import each contract must refuse; importer None adds a module.
BREAKS = {
    "domain imports the policy engine": (
        "shared-layers",
        "sovereign.domain.markings",
        "sovereign.policy.bundle",
    ),
    "pure core reaches Vault": ("shared-layers", "sovereign.identity.tokens", "sovereign.clients.vault"),
    "clients import the audit log": ("shared-layers", "sovereign.clients.vault", "sovereign.audit"),
    "a module in no layer": ("shared-layers", None, "sovereign.stray"),
    "gateway imports the operator": (
        "faces-independent",
        "sovereign_serving.gateway",
        "sovereign_operator.config",
    ),
    "CLI imports the serving side": ("faces-independent", "sovereign.cli.main", "sovereign_serving.ingest"),
    "shared package imports the operator": (
        "shared-below-faces",
        "sovereign.catalogue",
        "sovereign_operator.constants",
    ),
    "CLI imports the devstack": ("no-devstack-in-product", "sovereign.cli.main", "sovereign_devstack.stack"),
    "operator imports the tests": ("no-devstack-in-product", "sovereign_operator.config", "tests.helpers"),
    "devstack imports the tests": ("no-tests-in-devstack", "sovereign_devstack.stack", "tests.helpers"),
    "builders import reconcile": (
        "operator-layers",
        "sovereign_operator.builders.namespace",
        "sovereign_operator.reconcile",
    ),
    "engines import the gateway": (
        "serving-layers",
        "sovereign_serving.engines",
        "sovereign_serving.gateway",
    ),
    "a cycle in the data plane": ("no-cycles", "sovereign.dataplane.manifest", "sovereign.dataplane.store"),
    "a cycle in the operator": ("no-cycles", "sovereign_operator.constants", "sovereign_operator.config"),
}


@pytest.fixture(scope="module")
def configuration() -> dict[str, Any]:
    return read_configuration(str(PYPROJECT))


@pytest.fixture(scope="module")
def graph(configuration: dict[str, Any]) -> grimp.ImportGraph:
    return grimp.build_graph(*configuration["session_options"]["root_packages"], cache_dir=None)


def kept(configuration: dict[str, Any], graph: grimp.ImportGraph, contract_id: str) -> bool:
    [options] = [c for c in configuration["contracts_options"] if c["id"] == contract_id]
    contract = CONTRACT_TYPES[options["type"]](
        name=options["name"], session_options=configuration["session_options"], contract_options=options
    )
    return contract.check(graph, verbose=False).kept


def test_the_code_keeps_every_contract(configuration: dict[str, Any], graph: grimp.ImportGraph) -> None:
    ids = [c["id"] for c in configuration["contracts_options"]]
    assert {i: kept(configuration, deepcopy(graph), i) for i in ids} == dict.fromkeys(ids, True)
    assert set(ids) == {contract_id for contract_id, _, _ in BREAKS.values()}


@pytest.mark.parametrize(("contract_id", "importer", "imported"), BREAKS.values(), ids=BREAKS.keys())
def test_a_contract_breaks_on_the_import_it_refuses(
    configuration: dict[str, Any],
    graph: grimp.ImportGraph,
    contract_id: str,
    importer: str | None,
    imported: str,
) -> None:
    changed = deepcopy(graph)
    if importer is None:
        changed.add_module(imported)
    else:
        changed.add_import(importer=importer, imported=imported)
    assert not kept(configuration, changed, contract_id)
