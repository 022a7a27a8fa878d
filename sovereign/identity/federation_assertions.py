"""Gateway-to-gateway federation assertions: what a nation's gateway sends, instead of its user's token, to
another nation's `/federation/v1/...` route, and how the owner checks it.

An assertion is a compact JWS (EdDSA, RFC 8037) signed by the calling nation's gateway key in Vault transit
(`gateway_key_name`, not exportable; its public key set is published in the Tenant's `status.federation`).
Its claims name the calling nation's gateway (`iss` = `sovereign-gateway:<CALLER>`, `nation`), the owner
(`aud` = `sovereign-federation:<OWNER>`), the user (`sub`, `nationality`, `clearance`, `compartments`,
`groups`: what the owner's policy needs), the request it is for (`route`, and `bodySha256` of the exact body
bytes sent), a lifetime of at most MAX_TTL_SECONDS (`iat`, `exp`), a unique `jti` and `link`, the id the
caller's audit record carries too. The owner accepts it once (a bounded `ReplayCache` of `jti`s per
replica), for its own audience, that route and that body only; the user's clearance is capped by the calling
nation's Tenant (`principal_for`).

Pure: no I/O (the signature is made in Vault by the serving side). Every refusal raises `AssertionRejected`
with a `reason_code` of REASON_CODES; the assertion itself is never put into a message.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sovereign.domain.markings import Classification, Principal
from sovereign.identity.principal import principal_for
from sovereign.identity.signed_tokens import b64url, compact_jwt
from sovereign.identity.tokens import MAX_TOKEN_BYTES, VerifiedPrincipal

ALGORITHM = "EdDSA"
TYPE = "sovereign-federation+jwt"  # the JOSE `typ`: never a user's token (typ JWT), nor one taken for it
MAX_TTL_SECONDS = 60  # an assertion lives at most this long
DEFAULT_TTL_SECONDS = 30
LEEWAY_SECONDS = 5  # clock skew between two nations' gateways tolerated on iat and exp
MAX_ID_CHARS = 128  # jti and link
REPLAY_CACHE_SIZE = 100_000  # jtis remembered per replica: 1,600 assertions a second at the longest TTL

REASON_CODES = {
    "malformed": "not a well-formed federation assertion (or a claim of the wrong type)",
    "not-an-assertion": "a user's token or another JWT: federation routes take a peer gateway's assertion",
    "unknown-gateway": "no Tenant publishes a gateway key for the nation in `iss`",
    "unknown-key": "the calling nation's gateway key set has no key with the assertion's `kid`",
    "bad-signature": "the signature does not verify with the calling nation's gateway key",
    "wrong-audience": "`aud` is not this nation's federation audience",
    "expired": "`exp` is past (beyond the leeway)",
    "not-yet-valid": "`iat` is in the future (beyond the leeway)",
    "lifetime-too-long": f"`exp` is more than {MAX_TTL_SECONDS} s after `iat`",
    "wrong-route": "the assertion is for another route",
    "body-mismatch": "the request body is not the one the assertion was signed for",
    "nationality-mismatch": "the user's `nationality` is not the calling gateway's nation",
    "replayed": "this assertion (`jti`) was already used",
    "replay-cache-full": "too many live assertions to remember: try again shortly",
}

_REQUIRED = ("iss", "aud", "sub", "nationality", "clearance", "nation", "route", "bodySha256", "iat", "exp")


class AssertionRejected(Exception):
    """The assertion is refused; `reason_code` is one of REASON_CODES. Never carries the assertion."""

    def __init__(self, reason_code: str, message: str) -> None:
        assert reason_code in REASON_CODES, reason_code
        super().__init__(f"{reason_code}: {message}")
        self.reason_code = reason_code
        self.message = message


def gateway_issuer(nation: str) -> str:
    """The `iss` of a nation's gateway assertions."""
    return f"sovereign-gateway:{nation.upper()}"


def federation_audience(owner: str) -> str:
    """The `aud` of an assertion for the owner nation's federation routes."""
    return f"sovereign-federation:{owner.upper()}"


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def new_link() -> str:
    """An id linking the caller's audit record of a cross-nation call to the owner's."""
    return uuid.uuid4().hex


