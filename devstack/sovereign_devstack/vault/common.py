"""Shared pieces of the Vault dev server: the error type, durations and timestamps, the clock."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any


class VaultError(Exception):
    """An error Vault answers with `{"errors": [...]}` and an HTTP status.

    `body_data` is set for the few errors whose body also carries `data` (a deleted KV v2 version).
    """

    def __init__(self, status: int, *messages: str, body_data: Any = None) -> None:
        super().__init__(", ".join(messages) or str(status))
        self.status = status
        self.messages = list(messages)
        self.body_data = body_data


def invalid_request(message: str) -> VaultError:
    # Vault docs: /vault/api-docs#http-status-codes ("400 - Invalid request, missing or invalid data")
    return VaultError(400, message)


def permission_denied() -> VaultError:
    # Vault docs: /vault/api-docs#http-status-codes ("403 - Forbidden ... authentication failed")
    return VaultError(403, "permission denied")


def not_found() -> VaultError:
    # A read of something absent is 404 with an empty error list.
    # Vault docs: /vault/api-docs#http-status-codes
    return VaultError(404)


def unsupported_path() -> VaultError:
    return VaultError(404, "unsupported path")


def unsupported_operation() -> VaultError:
    # Vault docs: /vault/api-docs#http-status-codes ("405 - Unsupported operation")
    return VaultError(405, "unsupported operation")


class Clock:
    """Wall-clock seconds; tests of the pure engines pass a fake one to move time without sleeping."""

    def now(self) -> float:
        return time.time()


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any, field: str = "ttl") -> int:
    """Seconds from Vault's duration forms: an integer, "90", "30m", "1h30m", "768h".

    Vault docs: /vault/docs/concepts/duration-format
    """
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise invalid_request(f"invalid duration for {field}")
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise invalid_request(f'error converting input {text} for field "{field}": invalid duration')
    return int(total)


def format_duration(seconds: int) -> str:
    """Go's time.Duration spelling ("0s", "1h0m0s") as Vault prints durations in KV metadata."""
    if seconds <= 0:
        return "0s"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def rfc3339(timestamp: float) -> str:
    """RFC 3339 UTC with sub-second digits, as Vault prints created_time etc."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def as_bool(value: Any, field: str) -> bool:
    """Vault accepts booleans as JSON bools or strings ("true"), e.g. no_default_policy="true"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "false", "0", ""):
        return value.lower() in ("true", "1")
    if isinstance(value, int):
        return bool(value)
    raise invalid_request(f'cannot parse "{field}" as bool')


def as_int(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise invalid_request(f'cannot parse "{field}" as int')
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid_request(f'cannot parse "{field}" as int') from None


def as_str_list(value: Any) -> list[str]:
    """Vault's comma-string-or-list fields (policies, bound_service_account_names)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [str(part).strip() for part in value if str(part).strip()]
    raise invalid_request("expected a list of strings or a comma-separated string")
