"""Grounded answers through the gateway on a real (in-process) Ray Serve, with fake retrievers (issue 8).

One Ray for the module: the fake model, fake retrievers `fra-retriever` and `pol-retriever` implementing the
contract's `search` (tests/serving/gateway/fake_retriever.py), the gateways of DEU, FRA and POL, and a second
DEU gateway at `/deu-federated` whose config gives FRA's datasets a `federationUrl`: it must search them at
FRA's `/federation/v1/sovereign/search` with an assertion signed by DEU's gateway key (in a real OpenBao),
where FRA decides again. Every span goes to a real OTLP receiver,
whose bodies are scanned for the chunks' canary words: none may appear there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from sovereign_devstack.otlp_receiver import OtlpReceiver
from sovereign_serving.gateway._errors import DATASET_NOT_AVAILABLE
from typer.testing import CliRunner

from sovereign.cli.main import app as cli
from sovereign.domain.nations import retriever_application_name
from tests.helpers import wait_until
from tests.serving.gateway.datasets import CHUNKS, canaries, grounded_config
from tests.serving.gateway.nations import FAKE_APP, ISSUERS
from tests.serving.gateway.test_gateway_on_ray import FAKE_IMPORT_PATH, ServeConfig, gateway_app
from tests.serving.local_serve import local_serve

FEDERATED_DEU = "/deu-federated"
CANARIES = [c["text"].split()[2] for c in CHUNKS]


def retriever_app(nation: str) -> dict[str, Any]:
    return {
        "name": retriever_application_name(nation),
        "route_prefix": None,
        "import_path": "tests.serving.gateway.fake_retriever:build",
        "args": {"nation": nation},
    }


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as started:
        yield started


@pytest.fixture(scope="module")
def base_url(
    receiver: OtlpReceiver,
    deu_signing: tuple[dict[str, Any], dict[str, Any]],
) -> Iterator[str]:
    deu_signer, deu_keys = deu_signing
    started = time.monotonic()
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    with local_serve(otel) as port:
        fra_gateway = {"FRA": f"http://127.0.0.1:{port}/fra"}
        ServeConfig(
            port,
            [
                {"name": FAKE_APP, "route_prefix": None, "import_path": FAKE_IMPORT_PATH},
                retriever_app("FRA"),
                retriever_app("POL"),
                gateway_app("DEU", grounded_config("DEU")),
                gateway_app("FRA", grounded_config("FRA", gateway_keys={"DEU": deu_keys})),
                gateway_app("POL", grounded_config("POL")),
                gateway_app(
                    "DEU",
                    {**grounded_config("DEU", federation_urls=fra_gateway), "federation": deu_signer},
                    prefix=FEDERATED_DEU,
                ),
            ],
        ).apply()
        print(f"\nRay, Serve and the applications up in {time.monotonic() - started:.1f} s")
        yield f"http://127.0.0.1:{port}"


def user(nation: str, **claims: Any) -> str:
    return ISSUERS[nation].token(**claims)


def client(base_url: str, nation: str, token: str, prefix: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{base_url}{prefix or '/' + nation.lower()}/v1", api_key=token, max_retries=0
    )


def grounded_chat(
    deu: openai.OpenAI, query: str, datasets: list[str], model: str = "deu/scribe", top_k: int = 1
) -> tuple[dict[str, Any], Any]:
    raw = deu.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": query}],
        extra_body={"sovereign": {"datasets": datasets, "top_k": top_k}},
    )
    return json.loads(raw.text), raw.headers


def marking(headers: Any) -> tuple[str, str]:
    return headers["X-Sovereign-Classification"], headers["X-Sovereign-Releasable-To"]


def search(base_url: str, token: str, body: dict[str, Any], prefix: str = "/deu") -> httpx.Response:
    return httpx.post(
        f"{base_url}{prefix}/v1/sovereign/search",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


# SECTION grounded answers


@pytest.mark.parametrize("prefix", [None, FEDERATED_DEU], ids=["handle", "federated"])
@pytest.mark.parametrize(
    ("query", "chunk", "expected"),
    [
        ("a routine question", "doc-0.md#0", ("NATO RESTRICTED", "DEU,FRA,POL")),  # the model's own marking
        ("a secret question", "doc-1.md#0", ("NATO SECRET", "DEU,FRA,POL")),  # a SECRET chunk raises it
        ("a narrow question", "doc-2.md#0", ("NATO RESTRICTED", "DEU,FRA")),  # releasable to DEU only
    ],
    ids=["routine", "secret-raises", "narrow-narrows"],
)
def test_a_grounded_chat_lists_its_sources_and_is_marked_with_the_lub(
    base_url: str, prefix: str | None, query: str, chunk: str, expected: tuple[str, str]
) -> None:
    deu = client(base_url, "DEU", user("DEU"), prefix)
    answer, headers = grounded_chat(deu, query, ["fra/reports"])
    assert answer["choices"][0]["message"]["content"] == "messages=2 max_tokens=16"  # + the sources message
    assert answer["sovereign"] == {
        "sources": [{"dataset": "fra/reports", "documentId": chunk.split("#")[0], "chunkId": chunk}]
    }
    assert marking(headers) == expected


def test_a_grounded_prompt_to_another_nations_model_through_its_gateway(base_url: str) -> None:
    """Kuberay: FRA's model and dataset both reached over HTTP; this gateway adds the sources and marking."""
    deu = client(base_url, "DEU", user("DEU"), FEDERATED_DEU)
    answer, headers = grounded_chat(deu, "a secret question", ["fra/reports"], model="fra/analyst")
    assert answer["choices"][0]["message"]["content"] == "messages=2 max_tokens=16"
    assert [s["chunkId"] for s in answer["sovereign"]["sources"]] == ["doc-1.md#0"]
    assert marking(headers) == ("NATO SECRET", "DEU,FRA")


