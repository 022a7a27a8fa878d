"""What the gateway's traces and audit see, without Ray: every request's `ModelDecision` (allowed or not,
with its codes, policy ids and bundle version), and the W3C trace context sent along a federation call."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from sovereign_serving.gateway._access import Access
from sovereign_serving.gateway._decision_types import ModelDecision
from sovereign_serving.gateway._federation import Federation
from sovereign_serving.gateway._telemetry import _parent

from sovereign.domain.markings import Classification
from sovereign.serving_contract import GatewayConfig
from tests.serving.gateway.nations import ISSUERS, gateway_config, gateway_signer
from tests.serving.gateway.test_gateway_units import authenticate, refusal


def access(nation: str, **options: Any) -> Access:
    return Access(GatewayConfig.model_validate(gateway_config(nation, **options)))


def user(gateway: Access, nation: str) -> Any:
    return authenticate(gateway, f"Bearer {ISSUERS[nation].token()}")


def test_an_allowed_model_has_its_owner_marking_policy_ids_and_bundle_version() -> None:
    deu = access("DEU")
    decision = deu.decide_model(user(deu, "DEU"), "fra/analyst")
    assert isinstance(decision, ModelDecision)
    assert (decision.model, decision.owner, decision.allowed, decision.decision) == (
        "fra/analyst",
        "FRA",
        True,
        "allow",
    )
    assert decision.reason_codes == ("permitted",)
    assert decision.deciding_policy_ids and decision.bundle_version == deu.engine.bundle.version
    assert decision.marking is not None and decision.marking.classification == Classification.NATO_RESTRICTED
    assert deu.permitted(user(deu, "DEU"), decision).model.name == "fra/analyst"


@pytest.mark.parametrize(
    ("gateway_nation", "user_nation", "model", "owned_only", "owner", "codes"),
    [
        ("POL", "POL", "fra/analyst", False, "FRA", {("forbidden",), ("not-permitted",)}),
        ("POL", "POL", "fra/absent", False, None, {("unknown-model",)}),
        # DEU's federation route, a FRA user (whom FRA's policy allows) asking for FRA's model: not DEU's.
        ("DEU", "FRA", "fra/analyst", True, "FRA", {("not-owned",)}),
    ],
    ids=["not-released", "unknown", "federation-route-for-a-model-not-owned"],
)
def test_denials_are_decisions_too_and_still_one_403(
    gateway_nation: str,
    user_nation: str,
    model: str,
    owned_only: bool,
    owner: str | None,
    codes: set[tuple[str, ...]],
) -> None:
    gateway = access(gateway_nation)
    header = f"Bearer {ISSUERS[user_nation].token()}"
    principal = asyncio.run(access(user_nation).authenticate(header))  # as the user's own gateway knows it
    decision = gateway.decide_model(principal, model, owned_only=owned_only)
    assert (decision.allowed, decision.decision, decision.owner, decision.marking) == (
        False,
        "deny",
        owner,
        None,
    )
    assert decision.reason_codes in codes
    assert decision.bundle_version == gateway.engine.bundle.version
    error = refusal(lambda: gateway.permitted(principal, decision))
    assert (error.status, error.code) == (403, "model_not_available")


@pytest.fixture
def owner_gateway() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A stand-in for the owner's gateway on a free port: records each request's headers, answers JSON."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 — http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append({key.lower(): value for key, value in self.headers.items()})
            body = json.dumps({"choices": [], "usage": {"total_tokens": 3}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fra", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_federation_call_carries_the_current_trace_to_the_owner(
    owner_gateway: tuple[str, list[dict[str, str]]],
) -> None:
    base, seen = owner_gateway
    deu = access("DEU", federation_urls={"FRA": base})
    principal = user(deu, "DEU")
    permitted = deu.permit(principal, "fra/analyst")
    trace_id, span_id = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    current = NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1)))
    body = {"model": "fra/analyst", "messages": [{"role": "user", "content": "x"}]}

    async def forward() -> int:
        with trace.use_span(current):
            _, tokens = await Federation("DEU", gateway_signer("DEU")).answer(
                permitted, "chat", principal, body
            )
        return tokens

    assert asyncio.run(forward()) == 3
    [headers] = seen
    assert headers["traceparent"] == f"00-{trace_id:032x}-{span_id:016x}-01"
    assert headers["authorization"].startswith("Bearer ")  # this gateway's assertion, never the user's token
    assert jwt.get_unverified_header(headers["authorization"][7:])["typ"] == "sovereign-federation+jwt"


def test_a_users_request_starts_the_gateways_own_trace_linked_to_the_clients() -> None:
    """The trace id an audit record carries is never one a client chose; only the federation routes (another
    nation's gateway) continue the caller's trace."""
    client_trace, client_span = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    headers = {"traceparent": f"00-{client_trace}-{client_span}-01"}
    parent, links = _parent({"path": "/deu/v1/chat/completions", "root_path": "/deu"}, headers)
    assert not trace.get_current_span(parent).get_span_context().is_valid  # a new trace
    [link] = links
    assert (f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") == (client_trace, client_span)
    assert _parent({"path": "/v1/models"}, {})[1] == []
    federated, links = _parent({"path": "/fra/federation/v1/chat/completions", "root_path": "/fra"}, headers)
    assert f"{trace.get_current_span(federated).get_span_context().trace_id:032x}" == client_trace
    assert links == []
