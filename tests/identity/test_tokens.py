"""validate_token: every attack is refused with its own reason code; good tokens give the principal."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from sovereign.cli.token_commands import parse_ttl
from sovereign.domain.markings import Classification
from sovereign.identity.tokens import (
    REASON_CODES,
    IssuerUnavailable,
    TokenRejected,
    TrustedIssuer,
    issue_token,
    issuers_by_url,
    trusted_issuer_from_tenant,
    validate_token,
)

NOW = 1_800_000_000
FRA_ISS, FRA_AUD = "https://identity.example/fra", "sovereign-fra"
DEU_ISS = "https://identity.example/deu"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _public_jwk(private: Any, kid: str, alg: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(private.public_key()))
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


ED = ed25519.Ed25519PrivateKey.generate()
EC = ec.generate_private_key(ec.SECP256R1())
RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_ED = ed25519.Ed25519PrivateKey.generate()  # not in any key set
DEU_ED = ed25519.Ed25519PrivateKey.generate()

FRA = TrustedIssuer(
    nation="FRA",
    issuer=FRA_ISS,
    audience=FRA_AUD,
    jwks={
        "keys": [
            _public_jwk(ED, "ed", "EdDSA"),
            _public_jwk(EC, "ec", "ES256"),
            _public_jwk(RSA, "rsa", "RS256"),
        ]
    },
    max_clearance=Classification.NATO_SECRET,
)
DEU = TrustedIssuer(
    "DEU",
    DEU_ISS,
    "sovereign-deu",
    {"keys": [_public_jwk(DEU_ED, "deu", "EdDSA")]},
    Classification.COSMIC_TOP_SECRET,
)
ISSUERS = issuers_by_url([FRA, DEU])


def claims(**overrides: Any) -> dict[str, Any]:
    base = {
        "iss": FRA_ISS,
        "aud": FRA_AUD,
        "sub": "alice",
        "nationality": "FRA",
        "clearance": "NATO SECRET",
        "compartments": ["ATOMAL"],
        "groups": ["analysts"],
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 3600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(
    payload: dict[str, Any] | None = None, key: Any = ED, alg: str = "EdDSA", kid: str | None = "ed"
) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(payload or claims(), key, algorithm=alg, headers=headers)


def raw_token(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    part = lambda data: _b64(json.dumps(data).encode())  # noqa: E731
    return f"{part(header)}.{part(payload)}.{_b64(signature)}"


def tampered() -> str:
    header, _, signature = sign().split(".")
    forged = claims(clearance="COSMIC TOP SECRET", sub="mallory")
    return f"{header}.{_b64(json.dumps(forged).encode())}.{signature}"


def hs256_with_public_key() -> str:
    # The classic confusion attack: HMAC keyed with the issuer's (public) key bytes.
    public_pem = ED.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": "ed"}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims()).encode())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


ATTACKS: list[tuple[str, Callable[[], str], str]] = [
    ("expired", lambda: sign(claims(exp=NOW - 120)), "expired"),
    ("not yet valid (nbf)", lambda: sign(claims(nbf=NOW + 600)), "not-yet-valid"),
    ("issued in the future (iat)", lambda: sign(claims(iat=NOW + 600, nbf=None)), "not-yet-valid"),
    ("wrong audience", lambda: sign(claims(aud="sovereign-deu")), "wrong-audience"),
    ("unknown issuer", lambda: sign(claims(iss="https://evil.example/fra")), "unknown-issuer"),
    ("alg none", lambda: raw_token({"alg": "none", "typ": "JWT"}, claims()), "unsigned"),
    ("alg None (case)", lambda: raw_token({"alg": "None", "kid": "ed"}, claims()), "unsigned"),
    ("HS256 signed with the public key", hs256_with_public_key, "symmetric-algorithm"),
    ("HS512 with a guessed secret", lambda: sign(key="secret" * 11, alg="HS512"), "symmetric-algorithm"),
    ("PS256 (not allowed)", lambda: sign(key=RSA, alg="PS256", kid="rsa"), "unsupported-algorithm"),
    ("tampered payload", tampered, "bad-signature"),
    ("signed by a key not the issuer's, right kid", lambda: sign(key=OTHER_ED), "bad-signature"),
    ("another nation's key under FRA's iss", lambda: sign(key=DEU_ED, kid="deu"), "unknown-key"),
    ("no kid", lambda: sign(kid=None), "unknown-key"),
    ("RSA key's kid under an EdDSA header", lambda: sign(kid="rsa"), "unknown-key"),
    ("nationality not the issuer's", lambda: sign(claims(nationality="DEU")), "nationality-mismatch"),
    (
        "DEU issuer vouching for a FRA national",
        lambda: sign(claims(iss=DEU_ISS, aud="sovereign-deu"), key=DEU_ED, kid="deu"),
        "nationality-mismatch",
    ),
    ("missing nationality", lambda: sign(claims(nationality=None)), "missing-claim"),
    ("missing clearance", lambda: sign(claims(clearance=None)), "missing-claim"),
    ("missing sub", lambda: sign(claims(sub=None)), "missing-claim"),
    ("missing exp", lambda: sign(claims(exp=None)), "missing-claim"),
    ("missing aud", lambda: sign(claims(aud=None)), "missing-claim"),
    ("missing iss", lambda: sign(claims(iss=None)), "missing-claim"),
    ("unknown clearance", lambda: sign(claims(clearance="ULTRA")), "invalid-claim"),
    ("compartments not a list", lambda: sign(claims(compartments="ATOMAL")), "invalid-claim"),
    ("exp not a number", lambda: sign(claims(exp="tomorrow")), "invalid-claim"),
    ("not a JWT", lambda: "not-a-token", "malformed"),
    ("garbage header", lambda: "!!!.e30.abc", "malformed"),
    ("empty", lambda: "", "malformed"),
]


@pytest.mark.parametrize(("case", "make", "reason"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attack_is_rejected_with_its_reason(case: str, make: Callable[[], str], reason: str) -> None:
    token = make()
    with pytest.raises(TokenRejected) as caught:
        validate_token(token, ISSUERS, now=NOW)
    assert caught.value.reason_code == reason, f"{case}: {caught.value}"
    assert token not in str(caught.value) or not token, "the token must never appear in the message"


def test_reason_codes_are_distinct_and_all_exercised() -> None:
    exercised = {reason for _, _, reason in ATTACKS}
    exercised.add("issuer-keys-unavailable")  # a key set at a jwksUri: tests/identity/test_remote_jwks.py
    assert exercised == set(REASON_CODES), set(REASON_CODES) ^ exercised


@pytest.mark.parametrize(
    ("key", "alg", "kid"), [(ED, "EdDSA", "ed"), (EC, "ES256", "ec"), (RSA, "RS256", "rsa")]
)
def test_each_allowed_algorithm_is_accepted(key: Any, alg: str, kid: str) -> None:
    principal = validate_token(sign(key=key, alg=alg, kid=kid), ISSUERS, now=NOW)
    assert principal.subject == "alice"
    assert principal.nationality == principal.tenant_nation == "FRA"
    assert principal.clearance is Classification.NATO_SECRET and not principal.clearance_capped
    assert principal.compartments == {"ATOMAL"} and principal.groups == {"analysts"}
    assert principal.issuer == FRA_ISS and principal.expires_at == NOW + 3600


def test_leeway_tolerates_small_clock_skew() -> None:
    validate_token(sign(claims(exp=NOW - 20)), ISSUERS, now=NOW)
    validate_token(sign(claims(nbf=NOW + 20, iat=NOW + 20)), ISSUERS, now=NOW)


def test_clearance_above_the_tenant_is_reduced_to_the_cap() -> None:
    principal = validate_token(sign(claims(clearance="COSMIC TOP SECRET")), ISSUERS, now=NOW)
    assert principal.clearance is Classification.NATO_SECRET and principal.clearance_capped
    lower = validate_token(sign(claims(clearance="NATO RESTRICTED")), ISSUERS, now=NOW)
    assert lower.clearance is Classification.NATO_RESTRICTED and not lower.clearance_capped


def test_optional_claims_default_to_empty_and_audience_list_is_accepted() -> None:
    principal = validate_token(
        sign(claims(compartments=None, groups=None, aud=["other", FRA_AUD])), ISSUERS, now=NOW
    )
    assert principal.compartments == frozenset() and principal.groups == frozenset()


def test_issue_token_round_trips() -> None:
    pem = ED.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    token = issue_token(
        pem,
        "ed",
        FRA_ISS,
        FRA_AUD,
        "FRA",
        "bob",
        Classification.NATO_CONFIDENTIAL,
        ["ATOMAL"],
        ["g"],
        ttl_seconds=60,
        now=NOW,
    )
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": "ed", "typ": "JWT"}
    principal = validate_token(token, ISSUERS, now=NOW + 30)
    assert (principal.subject, principal.clearance) == ("bob", Classification.NATO_CONFIDENTIAL)
    with pytest.raises(TokenRejected, match="expired"):
        validate_token(token, ISSUERS, now=NOW + 60 + 31)


def _tenant(**spec: Any) -> dict[str, Any]:
    return {"spec": {"nation": "FRA", "clearance": "NATO SECRET", **spec}}


def test_trusted_issuer_from_dev_issuer_status() -> None:
    body = _tenant()
    body["status"] = {"identity": {"issuer": FRA_ISS, "audience": FRA_AUD, "jwks": FRA.jwks, "source": "dev"}}
    assert trusted_issuer_from_tenant(body) == FRA


def test_suspended_tenant_is_carried_to_the_principal() -> None:
    body = _tenant(suspended=True, identity={"issuer": FRA_ISS, "audience": FRA_AUD, "jwks": FRA.jwks})
    principal = validate_token(sign(), issuers_by_url([trusted_issuer_from_tenant(body)]), now=NOW)
    assert principal.tenant_suspended  # the token is valid; the policy denies a suspended nation


def test_trusted_issuer_from_spec_identity_with_inline_jwks() -> None:
    body = _tenant(identity={"issuer": FRA_ISS, "audience": FRA_AUD, "jwks": FRA.jwks})
    assert trusted_issuer_from_tenant(body) == FRA


@pytest.mark.parametrize(
    "body",
    [
        _tenant(),  # not reconciled yet
        _tenant(identity={"issuer": FRA_ISS, "audience": FRA_AUD, "jwksUri": "file:///etc/jwks"}),
        {"spec": {"clearance": "NATO SECRET"}},
        {"spec": {"nation": "FRA", "clearance": "TOP"}},
    ],
)
def test_trusted_issuer_unavailable(body: dict[str, Any]) -> None:
    with pytest.raises(IssuerUnavailable):
        trusted_issuer_from_tenant(body)


def test_two_tenants_naming_one_issuer_is_refused() -> None:
    with pytest.raises(ValueError, match="named by FRA and DEU"):
        issuers_by_url([FRA, TrustedIssuer("DEU", FRA_ISS, "x", FRA.jwks, Classification.NATO_SECRET)])


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600", 3600), ("90s", 90), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("24h", 86400)],
)
def test_parse_ttl(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "forever", "-5m", "1x", "0s", "25h", "1.5h"])
def test_parse_ttl_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ttl(text)
