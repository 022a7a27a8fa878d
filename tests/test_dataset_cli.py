"""`sovereign dataset search` against a stand-in gateway (the real one: tests/serving/gateway/
test_grounding_on_ray.py): what it sends, its table and JSON, and its exit codes (0, 3 denied, 1 other)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from sovereign.cli.main import app

FOUND = {
    "results": [
        {
            "dataset": "est/field-reports",
            "documentId": "patrol.md",
            "chunkId": "patrol.md#0",
            "text": "Patrol  report\nfrom the border " + "x" * 200,
            "score": 0.8123,
        }
    ],
    "marking": {"classification": "NATO RESTRICTED", "releasableTo": ["DEU", "EST"]},
}


class Gateway:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.answer: tuple[int, Any] = (200, FOUND)
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                gateway.requests.append((self.path, dict(self.headers), body))
                status, answer = gateway.answer
                payload = json.dumps(answer).encode() if not isinstance(answer, bytes) else answer
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    started = Gateway()
    thread = threading.Thread(target=started.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield started
    finally:
        started.server.shutdown()
        started.server.server_close()


def run(gateway: Gateway, *args: str) -> Any:
    env = {"SOVEREIGN_GATEWAY_URL": gateway.url, "SOVEREIGN_NATION": "DEU", "SOVEREIGN_TOKEN": "tok"}
    return CliRunner().invoke(app, ["dataset", "search", "--dataset", "est/field-reports", *args], env=env)


def test_json_output_and_what_is_sent(gateway: Gateway) -> None:
    result = run(gateway, "patrol", "--dataset", "fra/notes", "--top-k", "3", "--output", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == FOUND
    path, headers, body = gateway.requests[0]
    assert path == "/deu/v1/sovereign/search" and headers["Authorization"] == "Bearer tok"
    assert body == {"datasets": ["est/field-reports", "fra/notes"], "query": "patrol", "top_k": 3}


def test_table_output_with_marking_and_a_short_excerpt(gateway: Gateway) -> None:
    result = run(gateway, "patrol", "--nation", "EST")
    assert result.exit_code == 0, result.output
    assert "NATO RESTRICTED REL TO DEU,EST" in result.output
    assert "patrol.md#0" in result.output and "0.812" in result.output
    assert "x" * 100 not in result.output  # an excerpt, not the chunk
    assert gateway.requests[0][0] == "/est/v1/sovereign/search"


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (403, 3, "dataset 'est/field-reports' is not available to you"),
        (401, 1, "invalid token: expired"),
        (503, 1, "the dataset cannot be searched right now"),
    ],
)
def test_exit_codes_carry_the_gateways_message(
    gateway: Gateway, status: int, code: int, message: str
) -> None:
    gateway.answer = (status, {"error": {"message": message, "type": "x", "param": None, "code": "x"}})
    result = run(gateway, "patrol")
    assert result.exit_code == code and message in result.output


def test_no_gateway_or_an_unreachable_one_is_exit_1(gateway: Gateway) -> None:
    gateway.answer = (502, b"<html>bad gateway</html>")
    assert "HTTP 502" in run(gateway, "patrol").output
    result = CliRunner().invoke(
        app,
        ["dataset", "search", "-d", "est/x", "--token", "t", "--nation", "EST", "q"],
        env={"SOVEREIGN_GATEWAY_URL": ""},
    )
    assert result.exit_code == 1 and "SOVEREIGN_GATEWAY_URL" in result.output
