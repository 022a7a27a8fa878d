"""A nation's retriever: one Ray Serve application per nation with DataSets (`<nation>-retriever`).

Its `user_config` is a `RetrieverConfig` (the operator changes it, a dataset added or a bundle published,
without a restart: Ray Serve docs, "Configure Ray Serve deployments", `reconfigure`). A replica keeps each
dataset's index decrypted in memory only (the store logs in to Vault as the nation) and loads it again when
the store's current version changes (a new ingestion). `search` decides every distinct chunk marking for
the caller with the policy engine and ranks only the chunks the caller may read (filtered BEFORE ranking,
so a forbidden chunk neither appears nor displaces an allowed one). Spans carry the dataset, counts and
index version, never a query or a chunk's text.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from ray import serve
from ray.serve import Application

from sovereign.clients.vault import VAULT_ERRORS, classify_vault_error
from sovereign.dataplane.retrieval import LoadedIndex, allowed_chunks
from sovereign.dataplane.store import DatasetStore
from sovereign.domain.markings import Principal
from sovereign.domain.nations import dataset_name
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.engine import PolicyEngine
from sovereign.serving_contract import AIR_GAP_ENV, RetrieverConfig, RetrieverDataset
from sovereign.telemetry import configure_tracing, context_from, span
from sovereign_serving.loopback import keep_replica_server_on_loopback
from sovereign_serving.nation_vault import NationVault

RETRIEVER_DEPLOYMENT = "Retriever"
MAX_TOP_K = 100


class UnknownDataset(LookupError):
    """The retriever does not serve this dataset (not the nation's, not Ready, or no index yet)."""


class Retriever:
    """One replica of a nation's retriever."""

    def __init__(self) -> None:
        os.environ.update(AIR_GAP_ENV)
        keep_replica_server_on_loopback()
        self._config: RetrieverConfig | None = None
        self._datasets: dict[str, RetrieverDataset] = {}
        self._engine: PolicyEngine | None = None
        self._vault: NationVault | None = None
        self._indexes: dict[str, LoadedIndex] = {}
        self._loading = threading.Lock()  # one decryption of a dataset at a time

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        config = RetrieverConfig.model_validate(user_config)
        if self._config is None:
            configure_tracing("sovereign-retriever", **{"sovereign.tenant": config.nation})
        if self._config is None or config.vault != self._config.vault:
            self._vault = NationVault(config.vault)
            self._indexes = {}  # another Vault login: decrypt again with it
        self._engine = PolicyEngine(PolicyBundle.from_configmap_data(config.bundle))
        self._datasets = {dataset_name(config.nation, d.name): d for d in config.datasets}
        self._indexes = {name: index for name, index in self._indexes.items() if name in self._datasets}
        self._config = config

    def _dataset(self, dataset: str) -> tuple[str, RetrieverDataset]:
        assert self._config is not None
        name = dataset.lower() if "/" in dataset else dataset_name(self._config.nation, dataset)
        found = self._datasets.get(name)
        if found is None:
            raise UnknownDataset(f"{dataset!r} is not a dataset this retriever serves")
        return name, found

    def _index(self, name: str, entry: RetrieverDataset) -> LoadedIndex:
        """The dataset's current index, decrypted into memory once per version."""
        config, vault = self._config, self._vault
        assert config is not None and vault is not None
        store = DatasetStore(Path(config.store_root), config.nation, entry.name)
        with self._loading:
            manifest = store.current()
            if manifest is None:
                raise UnknownDataset(f"{name} has no index yet")
            loaded = self._indexes.get(name)
            if loaded is not None and loaded.manifest.version == manifest.version:
                return loaded
            with span("retriever load", attributes={"sovereign.dataset": name}) as current:
                try:
                    loaded = store.load(vault.client(), config.vault.transit_mount)
                except VAULT_ERRORS as error:
                    # Sealed or down: refuse with what it is (the gateway answers 503 vault_sealed or
                    # vault_unreachable); nothing is cached, so the next search after Vault is back loads.
                    outage = classify_vault_error(error, config.vault.vault_addr)
                    if outage is None or outage is error:
                        raise
                    raise outage from error
                current.set_attribute("sovereign.dataset.version", str(loaded.manifest.version))
                current.set_attribute("sovereign.dataset.chunks", len(loaded.chunks))
            self._indexes[name] = loaded
            return loaded

    async def _embed(self, application: str, query: str, trace_context: dict[str, str] | None) -> np.ndarray:
        handle = serve.get_app_handle(application)
        # A query beyond the embedder's positions is searched by its beginning (cut, not refused).
        answer = await handle.embed.remote({"input": [query]}, trace_context, truncate=True)
        return np.asarray(answer["data"][0]["embedding"], dtype=np.float32)

    async def search(
        self,
        principal: dict[str, Any],
        dataset: str,
        query: str,
        top_k: int,
        trace_context: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The `top_k` chunks of `dataset` nearest to `query` among those `principal` may read."""
        caller = Principal.model_validate(principal)
        name, entry = self._dataset(dataset)
        top_k = max(1, min(int(top_k), MAX_TOP_K))
        attributes = {"sovereign.dataset": name, "sovereign.retrieval.top_k": top_k}
        with span("retriever search", attributes=attributes, context=context_from(trace_context)) as current:
            index = await asyncio.to_thread(self._index, name, entry)
            assert self._engine is not None
            allowed = allowed_chunks(index, caller, self._engine, entry.markings.owner)
            vector = await self._embed(entry.embedding_application, query, trace_context)
            hits = index.search(vector, top_k, allowed)
            current.set_attribute("sovereign.dataset.version", str(index.manifest.version))
            current.set_attribute("sovereign.retrieval.allowed", int(np.count_nonzero(allowed)))
            current.set_attribute("sovereign.retrieval.returned", len(hits))
        return {
            "dataset": name,
            "version": index.manifest.version,
            "chunks": [
                {
                    "documentId": chunk.document_id,
                    "chunkId": chunk.chunk_id,
                    "text": chunk.text,
                    "score": float(score),
                    "markings": chunk.markings.model_dump(mode="json", by_alias=True),
                }
                for chunk, score in hits
            ],
        }


def build_app(args: dict[str, Any] | None = None) -> Application:
    """The retriever application (its config comes as `user_config`, set by the operator)."""
    return serve.deployment(name=RETRIEVER_DEPLOYMENT)(Retriever).bind()
