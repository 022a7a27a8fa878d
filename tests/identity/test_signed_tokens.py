"""A dev issuer's token assembled without its private key: the JWKS built from a transit key's public parts,
the header and claims signed elsewhere (here by a stand-in for Vault's `sign`), and the result validates."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from sovereign.domain.markings import Classification
from sovereign.identity.signed_tokens import (
    compact_jwt,
    dev_token_claims,
    ed25519_jwk,
    jwks_from_transit_key,
    latest_signing_key,
    signing_input,
)
from sovereign.identity.tokens import TokenRejected, TrustedIssuer, validate_token

NOW = 1_800_000_000
ISS, AUD = "https://identity.sovereign.local/fra", "sovereign-fra"
V1, V2 = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()


def _raw(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def transit_key(*versions: ed25519.Ed25519PrivateKey) -> dict[str, Any]:
    """Vault's read-key answer for an ed25519 key (/vault/api-docs/secret/transit#read-key), public parts."""
    keys = {
        str(n): {"public_key": base64.b64encode(_raw(key)).decode(), "creation_time": "2026-12-05T00:00:00Z"}
        for n, key in enumerate(versions, start=1)
    }
    return {"type": "ed25519", "exportable": False, "latest_version": len(versions), "keys": keys}


def issuer(key_set: dict[str, Any]) -> dict[str, TrustedIssuer]:
    return {ISS: TrustedIssuer("FRA", ISS, AUD, key_set, Classification.NATO_SECRET)}


def claims(**changes: Any) -> dict[str, Any]:
    made = dev_token_claims(
        ISS, AUD, "FRA", "amelie", Classification.NATO_SECRET, ["ATOMAL"], ["g"], 600, NOW
    )
    return {**made, **changes}


def signed_as_vault_does(key: ed25519.Ed25519PrivateKey, kid: str, payload: dict[str, Any]) -> str:
    """What `sovereign token issue` does, with `key.sign` standing in for transit/sign (raw 64 bytes)."""
    data = signing_input(kid, payload)
    return compact_jwt(data, key.sign(data))


def test_jwk_is_rfc8037_with_an_rfc7638_thumbprint_kid() -> None:
    jwk = ed25519_jwk(_raw(V1))
    members = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": jwk["x"]}, separators=(",", ":"))
    expected_kid = base64.urlsafe_b64encode(hashlib.sha256(members.encode()).digest()).rstrip(b"=").decode()
    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": jwk["x"],
        "kid": expected_kid,
        "alg": "EdDSA",
        "use": "sig",
    }
    assert "d" not in jwk
    assert jwt.PyJWK(jwk).key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    ) == _raw(V1)


def test_a_token_signed_by_the_latest_version_validates_against_the_published_jwks() -> None:
    key = transit_key(V1, V2)
    jwks = jwks_from_transit_key(key)
    version, kid = latest_signing_key(key)
    assert version == 2 and [k["kid"] for k in jwks["keys"]] == [kid, ed25519_jwk(_raw(V1))["kid"]]
    token = signed_as_vault_does(V2, kid, claims())
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": kid, "typ": "JWT"}
    principal = validate_token(token, issuer(jwks), now=NOW + 1)
    assert (principal.subject, principal.nationality, principal.clearance) == (
        "amelie",
        "FRA",
        Classification.NATO_SECRET,
    )
    assert principal.compartments == {"ATOMAL"} and principal.groups == {"g"}
    # A token of the older version still validates while that version is published.
    older = signed_as_vault_does(V1, ed25519_jwk(_raw(V1))["kid"], claims())
    assert validate_token(older, issuer(jwks), now=NOW + 1).subject == "amelie"


@pytest.mark.parametrize(
    ("case", "token_of"),
    [
        ("another key under the kid", lambda kid: signed_as_vault_does(V1, kid, claims())),
        ("claims changed after signing", lambda kid: _swap_payload(signed_as_vault_does(V2, kid, claims()))),
    ],
)
def test_a_signature_not_made_by_the_key_is_refused(case: str, token_of: Any) -> None:
    key = transit_key(V2)
    _, kid = latest_signing_key(key)
    with pytest.raises(TokenRejected) as refused:
        validate_token(token_of(kid), issuer(jwks_from_transit_key(key)), now=NOW + 1)
    assert refused.value.reason_code == "bad-signature", case


def _swap_payload(token: str) -> str:
    header, _, signature = token.split(".")
    forged = signing_input("x", claims(clearance="COSMIC TOP SECRET")).decode().split(".")[1]
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ({**transit_key(V1), "type": "aes256-gcm96"}, "not ed25519"),
        ({**transit_key(V1), "keys": {"1": 1764892800}}, "no public key"),
        ({**transit_key(V1), "keys": {"1": {"public_key": base64.b64encode(b"short").decode()}}}, "32 bytes"),
    ],
    ids=["symmetric-key", "no-public-part", "wrong-length"],
)
def test_a_key_that_is_not_an_ed25519_signing_key_gives_no_jwks(key: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        jwks_from_transit_key(key)


def test_a_signature_that_is_not_64_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        compact_jwt(signing_input("kid", claims()), b"\x00" * 63)


def test_claims_are_those_validate_token_requires() -> None:
    made = claims()
    assert made["exp"] - made["iat"] == 600 and made["nbf"] == made["iat"] == NOW
    assert {"iss", "aud", "sub", "exp", "nationality", "clearance", "jti"} <= set(made)
    assert made["clearance"] == "NATO SECRET" and made["compartments"] == ["ATOMAL"]