def test_a_grounded_completion_and_several_datasets(base_url: str) -> None:
    pol = client(base_url, "POL", user("POL"))
    raw = pol.completions.with_raw_response.create(
        model="pol/scribe",
        prompt="routine",
        extra_body={"sovereign": {"datasets": ["fra/reports", "pol/notes"], "top_k": 5}},
    )
    answer = json.loads(raw.text)
    chunks = [(s["dataset"], s["chunkId"]) for s in answer["sovereign"]["sources"]]
    # POL may read FRA's routine and SECRET chunks (releasable to POL), not the DEU-only or FRA-only ones.
    assert sorted(chunks) == [
        ("fra/reports", "doc-0.md#0"),
        ("fra/reports", "doc-1.md#0"),
        ("pol/notes", "doc-0.md#0"),
    ]
    assert marking(raw.headers) == ("NATO SECRET", "POL")


def test_a_chunk_above_the_users_clearance_is_never_used(base_url: str) -> None:
    deu = client(base_url, "DEU", user("DEU", clearance="NATO RESTRICTED"))
    answer, headers = grounded_chat(deu, "a secret question", ["fra/reports"], top_k=5)
    assert [s["chunkId"] for s in answer["sovereign"]["sources"]] == ["doc-0.md#0", "doc-2.md#0"]
    assert marking(headers) == ("NATO RESTRICTED", "DEU,FRA")


# SECTION refusals


@pytest.mark.parametrize("dataset", ["pol/notes", "pol/nothing-here"], ids=["forbidden", "unknown"])
def test_forbidden_and_unknown_datasets_get_one_403(base_url: str, dataset: str) -> None:
    deu = client(base_url, "DEU", user("DEU"))
    with pytest.raises(openai.PermissionDeniedError) as denied:
        grounded_chat(deu, "routine", ["fra/reports", dataset])
    assert denied.value.body == {
        "message": DATASET_NOT_AVAILABLE.format(name=dataset),
        "type": "permission_error",
        "param": None,
        "code": "dataset_not_available",
    }
    refused = search(base_url, user("DEU"), {"datasets": [dataset], "query": "routine"})
    assert refused.status_code == 403 and refused.json()["error"] == denied.value.body


def test_streaming_a_grounded_answer_and_a_bad_extension_are_400(base_url: str) -> None:
    deu = client(base_url, "DEU", user("DEU"))
    with pytest.raises(openai.BadRequestError) as streamed:
        deu.chat.completions.create(
            model="deu/scribe",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            extra_body={"sovereign": {"datasets": ["fra/reports"]}},
        )
    assert streamed.value.body["param"] == "stream"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as unknown:
        grounded_chat(deu, "x", ["fra/reports"], top_k=99)
    assert unknown.value.body["param"] == "sovereign.top_k"  # type: ignore[index]


