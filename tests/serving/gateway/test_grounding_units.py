"""Grounding in datasets, without Ray: the `sovereign` extension and the search body, dataset decisions,
the prompt, the sources and the answer's marking (issue 8)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sovereign_devstack.processes import free_loopback_port
from sovereign_serving.gateway._access import Access
from sovereign_serving.gateway._decisions import Decisions
from sovereign_serving.gateway._errors import DATASET_NOT_AVAILABLE
from sovereign_serving.gateway._federation import Federation
from sovereign_serving.gateway._grounding import (
    SOURCES_PREAMBLE,
    chunks_of,
    grounded,
    grounding_of,
    query_of,
    search_answer,
    search_request,
    with_sources,
)
from sovereign_serving.gateway._retrieval import _readable

from sovereign.domain.markings import Classification, Markings, answer_marking
from sovereign.serving_contract import GatewayConfig, GatewayDataset
from tests.serving.gateway.datasets import CHUNKS, grounded_config
from tests.serving.gateway.nations import ISSUERS, gateway_signer
from tests.serving.gateway.test_gateway_units import authenticate, refusal


def access(nation: str, **options: Any) -> Access:
    return Access(GatewayConfig.model_validate(grounded_config(nation, **options)))


def user(gateway: Access, nation: str, **claims: Any) -> Any:
    return authenticate(gateway, f"Bearer {ISSUERS[nation].token(**claims)}")


def retrieved(dataset: str) -> list[Any]:
    return chunks_of(dataset, [{**c, "score": 0.5} for c in CHUNKS if c["dataset"] == dataset])


CHAT = {"model": "fra/analyst", "messages": [{"role": "user", "content": "hi"}]}


# SECTION the extension and the search body


def test_a_body_without_the_extension_is_left_alone() -> None:
    assert grounding_of(CHAT) == (CHAT, None)
    assert grounding_of({**CHAT, "sovereign": None}) == (CHAT, None)


def test_the_extension_is_taken_out_of_the_body_the_model_gets() -> None:
    body, grounding = grounding_of(
        {**CHAT, "sovereign": {"datasets": ["fra/reports", "fra/reports", "pol/x"]}}
    )
    assert body == CHAT
    assert grounding is not None and (grounding.datasets, grounding.top_k) == (["fra/reports", "pol/x"], 5)


@pytest.mark.parametrize(
    ("extension", "param"),
    [
        ({"datasets": ["fra/reports"], "topk": 5}, "sovereign.topk"),
        ({"datasets": ["fra/reports"], "top_k": 0}, "sovereign.top_k"),
        ({"datasets": ["fra/reports"], "top_k": 51}, "sovereign.top_k"),
        ({"datasets": ["fra/reports"], "top_k": "5"}, "sovereign.top_k"),
        ({"datasets": ["fra/reports"], "top_k": True}, "sovereign.top_k"),
        ({"datasets": []}, "sovereign.datasets"),
        ({"datasets": [f"fra/d{n}" for n in range(9)]}, "sovereign.datasets"),
        ({"datasets": ["FRA/Reports"]}, "sovereign.datasets.0"),
        ({"datasets": "fra/reports"}, "sovereign.datasets"),
        ({"top_k": 3}, "sovereign.datasets"),
        (["fra/reports"], "sovereign"),
    ],
    ids=[
        "unknown-key",
        "top-k-zero",
        "top-k-above-50",
        "top-k-string",
        "top-k-bool",
        "no-datasets",
        "nine-datasets",
        "bad-name",
        "datasets-not-a-list",
        "datasets-missing",
        "not-an-object",
    ],
)
def test_a_bad_extension_is_400_naming_the_field(extension: Any, param: str) -> None:
    error = refusal(lambda: grounding_of({**CHAT, "sovereign": extension}))
    assert (error.status, error.param) == (400, param)
    assert error.message.startswith(f"`{param}`")
    if param == "sovereign.topk":
        assert error.message == "`sovereign.topk`: unknown field"


def test_the_search_body() -> None:
    ask = search_request({"datasets": ["fra/reports"], "query": "routine", "top_k": 3})
    assert (ask.datasets, ask.query, ask.top_k) == (["fra/reports"], "routine", 3)
    for body, param in (
        ({"datasets": ["fra/reports"], "query": "x", "model": "m"}, "model"),
        ({"datasets": ["fra/reports"]}, "query"),
        ({"datasets": ["fra/reports"], "query": ""}, "query"),
        ({"datasets": ["fra/reports"], "query": "x", "top_k": 99}, "top_k"),
    ):
        error = refusal(lambda b=body: search_request(b))
        assert (error.status, error.param) == (400, param)


def test_what_is_searched_for() -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "latest"}, {"type": "image_url"}]},
    ]
    assert query_of({"messages": messages}, "chat") == "latest"
    assert query_of({"prompt": "once"}, "completion") == "once"
    assert refusal(lambda: query_of({"prompt": ["a", "b"]}, "completion")).param == "prompt"
    assert refusal(lambda: query_of({"messages": [{"role": "system", "content": "x"}]}, "chat")).param == (
        "messages"
    )


# SECTION the prompt, the sources and the marking


def test_the_chunks_go_first_as_a_system_message_with_their_ids() -> None:
    chunks = retrieved("fra/reports")[:2]
    body = grounded(CHAT, "chat", chunks)
    system, question = body["messages"]
    assert question == CHAT["messages"][0] and system["role"] == "system"
    assert system["content"].startswith(SOURCES_PREAMBLE)
    assert "[doc-0.md#0] (fra/reports)\nroutine report CANARY-FRA-0" in system["content"]
    assert "CANARY-FRA-1" in system["content"]
    completion = grounded({"model": "m", "prompt": "Q:"}, "completion", chunks)
    assert completion["prompt"].startswith(SOURCES_PREAMBLE) and completion["prompt"].endswith("\n\nQ:")
    assert grounded(CHAT, "chat", []) == CHAT  # nothing readable matched: the question as it was


def test_sources_name_dataset_document_and_chunk_only() -> None:
    answer = with_sources({"choices": []}, retrieved("pol/notes"))
    assert answer["sovereign"] == {
        "sources": [{"dataset": "pol/notes", "documentId": "doc-0.md", "chunkId": "doc-0.md#0"}]
    }
    found = search_answer(
        retrieved("pol/notes"), answer_marking([c.markings for c in retrieved("pol/notes")])
    )
    assert found["marking"] == {"classification": "NATO RESTRICTED", "releasableTo": ["POL"]}
    assert set(found["results"][0]) == {"dataset", "documentId", "chunkId", "text", "score"}


def test_the_marking_is_the_least_upper_bound_of_model_and_chunks() -> None:
    scribe = Markings(owner="DEU", classification="NATO RESTRICTED", releasableTo=["FRA", "POL"])
    routine, secret, narrow, _ = retrieved("fra/reports")
    assert answer_marking([scribe, routine.markings]).model_dump(by_alias=True) == {
        "classification": Classification.NATO_RESTRICTED,
        "releasableTo": ["DEU", "FRA", "POL"],
    }
    assert answer_marking([scribe, secret.markings]).classification == Classification.NATO_SECRET
    assert answer_marking([scribe, narrow.markings]).releasable_to == ["DEU", "FRA"]


# SECTION decisions


def test_a_released_dataset_is_allowed_with_its_markings() -> None:
    deu = access("DEU")
    decision = deu.decide_dataset(user(deu, "DEU"), "fra/reports")
    assert (decision.dataset, decision.resource, decision.owner, decision.allowed) == (
        "fra/reports",
        "fra/reports",
        "FRA",
        True,
    )
    assert decision.reason_codes == ("permitted",) and decision.deciding_policy_ids
    assert decision.markings is not None and decision.markings.owner == "FRA"
    assert deu.permitted_dataset(user(deu, "DEU"), decision).name == "fra/reports"


@pytest.mark.parametrize(
    ("dataset", "codes", "claims"),
    [
        ("pol/notes", {("forbidden",), ("not-permitted",)}, {}),
        ("pol/absent", {("unknown-dataset",)}, {}),
        (
            "fra/reports",
            {("forbidden",), ("not-permitted",)},
            {"clearance": Classification.NATO_UNCLASSIFIED},
        ),
    ],
    ids=["not-released", "unknown", "not-cleared"],
)
def test_forbidden_and_unknown_datasets_get_one_403(dataset: str, codes: set, claims: dict) -> None:
    deu = access("DEU")
    principal = user(deu, "DEU", **claims)
    decision = deu.decide_dataset(principal, dataset)
    assert not decision.allowed and decision.reason_codes in codes and decision.markings is None
    error = refusal(lambda: deu.permitted_dataset(principal, decision))
    assert (error.status, error.type, error.code, error.message) == (
        403,
        "permission_error",
        "dataset_not_available",
        DATASET_NOT_AVAILABLE.format(name=dataset),
    )


def test_the_federation_route_decides_owned_datasets_only() -> None:
    fra = access("FRA")
    visitor = asyncio.run(access("DEU").authenticate(f"Bearer {ISSUERS['DEU'].token()}"))  # as DEU knows it
    assert fra.decide_dataset(visitor, "fra/reports", owned_only=True).allowed
    assert fra.decide_dataset(visitor, "pol/notes", owned_only=True).reason_codes == ("not-owned",)


def test_the_gateway_drops_chunks_its_own_engine_refuses() -> None:
    deu = access("DEU")
    dataset = deu.datasets["fra/reports"]
    chunks = retrieved("fra/reports")
    forged = chunks_of(
        "fra/reports", [{**CHUNKS[0], "score": 1.0, "markings": {**CHUNKS[0]["markings"], "owner": "POL"}}]
    )
    kept = _readable(deu, user(deu, "DEU"), dataset, [*chunks, *forged])
    assert [c.chunk_id for c in kept] == [
        "doc-0.md#0",
        "doc-1.md#0",
        "doc-2.md#0",
    ]  # not FRA's own, not POL's
    low = user(deu, "DEU", clearance=Classification.NATO_RESTRICTED)
    assert [c.chunk_id for c in _readable(deu, low, dataset, chunks)] == ["doc-0.md#0", "doc-2.md#0"]


def test_an_unreachable_owner_of_a_dataset_is_503() -> None:
    dataset = GatewayDataset.model_validate(
        {
            "name": "fra/reports",
            "markings": {"owner": "FRA", "classification": "NATO RESTRICTED"},
            "federationUrl": f"http://127.0.0.1:{free_loopback_port()}/fra",
        }
    )
    visitor = asyncio.run(access("DEU").authenticate(f"Bearer {ISSUERS['DEU'].token()}"))
    error = refusal(lambda: Federation("DEU", gateway_signer("DEU")).search(dataset, visitor, "q", 3))
    assert (error.status, error.code) == (503, "dataset_unavailable")


class Recorded:
    """The gateway's decision record replaced by a list (what the audit gets)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str | None, bool, tuple[str, ...]]] = []

    async def __call__(self, access: Any, principal: Any, decision: Any, federated: bool) -> None:
        self.records.append((decision.resource, decision.owner, decision.allowed, decision.reason_codes))


