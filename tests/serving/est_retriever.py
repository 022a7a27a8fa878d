"""EST's retriever in-process over one encrypted index, for the tests of its Vault under faults (outage,
slowness): the index written under EST's transit key, the retriever configured to serve it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sovereign_serving.retriever import Retriever

from sovereign.dataplane import DatasetStore
from sovereign.domain.markings import Principal
from sovereign.policy.bundle import PolicyBundle
from tests.dataplane.samples import TRANSIT, est_markings, sample_chunks, unit_vectors
from tests.servers import VaultServer

NATION = "EST"
DATASET = "field-reports"
READER = Principal.model_validate(
    {"sub": "reader", "nationality": NATION, "clearance": "NATO SECRET", "issuerNation": NATION}
)


def write_index(stores: Path, vault: VaultServer, count: int) -> None:
    DatasetStore(stores, NATION, DATASET).write_index(
        sample_chunks(count, [est_markings()]),
        unit_vectors(count, 8),
        vault.client(),
        TRANSIT,
        "hash-0",
        "est/minilm",
    )


def retriever_for(sink: dict[str, Any], stores: Path) -> Retriever:
    """EST's retriever serving the index under `stores`, logging in to Vault with `sink`."""
    retriever = Retriever()
    retriever.reconfigure(
        {
            "nation": NATION,
            "datasets": [
                {"name": DATASET, "markings": est_markings(), "embeddingApplication": "est-embedder"}
            ],
            "storeRoot": str(stores),
            "vault": sink,
            "bundle": PolicyBundle.load().to_configmap_data(),
        }
    )
    return retriever
