"""What each operation does with an admitted request, from its body to its answer.

A model operation: the body's checks (unsupported parameters: 400 naming them) → the policy decision on the
model (`_decisions.py`) → the model's `limits` (messages, characters, embedding inputs: 400 naming the
parameter) → the prompt's and `max_tokens`' tokens reserved (429 if they do not fit; settled with the real
usage after the answer) → the model (`_model_calls.py`), or another nation's model at its owner's gateway
(`_federation.py`; a federated request is never forwarded further) → the answer with its marking in
`X-Sovereign-Classification` and `X-Sovereign-Releasable-To`.

Datasets (`_grounding.py`, `_retrieval.py`): a chat or completion body's `sovereign` extension names
datasets; each is decided (`read`) and audited like the model, searched, and the chunks go into the prompt;
the answer lists its sources and is marked with the least upper bound of the model's and the chunks'
markings. The search operation returns the chunks themselves, decided and audited the same way.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sovereign.domain.markings import Principal

from . import _grounding as grounding_api
from . import _openai as openai_api
from . import _telemetry as telemetry
from ._admission import Admitted, Gate, charge, reserve
from ._decision_types import Permitted, check_task, marking_headers
from ._decisions import Decisions, answered_when_durable, durable_first
from ._errors import bad_request
from ._federation import Federation
from ._grounding import Grounding, Retrieved
from ._model_calls import ModelCalls
from ._retrieval import Retrieval
from ._routes import Operation


class Handlers:
    """One method per operation, `(request, federated) -> response`; `_router.py` mounts them."""

    def __init__(
        self,
        gate: Gate,
        decisions: Decisions,
        calls: ModelCalls,
        federation: Federation,
        retrieval: Retrieval,
    ) -> None:
        self._gate, self._decisions, self._calls = gate, decisions, calls
        self._federation, self._retrieval = federation, retrieval

    async def models(self, request: Request, federated: bool) -> Response:
        admitted = await self._gate.admit(request, Operation.MODELS, federated)
        visible = admitted.access.visible_models(admitted.principal)
        return JSONResponse(openai_api.model_list(visible))

    async def chat(self, request: Request, federated: bool) -> Response:
        return await self._generate(request, Operation.CHAT, federated)

    async def completion(self, request: Request, federated: bool) -> Response:
        return await self._generate(request, Operation.COMPLETION, federated)

    async def _generate(self, request: Request, operation: Operation, federated: bool) -> Response:
        admitted = await self._gate.admit(request, operation, federated)
        access, principal = admitted.access, admitted.principal
        body, grounding = grounding_api.grounding_of(openai_api.parse_body(admitted.body))
        name = openai_api.model_name(body)
        openai_api.check_body(body, operation)
        openai_api.check_supported(body, operation)
        stream = openai_api.wants_stream(body)
        if grounding is not None and stream:  # see _grounding.py: the sources have no place in a stream
            raise bad_request("a grounded answer (`sovereign.datasets`) cannot be streamed", param="stream")
        query = grounding_api.query_of(body, operation) if grounding is not None else ""
        overlap = grounding is None  # a grounded search waits for the record; a stream's first byte does too
        decision, recording = await self._decisions.model_begun(
            access, principal, name, federated, overlap=overlap
        )
        async with durable_first(recording):
            permitted = access.permitted(principal, decision)
            check_task(permitted, operation, name)
            openai_api.check_limits(body, permitted.model, operation)
            body = openai_api.capped(body, permitted.model, operation)
            await reserve(openai_api.tokens_to_reserve(body, operation))
        if grounding is not None:
            return await self._grounded(admitted, permitted, operation, body, grounding, query, federated)
        call = telemetry.ModelCall(access.nation, name, operation, body)
        if permitted.model.federation_url and not federated:
            return await self._forward(principal, permitted, operation, body, stream, call)
        if stream:
            return await self._calls.stream(permitted, operation, body, call, recording)
        answer = await answered_when_durable(recording, self._calls.answer(permitted, operation, body, call))
        charge(openai_api.tokens_used(answer))
        return JSONResponse(answer, headers=permitted.headers())

    async def embeddings(self, request: Request, federated: bool) -> Response:
        admitted = await self._gate.admit(request, Operation.EMBED, federated)
        access, principal = admitted.access, admitted.principal
        body = openai_api.parse_body(admitted.body)
        name = openai_api.model_name(body)
        openai_api.check_body(body, Operation.EMBED)
        openai_api.check_supported(body, Operation.EMBED)
        decision, recording = await self._decisions.model_begun(access, principal, name, federated)
        async with durable_first(recording):
            permitted = access.permitted(principal, decision)
            check_task(permitted, Operation.EMBED, name)
            openai_api.check_limits(body, permitted.model, Operation.EMBED)
            await reserve(openai_api.tokens_to_reserve(body, Operation.EMBED))
        call = telemetry.ModelCall(access.nation, name, Operation.EMBED, body)
        if permitted.model.federation_url and not federated:
            return await self._forward(principal, permitted, Operation.EMBED, body, False, call)
        answer = await answered_when_durable(
            recording, self._calls.answer(permitted, Operation.EMBED, body, call)
        )
        charge(openai_api.tokens_used(answer))
        return JSONResponse(answer, headers=permitted.headers())

    async def search(self, request: Request, federated: bool) -> Response:
        """The chunks themselves, marked with their LUB (the datasets' own when none matched); on the
        federation route with each chunk's markings, for the calling gateway."""
        admitted = await self._gate.admit(request, Operation.SEARCH, federated)
        access, principal = admitted.access, admitted.principal
        ask = grounding_api.search_request(openai_api.parse_body(admitted.body))
        datasets = await self._decisions.datasets(access, principal, ask.datasets, federated)
        chunks = await self._retrieval.retrieve(access, principal, datasets, ask.query, ask.top_k, federated)
        found = [(c.dataset, c.markings) for c in chunks] or [(d.name, d.markings) for d in datasets]
        marking = access.answer_marking(principal, None, found)
        telemetry.marked(marking)
        answer = grounding_api.search_answer(chunks, marking, with_markings=federated)
        return JSONResponse(answer, headers=marking_headers(marking))

    async def _grounded(
        self,
        admitted: Admitted,
        permitted: Permitted,
        operation: Operation,
        body: dict[str, Any],
        grounding: Grounding,
        query: str,
        federated: bool,
    ) -> Response:
        """A non-streaming answer grounded in the named datasets, with its sources and its LUB marking
        (`Access.answer_marking`: never one that excludes the user's nation)."""
        access, principal = admitted.access, admitted.principal
        datasets = await self._decisions.datasets(access, principal, grounding.datasets, federated)
        chunks = grounding_api.releasable_to_model(
            await self._retrieval.retrieve(access, principal, datasets, query, grounding.top_k, federated),
            permitted.model.markings.owner,
            frozenset(access.tenants),
        )
        marking = access.answer_marking(principal, permitted.model, [(c.dataset, c.markings) for c in chunks])
        telemetry.marked(marking)
        body = grounding_api.grounded(body, operation, chunks)
        call = telemetry.ModelCall(access.nation, permitted.model.name, operation, body)
        if permitted.model.federation_url and not federated:
            response = await self._forward(principal, permitted, operation, body, False, call)
            return _with_sources(response, chunks, marking_headers(marking))
        answer = await self._calls.answer(permitted, operation, body, call)
        charge(openai_api.tokens_used(answer))
        return JSONResponse(grounding_api.with_sources(answer, chunks), headers=marking_headers(marking))

    async def _forward(
        self,
        principal: Principal,
        permitted: Permitted,
        operation: Operation,
        body: dict[str, Any],
        stream: bool,
        call: telemetry.ModelCall,
    ) -> Response:
        """Another nation's model, through its owner's gateway (which decides again, and whose spans
        continue this trace: the call's `traceparent` goes along), with this gateway's signed assertion
        for `principal`, never the user's token. The owner's spans carry the token usage; this call's span
        records its duration."""

        def settle(tokens: int | None) -> None:
            charge(tokens)
            call.finish()

        tokens = 0
        try:
            with call.current():  # the federation client sends the current span as `traceparent`
                if stream:
                    response = await self._federation.stream(permitted, operation, principal, body, settle)
                else:
                    response, tokens = await self._federation.answer(permitted, operation, principal, body)
        except BaseException as error:
            call.fail(type(error).__name__)
            raise
        if response.status_code >= 400:
            call.fail(str(response.status_code))
        if not stream:  # a stream charges (and ends the call) when it ends
            settle(tokens)
        return response


def _with_sources(response: Response, chunks: list[Retrieved], headers: dict[str, str]) -> Response:
    """The owner's answer to a grounded prompt, with this gateway's sources and marking (its errors as
    they are)."""
    if response.status_code != 200:
        return response
    return JSONResponse(grounding_api.with_sources(json.loads(bytes(response.body)), chunks), headers=headers)
