"""Request handling independent of HTTP: token check, create-vs-update, ACL, then dispatch to a backend.

Vault docs: /vault/docs/concepts/policies (how requests are authorised) and /vault/api-docs (paths)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sovereign_devstack.vault import sys_api, token_api
from sovereign_devstack.vault.auth_kubernetes import KubernetesAuth
from sovereign_devstack.vault.common import Clock, VaultError, permission_denied
from sovereign_devstack.vault.messages import Reply, VaultRequest, data_reply, envelope
from sovereign_devstack.vault.mounts import MountTable
from sovereign_devstack.vault.policies import PolicyStore
from sovereign_devstack.vault.token_review import review_token
from sovereign_devstack.vault.tokens import TokenEntry, TokenStore

TokenReviewer = Callable[[dict[str, Any], str, str], Awaitable[dict[str, Any]]]


def is_root_protected(path: str, operation: str) -> bool:
    """Paths that need `sudo` besides the normal capability.

    Vault docs: /vault/docs/concepts/policies#root-protected-api-endpoints
    """
    if path.startswith("sys/auth/") and path != "sys/auth/":
        return True  # sys/auth/:path and sys/auth/:path/tune (enable, read, disable, tune)
    if path.startswith(("sys/audit", "sys/raw", "sys/config/cors", "sys/config/auditing/")):
        return True
    if path in ("sys/remount", "sys/rotate", "sys/seal", "sys/step-down"):
        return True
    return path == "auth/token/accessors/" and operation == "list"


class VaultCore:
    def __init__(
        self, root_token: str, clock: Clock | None = None, reviewer: TokenReviewer = review_token
    ) -> None:
        self.clock = clock or Clock()
        self.tokens = TokenStore(root_token, self.clock)
        self.policies = PolicyStore()
        self.mounts = MountTable(self.clock)
        self.reviewer = reviewer

    async def handle(self, request: VaultRequest) -> Reply:
        path = request.path
        if path.rstrip("/") in sys_api.UNAUTHENTICATED:
            # Vault docs: /vault/api-docs/system/health, /seal-status and /init need no token.
            return sys_api.UNAUTHENTICATED[path.rstrip("/")](request)
        login = self._login_mount(path)
        if login is not None and request.operation in ("update", "create"):
            return await self._kubernetes_login(login, request)  # login paths need no token
        token = self.tokens.lookup(request.token)
        if token is None:
            raise permission_denied()
        backend = self._backend(path)
        operation = request.operation
        if operation == "update" and backend is not None and backend.exists is not None:
            # Create vs update by existence check. Vault docs: /vault/docs/concepts/policies#capabilities
            existed = backend.exists()
            if existed is not None and not existed:
                operation = "create"
        acl = self.policies.acl_for(token.policies)
        if not acl.allows(path, operation, needs_sudo=is_root_protected(path, operation)):
            raise permission_denied()
        if backend is None:
            raise VaultError(404, f'no handler for route "{path}". route entry not found.')
        self.tokens.use(token)
        return await backend.call(operation, request, token)

    # -- routing ---------------------------------------------------------------------------------

    def _login_mount(self, path: str) -> KubernetesAuth | None:
        if not path.startswith("auth/"):
            return None
        routed = self.mounts.route_auth(path[len("auth/") :])
        if routed is None or routed[1] != "login" or not isinstance(routed[0].engine, KubernetesAuth):
            return None
        return routed[0].engine

    def _backend(self, path: str) -> Backend | None:
        if path.startswith("sys/"):
            # sys/ writes (policies, mounts) are plain `update` operations: no existence check in Vault.
            return Backend(None, lambda op, req, tok: sys_api.handle(self, op, req, tok, path[len("sys/") :]))
        if path.startswith("auth/"):
            routed = self.mounts.route_auth(path[len("auth/") :])
            if routed is None:
                return None
            mount, rest = routed
            if mount.type == "token":
                return Backend(None, lambda op, req, tok: token_api.handle(self, op, req, tok, rest))
            engine = mount.engine
            return Backend(
                lambda: engine.exists(rest),
                lambda op, req, tok: data_reply(engine.handle(op, rest, req.data), mount.type, op == "list"),
            )
        routed = self.mounts.route_secrets(path)
        if routed is None:
            return None
        mount, rest = routed
        engine = mount.engine

        def call(op: str, req: VaultRequest, tok: TokenEntry) -> Reply:
            if mount.type == "kv":
                result = engine.handle(op, rest, req.data, req.query)
            else:
                result = engine.handle(op, rest, req.data)
            return data_reply(result, mount.type, op == "list")

        return Backend(lambda: engine.exists(rest), call)

    # -- login -----------------------------------------------------------------------------------

    async def _kubernetes_login(self, method: KubernetesAuth, request: VaultRequest) -> Reply:
        """Vault docs: /vault/api-docs/auth/kubernetes#login"""
        role_name, role, jwt_text = method.login_role(request.data)
        if method.public_keys:
            account = method.verify_locally(jwt_text, role)
        else:
            claimed = method.unverified_service_account(jwt_text)
            method.authorize(role, claimed)
            assert method.config is not None
            status = await self.reviewer(method.config, jwt_text, role.get("audience", ""))
            account = method.check_review(claimed, status)
        method.authorize(role, account)
        mount_path = request.path[len("auth/") : -len("/login")]
        token = self.tokens.create_for_login(
            role["token_policies"],
            role["token_ttl"],
            path=f"auth/{mount_path}/login",
            display_name=f"{mount_path}-{account.namespace}-{account.name}",
            meta=method.login_metadata(role_name, account),
            no_default_policy=role.get("token_no_default_policy", False),
            max_ttl=role.get("token_max_ttl", 0),
        )
        return Reply(200, envelope(auth=token.auth_block(self.clock.now())))


@dataclass
class Backend:
    """How a path is served: its existence check (None if it has none) and its handler."""

    exists: Callable[[], bool | None] | None
    handler: Callable[[str, VaultRequest, TokenEntry], Reply | Awaitable[Reply]]

    async def call(self, operation: str, request: VaultRequest, token: TokenEntry) -> Reply:
        result = self.handler(operation, request, token)
        if isinstance(result, Awaitable):
            result = await result
        return result
