"""A nation's dev issuer without its private key: the JWT is assembled here and signed elsewhere (by the
nation's non-exportable Ed25519 transit key in Vault), and the key set is built from the key's public parts.

Pure: no I/O. JWS compact serialization: RFC 7515 §7.1; EdDSA with Ed25519: RFC 8037; JWK for Ed25519:
RFC 8037 (kty OKP, crv Ed25519); key id: RFC 7638 thumbprint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from sovereign.domain.markings import Classification

ED25519_PUBLIC_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def ed25519_jwk(raw_public_key: bytes) -> dict[str, str]:
    """The public JWK of a raw 32-byte Ed25519 key, its kid the RFC 7638 thumbprint."""
    if len(raw_public_key) != ED25519_PUBLIC_KEY_BYTES:
        raise ValueError(
            f"an Ed25519 public key has {ED25519_PUBLIC_KEY_BYTES} bytes, not {len(raw_public_key)}"
        )
    x = b64url(raw_public_key)
    # RFC 7638: the thumbprint hashes the required members in lexicographic order, without spaces.
    thumbprint = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True)
    kid = b64url(hashlib.sha256(thumbprint.encode()).digest())
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}


def signing_key_versions(transit_key: Mapping[str, Any]) -> dict[int, dict[str, str]]:
    """Each version of a transit ed25519 key (Vault's read-key answer) → its public JWK.

    Vault docs: /vault/api-docs/secret/transit#read-key — for asymmetric keys `keys` maps each version to
    an object whose `public_key` is the base64 of the raw 32-byte Ed25519 key.
    """
    if transit_key.get("type") != "ed25519":
        raise ValueError(f"the issuer key is of type {transit_key.get('type')!r}, not ed25519")
    versions = {}
    for version, entry in (transit_key.get("keys") or {}).items():
        if not isinstance(entry, Mapping) or not entry.get("public_key"):
            raise ValueError(f"version {version} of the issuer key has no public key")
        versions[int(version)] = ed25519_jwk(base64.b64decode(str(entry["public_key"])))
    return versions


def jwks_from_transit_key(transit_key: Mapping[str, Any]) -> dict[str, list[dict[str, str]]]:
    """The key set to publish: every version's public JWK, newest first."""
    versions = signing_key_versions(transit_key)
    return {"keys": [versions[version] for version in sorted(versions, reverse=True)]}


def latest_signing_key(transit_key: Mapping[str, Any]) -> tuple[int, str]:
    """(version, kid) of the version Vault signs with by default: the latest."""
    version = int(transit_key["latest_version"])
    return version, signing_key_versions(transit_key)[version]["kid"]


def dev_token_claims(
    issuer: str,
    audience: str,
    nation: str,
    subject: str,
    clearance: Classification,
    compartments: list[str] | None = None,
    groups: list[str] | None = None,
    ttl_seconds: int = 3600,
    now: int = 0,
) -> dict[str, Any]:
    """The claims of a user's token from a nation's dev issuer (what `validate_token` requires, and jti)."""
    return {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "nationality": nation,
        "clearance": str(clearance),
        "compartments": sorted(set(compartments or [])),
        "groups": sorted(set(groups or [])),
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": str(uuid.uuid4()),
    }


def signing_input(kid: str, claims: Mapping[str, Any]) -> bytes:
    """`base64url(header).base64url(payload)`, the bytes an EdDSA JWT's signature covers (RFC 7515 §5.1)."""
    header = {"alg": "EdDSA", "kid": kid, "typ": "JWT"}
    parts = (json.dumps(part, separators=(",", ":")).encode() for part in (header, dict(claims)))
    return ".".join(b64url(part) for part in parts).encode()


def compact_jwt(signed: bytes, signature: bytes) -> str:
    """The compact JWS: the signing input, a dot, the base64url of the raw 64-byte Ed25519 signature."""
    if len(signature) != ED25519_SIGNATURE_BYTES:
        raise ValueError(f"an Ed25519 signature has {ED25519_SIGNATURE_BYTES} bytes, not {len(signature)}")
    return f"{signed.decode()}.{b64url(signature)}"
