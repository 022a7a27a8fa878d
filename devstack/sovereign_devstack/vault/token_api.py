"""The auth/token/ endpoints: create, create-orphan, lookup(-self), renew-self, revoke(-self).

Vault docs: /vault/api-docs/auth/token
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sovereign_devstack.vault.common import (
    VaultError,
    invalid_request,
    unsupported_operation,
    unsupported_path,
)
from sovereign_devstack.vault.messages import Reply, VaultRequest, envelope

if TYPE_CHECKING:
    from sovereign_devstack.vault.core import VaultCore
    from sovereign_devstack.vault.tokens import TokenEntry


def handle(core: VaultCore, operation: str, request: VaultRequest, token: TokenEntry, path: str) -> Reply:
    now = core.clock.now()
    writes = ("create", "update")
    if path in ("create", "create-orphan") and operation in writes:
        # Orphans and periodic tokens from auth/token/create need sudo (checked against this very path).
        # Vault docs: /vault/docs/concepts/policies#root-protected-api-endpoints
        has_sudo = core.policies.acl_for(token.policies).allows(
            f"auth/token/{path}", "update", needs_sudo=True
        )
        child = core.tokens.create_child(
            token, request.data, has_sudo, orphan_endpoint=path == "create-orphan"
        )
        return Reply(200, envelope(auth=child.auth_block(now), mount_type="token"))
    if path == "lookup-self" and operation in ("read", *writes):
        return Reply(200, envelope(token.describe(now), mount_type="token"))
    if path == "lookup" and operation in writes:
        target = core.tokens.lookup(str(request.data.get("token") or ""))
        if target is None:
            # Vault docs: /vault/api-docs/auth/token#lookup-a-token ("bad token" for unknown tokens)
            raise VaultError(403, "bad token")
        return Reply(200, envelope(target.describe(now), mount_type="token"))
    if path == "renew-self" and operation in writes:
        renewed = core.tokens.renew(token, request.data.get("increment"))
        return Reply(200, envelope(auth=renewed.auth_block(now), mount_type="token"))
    if path == "revoke-self" and operation in writes:
        core.tokens.revoke(token.id)
        return Reply(204)
    if path == "revoke" and operation in writes:
        target_id = str(request.data.get("token") or "")
        if not target_id:
            raise invalid_request("missing token")
        core.tokens.revoke(target_id)
        return Reply(204)
    if path in ("create", "create-orphan", "lookup-self", "lookup", "renew-self", "revoke-self", "revoke"):
        raise unsupported_operation()
    raise unsupported_path()
