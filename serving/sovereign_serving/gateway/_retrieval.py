"""Searching the datasets a request names, after the gateway decided each of them.

A dataset is searched in its owner's retriever (`<owner>-retriever`, a Ray Serve application), which decides
each chunk's own markings against the caller before ranking; on kuberay another nation's dataset (one with a
`federationUrl`) is searched at its owner's gateway instead, which decides again. Either way the gateway
checks every returned chunk once more with its own engine and drops what it would refuse: no chunk the
caller may not read reaches a prompt, an answer or a source list. Logs and spans get names and counts only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from sovereign.domain.markings import Markings, Principal
from sovereign.domain.nations import retriever_application_name
from sovereign.serving_contract import GatewayDataset
from sovereign.telemetry import carrier
from sovereign_serving.nation_vault import vault_outage

from . import _telemetry as telemetry
from ._access import Access
from ._errors import GatewayError, vault_unavailable
from ._federation import Federation, dataset_unavailable
from ._grounding import Retrieved, best, chunks_of
from ._model_calls import ModelCalls

logger = logging.getLogger("sovereign.gateway")


class Retrieval:
    """A replica's way to its nations' retrievers: Serve handles (through the model calls' handle cache and
    running check) and, for other nations' datasets on kuberay, the federation client."""

    def __init__(self, calls: ModelCalls, federation: Federation) -> None:
        self._calls, self._federation = calls, federation

    async def retrieve(
        self,
        access: Access,
        principal: Principal,
        datasets: Sequence[GatewayDataset],
        query: str,
        top_k: int,
        federated: bool,
    ) -> list[Retrieved]:
        """The best `top_k` chunks over every dataset, each one the principal may read."""
        with telemetry.retrieving(access.nation, [d.name for d in datasets], top_k) as current:
            found = await asyncio.gather(
                *(self._search(access, principal, d, query, top_k, federated) for d in datasets)
            )
            chunks = best([chunk for chunks in found for chunk in chunks], top_k)
            current.set_attribute("sovereign.retrieval.chunks", len(chunks))
        return chunks

    async def _search(
        self,
        access: Access,
        principal: Principal,
        dataset: GatewayDataset,
        query: str,
        top_k: int,
        federated: bool,
    ) -> list[Retrieved]:
        remote = dataset.federation_url is not None and not federated  # a federated call is never forwarded
        owner = dataset.markings.owner
        with telemetry.searching(access.nation, dataset.name, owner, remote) as current:
            if remote:
                chunks = await self._federation.search(dataset, principal, query, top_k)
            else:
                chunks = await self._in_retriever(principal, dataset, query, top_k)
            readable = _readable(access, principal, dataset, chunks)
            current.set_attribute("sovereign.retrieval.chunks", len(readable))
        return readable

    async def _in_retriever(
        self, principal: Principal, dataset: GatewayDataset, query: str, top_k: int
    ) -> list[Retrieved]:
        application = retriever_application_name(dataset.markings.owner)
        try:
            handle = await self._calls.handle(application)
        except GatewayError:  # not running: the dataset, not a model, is unavailable
            raise dataset_unavailable() from None
        try:
            result: Any = await handle.search.remote(
                principal.model_dump(by_alias=True), dataset.name, query, top_k, trace_context=carrier()
            )
            if not isinstance(result, dict) or result.get("dataset") not in (None, dataset.name):
                raise ValueError("the retriever answered for another dataset")
            return chunks_of(dataset.name, result.get("chunks") or [])
        except Exception as error:  # noqa: BLE001 — its message may quote a document: only the type is logged
            self._calls.forget(application)
            logger.warning("retriever %s failed on %s: %s", application, dataset.name, type(error).__name__)
            outage = vault_outage(error)  # the index could not be decrypted: the nation's Vault is out
            if outage is not None:
                raise vault_unavailable(outage) from None
            raise dataset_unavailable() from None


def _readable(
    access: Access, principal: Principal, dataset: GatewayDataset, chunks: list[Retrieved]
) -> list[Retrieved]:
    """The chunks the gateway's own engine lets the principal read, of the dataset's owner (each distinct
    marking decided once)."""
    decided: dict[str, bool] = {}

    def readable(markings: Markings) -> bool:
        key = markings.model_dump_json()
        if key not in decided:
            decided[key] = markings.owner == dataset.markings.owner and access.chunk_readable(
                principal, dataset.name, markings
            )
        return decided[key]

    kept = [chunk for chunk in chunks if readable(chunk.markings)]
    if len(kept) != len(chunks):
        logger.warning(
            "%d chunks of %s returned for %s of %s were refused by the gateway's policy",
            len(chunks) - len(kept),
            dataset.name,
            principal.sub,
            principal.nationality,
        )
    return kept
