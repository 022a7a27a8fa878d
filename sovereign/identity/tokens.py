"""Bearer tokens of the nations' users: validate them (the gateway), and issue them with a key in memory
(the tests' and benchmarks' issuers; a nation's dev issuer signs in Vault instead, see signed_tokens.py).

A token is trusted only when it is a JWS signed with an asymmetric algorithm we allow (EdDSA, ES256, RS256)
by a key of the issuer it names (inline, or served at the Tenant's `jwksUri`), for that issuer's audience,
inside its validity window, and when its `nationality` is the nation of that issuer. Every refusal raises
`TokenRejected` with a distinct `reason_code` (see REASON_CODES); the token itself is never logged nor put
into a message.

Clearance: a `clearance` claim above the Tenant's clearance is *reduced to* the Tenant's clearance (the
issue says "capped"), and `VerifiedPrincipal.clearance_capped` records that it happened. A nation's issuer
cannot lift its users above what the alliance granted the nation, and a token is not refused for it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from sovereign.domain.markings import Classification
from sovereign.identity.remote_jwks import KeySetUnavailable, NoSuchKey, is_fetchable_uri, remote_signing_key
from sovereign.identity.signed_tokens import compact_jwt, dev_token_claims, signing_input

ALLOWED_ALGORITHMS = ("EdDSA", "ES256", "RS256")
LEEWAY_SECONDS = 30  # clock skew tolerated on exp, nbf and iat
MAX_TOKEN_BYTES = 16 * 1024
MIN_RSA_BITS = 2048

# The public key type each allowed algorithm needs: a key of another type never verifies that algorithm.
_KEY_TYPES: dict[str, type] = {
    "EdDSA": Ed25519PublicKey,
    "ES256": EllipticCurvePublicKey,
    "RS256": RSAPublicKey,
}

REASON_CODES = {
    "malformed": "not a well-formed signed JWT (or a header/claim of the wrong type)",
    "unsigned": "alg none: the token carries no signature",
    "symmetric-algorithm": "an HMAC (HS*) algorithm: only the issuer's asymmetric keys are accepted",
    "unsupported-algorithm": f"an algorithm other than {', '.join(ALLOWED_ALGORITHMS)}",
    "unknown-issuer": "no trusted Tenant issuer has this `iss`",
    "unknown-key": "the issuer's key set has no usable key with the token's `kid`",
    "issuer-keys-unavailable": "the issuer's key set (at its jwksUri) could not be fetched or read",
    "bad-signature": "the signature does not verify with the issuer's key (tampered or forged)",
    "expired": "`exp` is past (beyond the leeway)",
    "not-yet-valid": "`nbf` or `iat` is in the future (beyond the leeway)",
    "wrong-audience": "`aud` is not the issuer's audience",
    "missing-claim": "a required claim (iss, aud, sub, exp, nationality, clearance) is absent",
    "invalid-claim": "a claim has a value of the wrong kind (unknown clearance, non-list compartments, …)",
    "nationality-mismatch": "`nationality` is not the nation of the issuer that signed the token",
}

REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "nationality", "clearance")


class TokenRejected(Exception):
    """The token is not accepted; `reason_code` is one of REASON_CODES. Never carries the token."""

    def __init__(self, reason_code: str, message: str) -> None:
        assert reason_code in REASON_CODES, reason_code
        super().__init__(f"{reason_code}: {message}")
        self.reason_code = reason_code
        self.message = message


@dataclass(frozen=True)
class TrustedIssuer:
    """One nation's token issuer as its Tenant describes it."""

    nation: str
    issuer: str
    audience: str
    jwks: dict[str, Any] = field(repr=False)
    max_clearance: Classification
    suspended: bool = False  # the Tenant's spec.suspended: the token is valid, the policy denies
    jwks_uri: str | None = None  # keys served there (fetched when a token needs them) when `jwks` is empty


@dataclass(frozen=True)
class VerifiedPrincipal:
    """Who a validated token speaks for."""

    subject: str
    nationality: str
    clearance: Classification  # already capped by the Tenant's clearance
    compartments: frozenset[str]
    groups: frozenset[str]
    issuer: str
    tenant_nation: str  # the nation whose issuer signed the token (== nationality once validated)
    clearance_capped: bool = False
    expires_at: int = 0
    tenant_suspended: bool = False


class IssuerUnavailable(ValueError):
    """A Tenant does not (yet) describe a usable issuer: no identity, or keys only at an unfetched URI."""


