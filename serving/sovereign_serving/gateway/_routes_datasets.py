"""The gateway's dataset parts (issue 8), a base of `Gateway`: the datasets' decisions, grounded answers
and the search route's work. They use the Gateway's admission, decision records, model calls and forwarding;
the routes themselves are declared on `Gateway` with the others (`_app.py`).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sovereign.domain.markings import Principal
from sovereign.serving_contract import GatewayDataset

from . import _grounding as grounding_api
from . import _openai as openai_api
from . import _telemetry as telemetry
from ._access import Access, Permitted, marking_headers
from ._grounding import Grounding, Retrieved


class DatasetRoutes:
    """Mixed into Gateway: uses its `_admit`, `_record`, `_call`, `_forward`, `_charge` and `_retrieval`."""

    _admit: Any
    _record: Any
    _call: Any
    _forward: Any
    _charge: Any
    _retrieval: Any

    async def _decide_datasets(
        self, access: Access, principal: Principal, names: list[str], federated: bool
    ) -> list[GatewayDataset]:
        """Each dataset decided (`read`), traced, counted and recorded like the model; then the one 403 for
        the first denied (every decision is recorded first, so the audit shows them all)."""
        decisions = []
        for name in names:
            decision = telemetry.decided_dataset(
                access.nation,
                principal,
                lambda name=name: access.decide_dataset(principal, name, owned_only=federated),  # type: ignore[misc]
            )
            await self._record(principal, decision, federated)
            decisions.append(decision)
        return [access.permitted_dataset(principal, decision) for decision in decisions]

    async def _grounded(
        self,
        access: Access,
        principal: Principal,
        permitted: Permitted,
        kind: str,
        body: dict[str, Any],
        grounding: Grounding,
        query: str,
        federated: bool,
    ) -> Response:
        """A non-streaming answer grounded in the named datasets, with its sources and its LUB marking
        (`Access.answer_marking`: never one that excludes the user's nation)."""
        datasets = await self._decide_datasets(access, principal, grounding.datasets, federated)
        chunks = grounding_api.releasable_to_model(
            await self._retrieval.retrieve(access, principal, datasets, query, grounding.top_k, federated),
            permitted.model.markings.owner,
            frozenset(access.tenants),
        )
        marking = access.answer_marking(principal, permitted.model, [(c.dataset, c.markings) for c in chunks])
        telemetry.marked(marking)
        body = grounding_api.grounded(body, kind, chunks)
        call = telemetry.ModelCall(access.nation, permitted.model.name, kind, body)
        if permitted.model.federation_url and not federated:
            response = await self._forward(principal, permitted, kind, body, False, call)
            return _with_sources(response, chunks, marking_headers(marking))
        answer = await self._call(permitted, "chat" if kind == "chat" else "complete", body, call)
        self._charge(openai_api.tokens_used(answer))
        return JSONResponse(grounding_api.with_sources(answer, chunks), headers=marking_headers(marking))

    async def _search(self, request: Request, federated: bool = False) -> Response:
        """The chunks themselves (`/v1/sovereign/search`), marked with their LUB (the datasets' own when
        none matched); on the federation route with each chunk's markings, for the calling gateway."""
        access, principal = await self._admit(request, federated)
        ask = grounding_api.search_request(openai_api.parse_body(await openai_api.read_body(request)))
        datasets = await self._decide_datasets(access, principal, ask.datasets, federated)
        chunks = await self._retrieval.retrieve(access, principal, datasets, ask.query, ask.top_k, federated)
        found = [(c.dataset, c.markings) for c in chunks] or [(d.name, d.markings) for d in datasets]
        marking = access.answer_marking(principal, None, found)
        telemetry.marked(marking)
        answer = grounding_api.search_answer(chunks, marking, with_markings=federated)
        return JSONResponse(answer, headers=marking_headers(marking))


def _with_sources(response: Response, chunks: list[Retrieved], headers: dict[str, str]) -> Response:
    """The owner's answer to a grounded prompt, with this gateway's sources and marking (its errors as
    they are)."""
    if response.status_code != 200:
        return response
    return JSONResponse(grounding_api.with_sources(json.loads(bytes(response.body)), chunks), headers=headers)
