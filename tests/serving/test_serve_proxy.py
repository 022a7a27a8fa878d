"""The Serve proxy's callback middlewares, driven as ASGI apps through httpx: Ray's proxy answers its own
failures in plain text (or, for one it does not classify, not at all, and its HTTP server says `500
Internal Server Error`); a client of the nation's endpoint gets an OpenAI-shaped error instead. The gateway's
own answers pass untouched. The running proxy is tried in tests/serving/e2e (a gateway replica killed under
traffic, `/-/routes`)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sovereign_serving.serve_proxy import OpenAIShapedProxyErrors, WithoutRouteTable, proxy_middlewares
from starlette.types import Receive, Scope, Send


async def proxy_sent_nothing(scope: Scope, receive: Receive, send: Send) -> None:
    """Ray's proxy when the replica died under the request: `send_http_response_on_exception` sends no
    message for a 500."""


async def proxy_backpressure(scope: Scope, receive: Receive, send: Send) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"3")]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": b"Request dropped due to backpressure (num_queued=9)."})


async def gateway_refusal(scope: Scope, receive: Receive, send: Send) -> None:
    body = b'{"error": {"message": "your nation\'s keys are locked", "code": "vault_sealed"}}'
    await send(
        {"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


async def stream_then_replica_died(scope: Scope, receive: Receive, send: Send) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
    )
    await send({"type": "http.response.body", "body": b"data: {}\n\n", "more_body": True})
    raise RuntimeError("the replica died")


async def proxy_raised(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("an error inside the proxy, before any answer")


def call(app: object, path: str = "/fra/v1/chat/completions") -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=OpenAIShapedProxyErrors(app))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            return await client.post(path, json={"model": "fra/analyst"})

    return asyncio.run(go())


@pytest.mark.parametrize("app", [proxy_sent_nothing, proxy_raised], ids=["no answer", "raised"])
def test_a_request_the_proxy_failed_unanswered_gets_an_openai_shaped_503(app: object) -> None:
    response = call(app)
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert error["code"] == "endpoint_unavailable" and error["type"] == "server_error" and error["message"]


def test_the_proxys_own_plain_text_refusal_becomes_json_and_keeps_retry_after() -> None:
    response = call(proxy_backpressure)
    assert response.status_code == 503 and response.headers["retry-after"] == "3"
    assert response.json()["error"]["code"] == "endpoint_unavailable"
    assert "num_queued" not in response.text  # Ray's internals are not the client's business


def test_the_gateways_own_answers_pass_untouched() -> None:
    response = call(gateway_refusal)
    assert response.status_code == 503 and response.json()["error"]["code"] == "vault_sealed"


def test_a_started_stream_whose_replica_died_is_not_given_a_second_answer() -> None:
    with pytest.raises(RuntimeError, match="the replica died"):
        call(stream_then_replica_died)


def test_the_route_table_stays_hidden_behind_both() -> None:
    assert [m.cls for m in proxy_middlewares()] == [WithoutRouteTable, OpenAIShapedProxyErrors]
    response = call(WithoutRouteTable(proxy_sent_nothing), "/-/routes")
    assert response.status_code == 404 and response.text == "Not Found"