def test_every_dataset_decision_is_recorded_before_the_403() -> None:
    deu, routes = access("DEU"), Recorded()
    principal = user(deu, "DEU")
    decisions = Decisions(record=routes)
    decide = decisions.datasets(deu, principal, ["pol/notes", "fra/reports", "pol/absent"], False)
    error = refusal(lambda: decide)
    assert error.message == DATASET_NOT_AVAILABLE.format(name="pol/notes")  # the first denied
    assert [(r[0], r[1], r[2]) for r in routes.records] == [
        ("pol/notes", "POL", False),
        ("fra/reports", "FRA", True),
        ("pol/absent", None, False),
    ]
    allowed = asyncio.run(decisions.datasets(deu, principal, ["fra/reports"], False))
    assert [d.name for d in allowed] == ["fra/reports"]


def test_a_chunk_goes_only_to_a_model_whose_owner_may_receive_it() -> None:
    """The model's nation reads the prompt: a chunk the user may read but the model's owner may not never
    goes into it (NATO-wide chunks go to any member's model)."""
    from sovereign_serving.gateway._grounding import releasable_to_model

    chunks = retrieved("fra/reports")
    members = frozenset({"FRA", "DEU", "POL", "EST"})
    kept = releasable_to_model(chunks, "DEU", members)
    assert kept and all("DEU" in c.markings.releasable_set(members) for c in kept)
    assert len(kept) < len(chunks)  # the fixture's FRA-only chunk stays out
    assert releasable_to_model(chunks, "FRA", members) == chunks  # the owner's own model gets them all