def assertion_claims(
    caller: str,
    owner: str,
    principal: Principal,
    route: str,
    body: bytes,
    *,
    link: str,
    now: float | None = None,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
) -> dict[str, Any]:
    """What the calling gateway asserts about its user and the one request it forwards to `owner`."""
    if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"an assertion lives 1 to {MAX_TTL_SECONDS} s, not {ttl_seconds}")
    issued = int(time.time() if now is None else now)
    return {
        "iss": gateway_issuer(caller),
        "aud": federation_audience(owner),
        "sub": principal.sub,
        "nation": caller.upper(),
        "nationality": principal.nationality,
        "clearance": str(principal.clearance),
        "compartments": sorted(principal.compartments),
        "groups": sorted(principal.groups),
        "route": route,
        "bodySha256": body_digest(body),
        "iat": issued,
        "exp": issued + ttl_seconds,
        "jti": uuid.uuid4().hex,
        "link": link,
    }


def assertion_signing_input(kid: str, claims: Mapping[str, Any]) -> bytes:
    """`base64url(header).base64url(payload)` with `typ` TYPE: the bytes the gateway key signs."""
    header = {"alg": ALGORITHM, "kid": kid, "typ": TYPE}
    parts = (json.dumps(part, separators=(",", ":")).encode() for part in (header, dict(claims)))
    return ".".join(b64url(part) for part in parts).encode()


def assertion(signed: bytes, signature: bytes) -> str:
    """The compact assertion from its signing input and the raw Ed25519 signature Vault made."""
    return compact_jwt(signed, signature)


class KeySigner:
    """Signs assertions with an Ed25519 private key held in memory, as Vault signs them with a nation's
    gateway key: the tests' and benchmarks' peer gateways."""

    def __init__(self, key: Ed25519PrivateKey, kid: str) -> None:
        self._key, self.kid = key, kid

    def sign(self, claims: Mapping[str, Any]) -> str:
        signed = assertion_signing_input(self.kid, claims)
        return assertion(signed, self._key.sign(signed))


@dataclass(frozen=True)
class PeerGateway:
    """A nation whose gateway may call this one: its Tenant (clearance, suspension) and gateway key set."""

    nation: str
    tenant: Mapping[str, Any] = field(repr=False)
    jwks: Mapping[str, Any] = field(repr=False)


def peer_gateway_from_tenant(tenant: Mapping[str, Any]) -> PeerGateway | None:
    """The PeerGateway of a Tenant (as the gateway's config holds it), None while it publishes no gateway
    key set (`status.federation.jwks`)."""
    nation = (tenant.get("spec") or {}).get("nation")
    jwks = ((tenant.get("status") or {}).get("federation") or {}).get("jwks")
    if not isinstance(nation, str) or not isinstance(jwks, Mapping) or not jwks.get("keys"):
        return None
    return PeerGateway(nation, tenant, jwks)


@dataclass(frozen=True)
class VerifiedAssertion:
    """A peer gateway's accepted assertion: who the request speaks for, and the link id to record."""

    principal: Principal
    caller: str
    jti: str
    link: str
    expires_at: int


class ReplayCache:
    """The `jti`s of accepted assertions until they expire; bounded (full of live ones: refuse, closed)."""

    def __init__(self, size: int = REPLAY_CACHE_SIZE) -> None:
        self._size = size
        self._seen: OrderedDict[str, float] = OrderedDict()  # jti → expiry, oldest first

    def admit(self, jti: str, expires_at: float, now: float) -> None:
        """Remember `jti` until `expires_at`; AssertionRejected if it is remembered already."""
        if jti in self._seen:
            raise AssertionRejected("replayed", "this assertion was already used")
        # Lifetimes are alike, so insertion order is nearly expiry order: drop expired ones from the front,
        # and sweep them all only when the cache is full.
        while self._seen and next(iter(self._seen.values())) + LEEWAY_SECONDS < now:
            self._seen.popitem(last=False)
        if len(self._seen) >= self._size:
            self._seen = OrderedDict((k, v) for k, v in self._seen.items() if v + LEEWAY_SECONDS >= now)
            if len(self._seen) >= self._size:
                raise AssertionRejected("replay-cache-full", f"{self._size} live assertions are remembered")
        self._seen[jti] = expires_at


def _string(claims: Mapping[str, Any], name: str, limit: int = 256) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise AssertionRejected("malformed", f"`{name}` is not a non-empty string of at most {limit}")
    return value


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AssertionRejected("malformed", f"`{name}` is not a NumericDate")
    return float(value)


def _strings(claims: Mapping[str, Any], name: str) -> frozenset[str]:
    value = claims.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise AssertionRejected("malformed", f"`{name}` is not a list of non-empty strings")
    return frozenset(value)


