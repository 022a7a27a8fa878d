"""A retriever application for the gateway's grounding tests: the contract's `search`, over fixed chunks.

Only the gateway-level tests use it (helper B's real retriever is tested on its own). Like the real one it
returns only the chunks the principal may read, decided with the policy engine before ranking; a chunk
scores 1.0 when its keyword is in the query, 0.1 otherwise. A query with `leak-everything` makes it skip
the filter (a broken retriever), so the gateway's own check can be tested; `explode` makes it fail.
"""

from __future__ import annotations

from typing import Any

from ray import serve

from sovereign.domain.markings import Markings, Principal, Resource, ResourceKind
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.engine import PolicyEngine
from tests.serving.gateway.datasets import CHUNKS


@serve.deployment(name="Retriever", ray_actor_options={"num_cpus": 0})
class FakeRetriever:
    def __init__(self, nation: str) -> None:
        self.nation = nation
        self.engine = PolicyEngine(PolicyBundle.load())

    def _readable(self, principal: Principal, dataset: str, markings: dict[str, Any]) -> bool:
        resource = Resource(
            kind=ResourceKind.dataset, name=dataset, markings=Markings.model_validate(markings)
        )
        return self.engine.decide(principal, "read", [resource]).allowed

    async def search(
        self,
        principal: dict[str, Any],
        dataset: str,
        query: str,
        top_k: int,
        trace_context: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        caller = Principal.model_validate(principal)
        if "explode" in query:
            raise RuntimeError(f"the fake retriever failed on purpose: {query}")
        if not dataset.startswith(f"{self.nation.lower()}/"):
            raise ValueError(f"{dataset!r} is not a dataset this retriever serves")
        leak = "leak-everything" in query
        found = [
            {**c, "score": 1.0 if c["keyword"] in query else 0.1}
            for c in CHUNKS
            if c["dataset"] == dataset and (leak or self._readable(caller, dataset, c["markings"]))
        ]
        found.sort(key=lambda c: -c["score"])
        return {
            "dataset": dataset,
            "version": 1,
            "chunks": [
                {k: c[k] for k in ("documentId", "chunkId", "text", "score", "markings")}
                for c in found[:top_k]
            ],
        }


def build(args: dict[str, Any]) -> serve.Application:
    return FakeRetriever.bind(args["nation"])  # import path `tests.serving.gateway.fake_retriever:build`