def trusted_issuer_from_tenant(tenant: Mapping[str, Any]) -> TrustedIssuer:
    """The TrustedIssuer of a Tenant object (dict as the API returns it, camelCase fields).

    spec.identity (the nation's own issuer) wins; its key set is `jwks` inline, else the JWKS the operator
    published in status.identity, else the one served at `jwksUri` (http or https). Without spec.identity,
    status.identity (the devstack dev issuer). A `jwksUri` is not fetched here but when a token needs its
    keys (remote_jwks: cached, refetched on an unknown kid); a fetch failure refuses that token.
    """
    spec = tenant.get("spec") or {}
    status = tenant.get("status") or {}
    nation = spec.get("nation")
    if not isinstance(nation, str) or not nation:
        raise IssuerUnavailable("the Tenant has no spec.nation")
    try:
        max_clearance = Classification(spec.get("clearance", ""))
    except ValueError as error:
        raise IssuerUnavailable(f"Tenant of {nation} has no valid spec.clearance") from error
    given = spec.get("identity") or {}
    published = status.get("identity") or {}
    source = given or published
    issuer, audience = source.get("issuer"), source.get("audience")
    jwks = given.get("jwks") or published.get("jwks")
    if not issuer or not audience:
        raise IssuerUnavailable(f"Tenant of {nation} has no identity issuer yet (is it Ready?)")
    suspended = bool(spec.get("suspended", False))
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        where = given.get("jwksUri") or published.get("jwksUri")
        if isinstance(where, str) and is_fetchable_uri(where):
            return TrustedIssuer(nation, str(issuer), str(audience), {}, max_clearance, suspended, where)
        hint = f" (jwksUri {where!r} is not an http(s) URL)" if where else ""
        raise IssuerUnavailable(f"Tenant of {nation} publishes no JSON Web Key Set{hint}")
    return TrustedIssuer(nation, str(issuer), str(audience), dict(jwks), max_clearance, suspended)


def issuers_by_url(issuers: list[TrustedIssuer]) -> dict[str, TrustedIssuer]:
    """The mapping validate_token takes; two Tenants naming one issuer URL is a configuration error."""
    mapping: dict[str, TrustedIssuer] = {}
    for item in issuers:
        if item.issuer in mapping:
            raise ValueError(
                f"issuer {item.issuer} is named by {mapping[item.issuer].nation} and {item.nation}"
            )
        mapping[item.issuer] = item
    return mapping