def _key(peer: PeerGateway, kid: Any) -> Ed25519PublicKey:
    for jwk in peer.jwks.get("keys") or []:
        if not isinstance(jwk, Mapping) or jwk.get("kid") != kid or jwk.get("kty") != "OKP":
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("alg", ALGORITHM) != ALGORITHM:
            continue
        try:
            key = jwt.PyJWK(dict(jwk), algorithm=ALGORITHM).key
        except jwt.PyJWTError:
            continue
        if isinstance(key, Ed25519PublicKey):
            return key
    raise AssertionRejected("unknown-key", f"{peer.nation}'s gateway has no key with kid {kid!r}")


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise AssertionRejected("malformed", "not a compact JWS (three dot-separated parts)")
    try:
        header = dict(jwt.get_unverified_header(token))
        claims = dict(jwt.decode(token, options={"verify_signature": False}))
    except jwt.PyJWTError as error:
        raise AssertionRejected("malformed", f"cannot be read ({type(error).__name__})") from None
    return header, claims


def verify_assertion(
    token: str,
    peers: Mapping[str, PeerGateway],
    *,
    owner: str,
    route: str,
    body: bytes,
    replay: ReplayCache,
    now: float | None = None,
) -> VerifiedAssertion:
    """The principal a peer gateway's assertion speaks for, on `owner`'s `route` with exactly `body`; or
    AssertionRejected. `peers`: the nations publishing a gateway key set, by nation."""
    now = time.time() if now is None else now
    header, unverified = _unverified(token)
    if header.get("typ") != TYPE or header.get("alg") != ALGORITHM:
        raise AssertionRejected("not-an-assertion", "federation routes take a peer gateway's assertion")
    issuer = unverified.get("iss")
    caller = issuer.removeprefix("sovereign-gateway:") if isinstance(issuer, str) else None
    peer = peers.get(caller or "")
    if peer is None or issuer != gateway_issuer(peer.nation):
        raise AssertionRejected("unknown-gateway", "no Tenant publishes a gateway key for its issuer")
    key = _key(peer, header.get("kid"))
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=federation_audience(owner),
            issuer=gateway_issuer(peer.nation),
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": list(_REQUIRED),
            },
        )
    except jwt.InvalidSignatureError:
        raise AssertionRejected("bad-signature", f"not signed by {peer.nation}'s gateway key") from None
    except jwt.InvalidAudienceError:
        raise AssertionRejected("wrong-audience", f"not for {federation_audience(owner)}") from None
    except jwt.PyJWTError as error:
        raise AssertionRejected(
            "malformed", f"a claim is missing or invalid ({type(error).__name__})"
        ) from None

    issued, expires = _number(claims, "iat"), _number(claims, "exp")
    if now > expires + LEEWAY_SECONDS:
        raise AssertionRejected("expired", f"expired {int(now - expires)} s ago")
    if issued > now + LEEWAY_SECONDS:
        raise AssertionRejected("not-yet-valid", f"issued {int(issued - now)} s in the future")
    if expires - issued > MAX_TTL_SECONDS:
        raise AssertionRejected("lifetime-too-long", f"lives {int(expires - issued)} s")
    if _string(claims, "route") != route:
        raise AssertionRejected("wrong-route", f"not for {route}")
    if _string(claims, "bodySha256", 64) != body_digest(body):
        raise AssertionRejected("body-mismatch", "the body differs from the one signed for")
    if _string(claims, "nation", 3) != peer.nation or _string(claims, "nationality", 3) != peer.nation:
        raise AssertionRejected(
            "nationality-mismatch", f"a gateway of {peer.nation} speaks for its users only"
        )
    try:
        claimed = Classification(claims["clearance"])
    except ValueError:
        raise AssertionRejected("malformed", "`clearance` is not a classification level") from None
    jti, link = _string(claims, "jti", MAX_ID_CHARS), _string(claims, "link", MAX_ID_CHARS)
    verified = VerifiedPrincipal(
        subject=_string(claims, "sub"),
        nationality=peer.nation,
        clearance=claimed,
        compartments=_strings(claims, "compartments"),
        groups=_strings(claims, "groups"),
        issuer=gateway_issuer(peer.nation),
        tenant_nation=peer.nation,
        expires_at=int(expires),
    )
    try:
        principal = principal_for(verified, peer.tenant)  # clearance capped by the caller's Tenant
    except ValueError as error:
        raise AssertionRejected("unknown-gateway", str(error)) from None
    replay.admit(jti, expires, now)  # last: a refused assertion is not remembered
    return VerifiedAssertion(principal, peer.nation, jti, link, int(expires))
