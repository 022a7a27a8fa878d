"""Key sets an issuer serves at a `jwksUri`: fetched with PyJWT's PyJWKClient, cached, refetched on a new kid.

One client per URI for the whole process, so the key set is fetched once per JWKS_CACHE_SECONDS and not per
token. An unknown `kid` makes the client refetch the set at once (a rotated key), but not more often than
every JWKS_REFETCH_COOLDOWN_SECONDS, so tokens with made-up kids cannot make us hammer the issuer. Failures
are exceptions the validator turns into refusals (fail closed); nothing here ever allows a token.
"""

from __future__ import annotations

import threading
from urllib.parse import urlparse

import jwt

JWKS_FETCH_TIMEOUT_SECONDS = 3.0  # the request path waits for at most this long on the issuer
JWKS_CACHE_SECONDS = 300.0  # a fetched key set is used for this long before it is fetched again
JWKS_REFETCH_COOLDOWN_SECONDS = 5.0  # an unknown kid refetches at most this often

_clients: dict[str, jwt.PyJWKClient] = {}
_clients_lock = threading.Lock()


class KeySetUnavailable(Exception):
    """The key set could not be fetched or read (unreachable, timeout, HTTP error, not a JWKS)."""


class NoSuchKey(Exception):
    """The key set, even refetched, has no signing key with this kid."""


def is_fetchable_uri(uri: str) -> bool:
    """Only http(s) key sets are fetched (never file: or other schemes)."""
    parsed = urlparse(uri)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def remote_key_set(uri: str) -> jwt.PyJWKClient:
    """The process's client for `uri` (created on first use)."""
    with _clients_lock:
        client = _clients.get(uri)
        if client is None:
            client = _clients[uri] = jwt.PyJWKClient(
                uri,
                cache_jwk_set=True,
                lifespan=JWKS_CACHE_SECONDS,
                timeout=JWKS_FETCH_TIMEOUT_SECONDS,
                cooldown_duration=JWKS_REFETCH_COOLDOWN_SECONDS,
            )
        return client


def forget_remote_key_sets() -> None:
    """Drop every cached client and key set (tests; a process that must re-read every issuer)."""
    with _clients_lock:
        _clients.clear()


def remote_signing_key(uri: str, kid: str) -> jwt.PyJWK:
    """The signing key `kid` of the set at `uri`; KeySetUnavailable or NoSuchKey otherwise."""
    client = remote_key_set(uri)
    try:
        return client.get_signing_key(kid)
    except jwt.PyJWKClientConnectionError as error:
        raise KeySetUnavailable(f"the key set at {uri} could not be fetched ({_short(error)})") from None
    except jwt.PyJWKSetError as error:
        raise KeySetUnavailable(f"the key set at {uri} holds no usable key ({_short(error)})") from None
    except jwt.PyJWKClientError as error:
        if "Unable to find a signing key" in str(error):
            raise NoSuchKey(f"the key set at {uri} has no signing key with kid {kid!r}") from None
        raise KeySetUnavailable(f"the key set at {uri} cannot be used ({_short(error)})") from None
    except Exception as error:  # noqa: BLE001 — e.g. a body that is not JSON: refuse, never allow
        raise KeySetUnavailable(f"the key set at {uri} cannot be read ({type(error).__name__})") from None


def _short(error: Exception) -> str:
    text = str(error)
    return text if len(text) <= 200 else text[:200] + "…"
