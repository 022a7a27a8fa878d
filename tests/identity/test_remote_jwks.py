"""A Tenant whose issuer serves its keys at `jwksUri`: fetched from a real local HTTP server, cached,
refetched when a token names a new kid, and every fetch failure a refusal (fail closed)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sovereign_devstack.processes import free_loopback_port

from sovereign.domain.markings import Classification
from sovereign.identity import remote_jwks
from sovereign.identity.tokens import (
    TokenRejected,
    issuers_by_url,
    trusted_issuer_from_tenant,
    validate_token,
)

ISS, AUD = "https://id.lva.example", "sovereign-lva"
NOW = 1_800_000_000


def public_jwk(private: Any, kid: str, alg: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(private.public_key()))
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


class JwksServer:
    """Serves `keys` as a JWKS at /jwks on a loopback port and counts the requests."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.requests = 0
        self.status = 200
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 — http.server's name
                server.requests += 1
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[JwksServer]:
    remote_jwks.forget_remote_key_sets()
    running = JwksServer()
    try:
        yield running
    finally:
        running.stop()
        remote_jwks.forget_remote_key_sets()


def tenant(uri: str) -> dict[str, Any]:
    identity = {"issuer": ISS, "audience": AUD, "jwksUri": uri}
    return {"spec": {"nation": "LVA", "clearance": "NATO SECRET", "identity": identity}}


def token(key: Any, kid: str, alg: str = "EdDSA", **claims: Any) -> str:
    payload = {
        "iss": ISS,
        "aud": AUD,
        "sub": "janis",
        "nationality": "LVA",
        "clearance": "COSMIC TOP SECRET",
        "iat": NOW,
        "exp": NOW + 600,
        **claims,
    }
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


def validate(uri: str, text: str) -> Any:
    return validate_token(text, issuers_by_url([trusted_issuer_from_tenant(tenant(uri))]), now=NOW)


def test_a_token_signed_by_a_served_key_is_accepted_and_the_set_is_cached(server: JwksServer) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    server.keys = [public_jwk(key, "lva-1", "EdDSA")]
    principal = validate(server.uri, token(key, "lva-1"))
    assert (principal.nationality, principal.clearance, principal.clearance_capped) == (
        "LVA",
        Classification.NATO_SECRET,
        True,
    )
    validate(server.uri, token(key, "lva-1", sub="ilze"))
    assert server.requests == 1  # the second token used the cached set


def test_the_same_algorithm_and_key_rules_hold_for_served_keys(server: JwksServer) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    p384 = ec.generate_private_key(ec.SECP384R1())
    server.keys = [public_jwk(key, "lva-1", "EdDSA"), {**public_jwk(p384, "p384", "ES384"), "alg": "ES256"}]
    forger = ed25519.Ed25519PrivateKey.generate()
    cases = {
        "bad-signature": token(forger, "lva-1"),
        "unsupported-algorithm": token(p384, "p384", alg="ES384"),
    }
    for reason, text in cases.items():
        with pytest.raises(TokenRejected) as rejected:
            validate(server.uri, text)
        assert rejected.value.reason_code == reason
    with pytest.raises(TokenRejected) as rejected:
        validate(server.uri, token(ec.generate_private_key(ec.SECP256R1()), "p384", alg="ES256"))
    assert rejected.value.reason_code == "unknown-key"  # a P-384 key under an ES256 header never verifies


def test_an_unreachable_key_set_refuses_the_token(server: JwksServer) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    down = f"http://127.0.0.1:{free_loopback_port()}/jwks"  # nothing listens there
    with pytest.raises(TokenRejected) as rejected:
        validate(down, token(key, "lva-1"))
    assert rejected.value.reason_code == "issuer-keys-unavailable"
    assert down in rejected.value.message

    server.status = 503
    with pytest.raises(TokenRejected) as rejected:
        validate(server.uri, token(key, "lva-1"))
    assert rejected.value.reason_code == "issuer-keys-unavailable"


def test_a_rotated_key_is_refetched_and_accepted(server: JwksServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote_jwks, "JWKS_REFETCH_COOLDOWN_SECONDS", 0.0)
    old, new = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    server.keys = [public_jwk(old, "lva-1", "EdDSA")]
    validate(server.uri, token(old, "lva-1"))
    server.keys = [public_jwk(new, "lva-2", "EdDSA")]  # the issuer rotated
    assert validate(server.uri, token(new, "lva-2")).subject == "janis"
    assert server.requests == 2
    with pytest.raises(TokenRejected) as rejected:  # a kid the issuer does not serve, even refetched
        validate(server.uri, token(new, "lva-9"))
    assert rejected.value.reason_code == "unknown-key"


def test_an_unknown_kid_refetches_at_most_once_per_cooldown(server: JwksServer) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    server.keys = [public_jwk(key, "lva-1", "EdDSA")]
    validate(server.uri, token(key, "lva-1"))
    for kid in ("made-up-1", "made-up-2", "made-up-3"):
        with pytest.raises(TokenRejected):
            validate(server.uri, token(key, kid))
    assert server.requests == 1  # within the cooldown: no refetch for made-up kids