def _header(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise TokenRejected(
            "malformed", f"the token's header cannot be read ({type(error).__name__})"
        ) from None
    return dict(header)


def _check_algorithm(header: Mapping[str, Any]) -> str:
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise TokenRejected("malformed", "the token's header has no `alg`")
    if alg.lower() == "none":
        raise TokenRejected("unsigned", "the token is unsigned (alg none)")
    if alg.upper().startswith("HS"):
        raise TokenRejected("symmetric-algorithm", f"symmetric algorithm {alg} is never accepted")
    if alg not in ALLOWED_ALGORITHMS:
        raise TokenRejected("unsupported-algorithm", f"algorithm {alg} is not one of {ALLOWED_ALGORITHMS}")
    if "crit" in header:
        raise TokenRejected("malformed", "the token's header has critical extensions (crit), not supported")
    return alg


def _unverified_issuer(token: str) -> str:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        raise TokenRejected(
            "malformed", f"the token's payload cannot be read ({type(error).__name__})"
        ) from None
    iss = claims.get("iss")
    if iss is None:
        raise TokenRejected("missing-claim", "the token has no `iss` claim")
    if not isinstance(iss, str):
        raise TokenRejected("invalid-claim", "the token's `iss` is not a string")
    return iss


def _signing_key(trusted: TrustedIssuer, header: Mapping[str, Any], alg: str) -> Any:
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenRejected("unknown-key", f"the token names no `kid`; {trusted.issuer} signs with a kid")
    if trusted.jwks_uri and not trusted.jwks.get("keys"):
        try:
            remote = remote_signing_key(trusted.jwks_uri, kid)
        except KeySetUnavailable as error:
            raise TokenRejected("issuer-keys-unavailable", f"{trusted.issuer}: {error}") from None
        except NoSuchKey:
            remote = None
        # The client keeps keys with use sig (or none); alg is the JWK's own, else its key type's default.
        if remote is not None and remote.algorithm_name == alg and _usable(remote.key, alg):
            return remote.key
        raise TokenRejected("unknown-key", f"{trusted.issuer} has no {alg} signing key with kid {kid!r}")
    for jwk in trusted.jwks.get("keys", []):
        if not isinstance(jwk, dict) or jwk.get("kid") != kid:
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("alg", alg) != alg:
            continue
        try:
            key = jwt.PyJWK(jwk, algorithm=alg).key
        except jwt.PyJWTError:
            continue
        if _usable(key, alg):
            return key
    raise TokenRejected("unknown-key", f"{trusted.issuer} has no {alg} signing key with kid {kid!r}")


def _usable(key: Any, alg: str) -> bool:
    if not isinstance(key, _KEY_TYPES[alg]):
        return False  # e.g. an RSA key under an ES256 header: never verifies
    if isinstance(key, EllipticCurvePublicKey) and key.curve.name != "secp256r1":
        return False
    return not (isinstance(key, RSAPublicKey) and key.key_size < MIN_RSA_BITS)


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenRejected("invalid-claim", f"`{name}` is not a NumericDate")
    return float(value)


def _check_times(claims: Mapping[str, Any], now: float) -> int:
    exp = _number(claims, "exp")
    if exp is None:
        raise TokenRejected("missing-claim", "the token has no `exp` claim")
    if now > exp + LEEWAY_SECONDS:
        raise TokenRejected("expired", f"the token expired {int(now - exp)} s ago")
    for name in ("nbf", "iat"):
        value = _number(claims, name)
        if value is not None and value > now + LEEWAY_SECONDS:
            raise TokenRejected(
                "not-yet-valid", f"the token's `{name}` is {int(value - now)} s in the future"
            )
    return int(exp)


def _string_set(claims: Mapping[str, Any], name: str) -> frozenset[str]:
    value = claims.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise TokenRejected("invalid-claim", f"`{name}` is not a list of non-empty strings")
    return frozenset(value)


def validate_token(
    token: str, issuers: Mapping[str, TrustedIssuer], now: float | None = None
) -> VerifiedPrincipal:
    """The principal a bearer token speaks for, or TokenRejected. `issuers`: trusted issuers by `iss` URL."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise TokenRejected("malformed", "not a compact JWS (three dot-separated parts)")
    header = _header(token)
    alg = _check_algorithm(header)
    iss = _unverified_issuer(token)
    trusted = issuers.get(iss)
    if trusted is None or trusted.issuer != iss:
        raise TokenRejected("unknown-issuer", f"issuer {iss!r} is not a trusted Tenant issuer")
    key = _signing_key(trusted, header, alg)
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=trusted.audience,
            issuer=trusted.issuer,
            # Times are checked below against `now`; PyJWT checks signature, aud, iss and presence.
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "require": ["iss", "aud", "sub"],
            },
        )
    except jwt.InvalidSignatureError:
        raise TokenRejected(
            "bad-signature", f"the signature does not verify with {trusted.issuer}'s key"
        ) from None
    except jwt.MissingRequiredClaimError as error:
        raise TokenRejected("missing-claim", f"the token has no `{error.claim}` claim") from None
    except jwt.InvalidAudienceError:
        raise TokenRejected("wrong-audience", f"the token is not for audience {trusted.audience}") from None
    except jwt.InvalidIssuerError:
        raise TokenRejected("unknown-issuer", "the token's issuer is not the trusted one") from None
    except jwt.DecodeError as error:
        raise TokenRejected("malformed", f"the token cannot be decoded ({type(error).__name__})") from None
    except jwt.InvalidTokenError as error:  # e.g. a non-string sub
        raise TokenRejected("invalid-claim", f"a claim is invalid ({type(error).__name__})") from None

    expires_at = _check_times(claims, time.time() if now is None else now)
    for name in REQUIRED_CLAIMS:
        if claims.get(name) is None:
            raise TokenRejected("missing-claim", f"the token has no `{name}` claim")
    subject, nationality = claims["sub"], claims["nationality"]
    if not isinstance(subject, str) or not subject:
        raise TokenRejected("invalid-claim", "`sub` is not a non-empty string")
    if not isinstance(nationality, str):
        raise TokenRejected("invalid-claim", "`nationality` is not a string")
    if nationality != trusted.nation:
        raise TokenRejected(
            "nationality-mismatch",
            f"nationality {nationality!r} is not {trusted.nation}, the nation of issuer {trusted.issuer}",
        )
    try:
        claimed = Classification(claims["clearance"])
    except ValueError:
        raise TokenRejected("invalid-claim", "`clearance` is not a classification level") from None
    clearance = min(claimed, trusted.max_clearance)
    return VerifiedPrincipal(
        subject=subject,
        nationality=nationality,
        clearance=clearance,
        compartments=_string_set(claims, "compartments"),
        groups=_string_set(claims, "groups"),
        issuer=trusted.issuer,
        tenant_nation=trusted.nation,
        clearance_capped=clearance != claimed,
        expires_at=expires_at,
        tenant_suspended=trusted.suspended,
    )


def issue_token(
    private_key_pem: str,
    kid: str,
    issuer: str,
    audience: str,
    nation: str,
    subject: str,
    clearance: Classification,
    compartments: list[str] | None = None,
    groups: list[str] | None = None,
    ttl_seconds: int = 3600,
    now: float | None = None,
) -> str:
    """A token signed with an Ed25519 private key held in memory, EdDSA with `kid`: the same header and
    claims as a nation's dev issuer signs in Vault."""
    key = load_pem_private_key(private_key_pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the key is not an Ed25519 private key")
    issued = int(time.time() if now is None else now)
    claims = dev_token_claims(
        issuer, audience, nation, subject, clearance, compartments, groups, ttl_seconds, issued
    )
    signed = signing_input(kid, claims)
    return compact_jwt(signed, key.sign(signed))
