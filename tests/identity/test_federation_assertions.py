"""Federation assertions as data: one good assertion, then a table of cases that each change one thing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from sovereign.domain.markings import Classification, Principal
from sovereign.identity.federation_assertions import (
    MAX_TTL_SECONDS,
    AssertionRejected,
    PeerGateway,
    ReplayCache,
    assertion,
    assertion_claims,
    assertion_signing_input,
    peer_gateway_from_tenant,
    verify_assertion,
)
from sovereign.identity.tokens import issue_token

NOW = 1_800_000_000.0
BODY = b'{"model":"fra/analyst","messages":[]}'
ROUTE = "chat/completions"
KEYS = {nation: Ed25519PrivateKey.generate() for nation in ("DEU", "POL")}


def jwks(key: Ed25519PrivateKey, kid: str) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**public, "kid": kid, "alg": "EdDSA", "use": "sig"}]}


def tenant(nation: str, clearance: str = "NATO SECRET", suspended: bool = False) -> dict[str, Any]:
    return {
        "spec": {"nation": nation, "clearance": clearance, "suspended": suspended},
        "status": {"federation": {"jwks": jwks(KEYS[nation], f"{nation}-gw")}},
    }


PEERS = {t["spec"]["nation"]: peer_gateway_from_tenant(t) for t in (tenant("DEU"), tenant("POL"))}
ANALYST = Principal(
    sub="analyst", nationality="DEU", clearance=Classification.NATO_SECRET, groups=["g"], issuerNation="DEU"
)


def signed(claims: dict[str, Any], key: Ed25519PrivateKey | None = None, kid: str = "DEU-gw") -> str:
    data = assertion_signing_input(kid, claims)
    return assertion(data, (key or KEYS["DEU"]).sign(data))


def claims(**changes: Any) -> dict[str, Any]:
    made = assertion_claims("DEU", "FRA", ANALYST, ROUTE, BODY, link="link-1", now=NOW)
    return {**made, **changes}


def verify(token: str, peers: dict[str, PeerGateway | None] = PEERS, **overrides: Any) -> Any:
    given = {"owner": "FRA", "route": ROUTE, "body": BODY, "replay": ReplayCache(), "now": NOW, **overrides}
    return verify_assertion(token, {k: v for k, v in peers.items() if v is not None}, **given)


def test_a_good_assertion_gives_the_callers_user_with_the_link() -> None:
    accepted = verify(signed(claims()))
    assert accepted.caller == "DEU" and accepted.link == "link-1"
    assert accepted.principal == ANALYST


def test_the_callers_tenant_caps_clearance_and_says_it_is_suspended() -> None:
    peers = {"DEU": peer_gateway_from_tenant(tenant("DEU", "NATO RESTRICTED", suspended=True))}
    accepted = verify(signed(claims()), peers)  # type: ignore[arg-type]
    assert accepted.principal.clearance == Classification.NATO_RESTRICTED
    assert accepted.principal.tenant_suspended


def test_a_replayed_assertion_is_refused() -> None:
    replay, token = ReplayCache(), signed(claims())
    verify(token, replay=replay)
    with pytest.raises(AssertionRejected) as again:
        verify(token, replay=replay)
    assert again.value.reason_code == "replayed"


def test_the_replay_cache_is_bounded_and_forgets_expired_ones() -> None:
    replay = ReplayCache(size=2)
    replay.admit("a", NOW + 10, NOW)
    replay.admit("b", NOW + 10, NOW)
    with pytest.raises(AssertionRejected, match="replay-cache-full"):
        replay.admit("c", NOW + 10, NOW)
    replay.admit("c", NOW + 100, NOW + 60)  # a and b expired


def user_token() -> str:
    pem = KEYS["DEU"].private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    return issue_token(
        pem, "DEU-gw", "https://id/deu", "sovereign-deu", "DEU", "u", Classification.NATO_SECRET
    )


REFUSED: list[tuple[str, Callable[[], str], dict[str, Any], str]] = [
    ("a user's token", user_token, {}, "not-an-assertion"),
    ("not a JWS", lambda: "a.b", {}, "malformed"),
    ("expired", lambda: signed(claims(iat=NOW - 100, exp=NOW - 40)), {}, "expired"),
    ("issued in the future", lambda: signed(claims(iat=NOW + 30, exp=NOW + 60)), {}, "not-yet-valid"),
    ("living too long", lambda: signed(claims(exp=NOW + MAX_TTL_SECONDS + 1)), {}, "lifetime-too-long"),
    ("for another owner", lambda: signed(claims()), {"owner": "POL"}, "wrong-audience"),
    ("for another route", lambda: signed(claims()), {"route": "embeddings"}, "wrong-route"),
    ("for another body", lambda: signed(claims()), {"body": BODY + b" "}, "body-mismatch"),
    ("signed by another nation's key", lambda: signed(claims(), KEYS["POL"]), {}, "bad-signature"),
    ("naming another nation's key", lambda: signed(claims(), KEYS["POL"], "POL-gw"), {}, "unknown-key"),
    (
        "of a nation without a gateway key",
        lambda: signed(claims(iss="sovereign-gateway:EST")),
        {},
        "unknown-gateway",
    ),
    ("for another nation's user", lambda: signed(claims(nationality="POL")), {}, "nationality-mismatch"),
    ("naming another calling nation", lambda: signed(claims(nation="POL")), {}, "nationality-mismatch"),
    ("an unknown clearance", lambda: signed(claims(clearance="TOP")), {}, "malformed"),
    ("without a link", lambda: signed({k: v for k, v in claims().items() if k != "link"}), {}, "malformed"),
    (
        "without a body digest",
        lambda: signed({k: v for k, v in claims().items() if k != "bodySha256"}),
        {},
        "malformed",
    ),
]


@pytest.mark.parametrize(
    ("token", "overrides", "code"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_refused(token: Callable[[], str], overrides: dict[str, Any], code: str) -> None:
    with pytest.raises(AssertionRejected) as refused:
        verify(token(), **overrides)
    assert refused.value.reason_code == code, refused.value


def test_a_tenant_without_a_gateway_key_is_no_peer() -> None:
    assert peer_gateway_from_tenant({"spec": {"nation": "EST"}, "status": {}}) is None