def test_a_failing_retriever_is_503_without_its_message(base_url: str) -> None:
    deu = client(base_url, "DEU", user("DEU"))
    with pytest.raises(openai.InternalServerError) as failed:
        grounded_chat(deu, "explode CANARY-QUERY", ["fra/reports"])
    assert failed.value.status_code == 503 and failed.value.body["code"] == "dataset_unavailable"  # type: ignore[index]
    assert "CANARY-QUERY" not in failed.value.response.text


# SECTION the search route


def test_search_returns_only_readable_chunks_marked_with_their_lub(base_url: str) -> None:
    response = search(
        base_url, user("DEU"), {"datasets": ["fra/reports"], "query": "secret narrow", "top_k": 10}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [r["chunkId"] for r in answer["results"]] == ["doc-1.md#0", "doc-2.md#0", "doc-0.md#0"]
    assert answer["results"][0]["text"] == "secret report CANARY-FRA-1 of fra/reports"
    assert set(answer["results"][0]) == {"dataset", "documentId", "chunkId", "text", "score"}
    assert answer["marking"] == {"classification": "NATO SECRET", "releasableTo": ["DEU", "FRA"]}
    assert marking(response.headers) == ("NATO SECRET", "DEU,FRA")
    for canary in canaries(unreadable_by="DEU"):
        assert canary not in response.text


def test_the_gateway_drops_what_a_broken_retriever_returns(base_url: str) -> None:
    query = {"datasets": ["fra/reports"], "query": "leak-everything withheld", "top_k": 10}
    for prefix in ("/deu", FEDERATED_DEU):
        response = search(base_url, user("DEU"), query, prefix)
        assert response.status_code == 200, response.text
        assert "doc-3.md#0" not in response.text and "CANARY-FRA-3" not in response.text


def test_the_owner_decides_again_on_its_federation_route(base_url: str) -> None:
    body = {"datasets": ["fra/reports"], "query": "routine"}
    # FRA's federation route takes a peer gateway's assertion only, never a user's token.
    refused = search(base_url, user("DEU"), body, "/fra/federation")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "not-an-assertion"
    # Through DEU's gateway, FRA decides again: a user DEU clears but FRA's dataset is above gets 403.
    low = search(base_url, user("DEU", clearance="NATO UNCLASSIFIED"), body, FEDERATED_DEU)
    assert low.status_code == 403


def test_the_cli_searches_through_the_gateway(base_url: str) -> None:
    env = {"SOVEREIGN_GATEWAY_URL": base_url, "SOVEREIGN_NATION": "DEU"}
    common = ["dataset", "search", "--token", user("DEU"), "--dataset", "fra/reports"]
    found = CliRunner().invoke(cli, [*common, "secret", "--top-k", "1", "--output", "json"], env=env)
    assert found.exit_code == 0, found.output
    assert [r["chunkId"] for r in json.loads(found.output)["results"]] == ["doc-1.md#0"]
    table = CliRunner().invoke(cli, [*common, "routine"], env=env)
    assert (
        table.exit_code == 0 and "NATO SECRET REL TO DEU,FRA" in table.output and "doc-0.md#0" in table.output
    )
    denied = CliRunner().invoke(cli, [*common, "--dataset", "pol/notes", "routine"], env=env)
    assert denied.exit_code == 3 and "not available to you" in denied.output


# SECTION no chunk text in the traces


def test_spans_name_datasets_and_counts_never_chunk_text(base_url: str, receiver: OtlpReceiver) -> None:
    grounded_chat(client(base_url, "DEU", user("DEU")), "a secret question", ["fra/reports"], top_k=3)

    def retrieved() -> list[dict[str, Any]] | None:
        spans = [s for s in receiver.spans() if s["name"] == "retrieve fra/reports"]
        return spans or None

    span = wait_until(retrieved, "the retrieve span", timeout=30)[-1]
    assert span["attributes"]["sovereign.dataset"] == "fra/reports"
    assert isinstance(span["attributes"]["sovereign.retrieval.chunks"], int)

    def whole_trace() -> bool:
        """Every span of this request's trace, its root (the gateway's SERVER span, ended last) included:
        the other tests' spans, ended before it, went out in the same or earlier batches."""
        trace = [s for s in receiver.spans() if s["trace_id"] == span["trace_id"]]
        ids = {s["span_id"] for s in trace} | {None}
        return any(s["parent_span_id"] is None for s in trace) and all(
            s["parent_span_id"] in ids for s in trace
        )

    wait_until(whole_trace, "the request's whole trace", timeout=30)
    exported = b"".join(receiver.raw_bodies())
    assert exported and not [c for c in CANARIES if c.encode() in exported]