# SECTION the recipient rule: an answer is never marked so that it excludes the nation it goes to

FRA_DISCLOSES_REPORTS = """
@id("reports-to-pol")
permit (principal, action == Sovereign::Action::"read", resource == Sovereign::Dataset::"fra/reports")
when { resource.owner == "FRA" && principal.nationality == "POL" };
"""


def test_what_an_owner_discloses_is_marked_for_its_recipient_and_recorded_so() -> None:
    from sovereign.policy.nation_rules import nation_bundle_rules
    from tests.serving.gateway.nations import BUNDLE, FRA_DISCLOSES_LIAISON

    rules = [("liaison", FRA_DISCLOSES_LIAISON), ("reports", FRA_DISCLOSES_REPORTS)]
    pol = access("POL", bundle=BUNDLE.with_nation_rules({"FRA": nation_bundle_rules("FRA", rules)}))
    principal = user(pol, "POL")
    decision = pol.decide_model(principal, "fra/liaison")  # FRA's own only, disclosed to POL by FRA's rule
    assert decision.allowed and decision.reason_codes == ("permitted", "disclosed-by-owner")
    assert decision.deciding_policy_ids == ("fra/liaison/liaison-to-pol",)
    assert decision.marking is not None and decision.marking.releasable_to == ["FRA", "POL"]
    narrow = retrieved("fra/reports")[2]  # releasable to DEU only
    grounded_marking = pol.answer_marking(
        principal, pol.models["fra/liaison"], [("fra/reports", narrow.markings)]
    )
    assert grounded_marking.releasable_to == ["FRA", "POL"]
    assert pol.answer_marking(principal, None, [("fra/reports", narrow.markings)]).releasable_to == [
        "DEU",
        "FRA",
        "POL",
    ]
    released = pol.decide_dataset(principal, "pol/notes")
    assert released.reason_codes == ("permitted",)


def test_an_answer_that_would_exclude_its_recipient_is_never_delivered() -> None:
    pol = access("POL")  # no rule of FRA discloses fra/reports' narrow chunk to POL
    principal = user(pol, "POL")
    narrow = retrieved("fra/reports")[2]
    error = refusal(lambda: pol.answer_marking(principal, None, [("fra/reports", narrow.markings)]))
    assert (error.status, error.code) == (403, "marking_excludes_recipient")
    assert not pol.decide_model(principal, "fra/analyst").allowed  # released to DEU only: refused
