"""The HTTP-independent request and reply of the dev server, and Vault's response envelope."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sovereign_devstack.vault.common import not_found


@dataclass
class VaultRequest:
    """One API call: `operation` is Vault's logical operation (read, list, update, delete, patch)."""

    operation: str
    path: str  # below /v1/, list paths end with "/"
    data: dict[str, Any] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    head: bool = False


@dataclass
class Reply:
    status: int
    body: dict[str, Any] | None = None


def envelope(
    data: Any = None, auth: Any = None, mount_type: str = "", warnings: Any = None
) -> dict[str, Any]:
    """Vault's response shape. Vault docs: /vault/api-docs#http-api (request_id, lease_id, data, auth, ...)"""
    return {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": warnings,
        "auth": auth,
        "mount_type": mount_type,
    }


def data_reply(data: dict[str, Any] | None, mount_type: str = "", is_list: bool = False) -> Reply:
    if data is None:
        return Reply(204)  # writes without a response body are 204 No Content
    if is_list and not data.get("keys"):
        # An empty listing is a 404 in Vault (hvac raises InvalidPath), not an empty list.
        raise not_found()
    return Reply(200, envelope(data, mount_type=mount_type))
