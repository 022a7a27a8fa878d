"""The sys/ endpoints the platform uses: health, mounts, auth methods, ACL policies, capabilities-self.

Vault docs: /vault/api-docs/system
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sovereign_devstack.vault.common import (
    VaultError,
    invalid_request,
    not_found,
    unsupported_operation,
    unsupported_path,
)
from sovereign_devstack.vault.messages import Reply, VaultRequest, envelope

if TYPE_CHECKING:
    from sovereign_devstack.vault.core import VaultCore
    from sovereign_devstack.vault.tokens import TokenEntry

VERSION = "1.17.0+devstack"
CLUSTER_NAME = "vault-cluster-devstack"


def _reply(status: int, body: dict[str, Any] | None = None) -> Reply:
    return Reply(status, body)


def _envelope(data: Any, top_level: bool = False) -> Reply:
    """Some old sys endpoints also repeat `data` at the top level; Vault keeps that for old clients."""
    body = envelope(data, mount_type="system")
    if top_level and isinstance(data, dict):
        body = {**data, **body}
    return _reply(200, body)


def health(request: VaultRequest) -> Reply:
    """An unsealed, active dev server. Vault docs: /vault/api-docs/system/health (HEAD has no body)."""
    if request.head:
        return _reply(200)
    return _reply(
        200,
        {
            "initialized": True,
            "sealed": False,
            "standby": False,
            "performance_standby": False,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": int(time.time()),
            "version": VERSION,
            "enterprise": False,
            "cluster_name": CLUSTER_NAME,
            "cluster_id": "00000000-0000-0000-0000-000000000000",
            "echo_duration_ms": 0,
            "clock_skew_ms": 0,
        },
    )


def seal_status(request: VaultRequest) -> Reply:
    """A dev server is initialised and unsealed. Vault docs: /vault/api-docs/system/seal-status"""
    return _reply(
        200,
        {
            "type": "shamir",
            "initialized": True,
            "sealed": False,
            "t": 1,
            "n": 1,
            "progress": 0,
            "nonce": "",
            "version": VERSION,
            "migration": False,
            "cluster_name": CLUSTER_NAME,
            "cluster_id": "00000000-0000-0000-0000-000000000000",
            "recovery_seal": False,
            "storage_type": "inmem",
        },
    )


def init_status(request: VaultRequest) -> Reply:
    """Vault docs: /vault/api-docs/system/init#read-initialization-status"""
    return _reply(200, {"initialized": True})


UNAUTHENTICATED = {"sys/health": health, "sys/seal-status": seal_status, "sys/init": init_status}


def handle(core: VaultCore, operation: str, request: VaultRequest, token: TokenEntry, path: str) -> Reply:
    writes = ("create", "update")
    if path in ("mounts", "mounts/"):
        if operation != "read":
            raise unsupported_operation()
        return _envelope({p: m.describe() for p, m in sorted(core.mounts.secrets.items())}, top_level=True)
    if path.startswith("mounts/"):
        return _mount(core, operation, request, path[len("mounts/") :])
    if path in ("auth", "auth/"):
        if operation != "read":
            raise unsupported_operation()
        return _envelope({p: m.describe() for p, m in sorted(core.mounts.auth.items())}, top_level=True)
    if path.startswith("auth/"):
        return _auth_mount(core, operation, request, path[len("auth/") :])
    if path in ("policies/acl", "policies/acl/"):
        if operation != "list":
            raise unsupported_operation()
        return _envelope({"keys": core.policies.names()})
    if path.startswith("policies/acl/"):
        return _policy(core, operation, request, path[len("policies/acl/") :], legacy=False)
    if path in ("policy", "policy/"):
        if operation not in ("read", "list"):
            raise unsupported_operation()
        names = core.policies.names()
        return _envelope({"keys": names, "policies": names}, top_level=True)
    if path.startswith("policy/"):
        return _policy(core, operation, request, path[len("policy/") :], legacy=True)
    if path == "capabilities-self" and operation in writes:
        return _capabilities_self(core, request, token)
    raise unsupported_path()


def _mount(core: VaultCore, operation: str, request: VaultRequest, mount_path: str) -> Reply:
    """Vault docs: /vault/api-docs/system/mounts (enable is POST, disable is DELETE, both 204)."""
    if mount_path.rstrip("/").endswith("/tune"):
        return _tune(core.mounts.secrets, operation, mount_path)
    if operation in ("create", "update"):
        core.mounts.enable_secrets(mount_path, request.data)
        return _reply(204)
    if operation == "delete":
        core.mounts.disable_secrets(mount_path)
        return _reply(204)
    if operation == "read":
        mount = core.mounts.secrets.get(mount_path.strip("/") + "/")
        if mount is None:
            raise invalid_request(f"No secret engine mount at {mount_path.strip('/')}/")
        return _envelope(mount.describe(), top_level=True)
    raise unsupported_operation()


def _auth_mount(core: VaultCore, operation: str, request: VaultRequest, mount_path: str) -> Reply:
    """Vault docs: /vault/api-docs/system/auth (root-protected: needs sudo)."""
    if mount_path.rstrip("/").endswith("/tune"):
        return _tune(core.mounts.auth, operation, mount_path)
    if operation in ("create", "update"):
        core.mounts.enable_auth(mount_path, request.data)
        return _reply(204)
    if operation == "delete":
        core.mounts.disable_auth(mount_path)
        return _reply(204)
    if operation == "read":
        mount = core.mounts.auth.get(mount_path.strip("/") + "/")
        if mount is None:
            raise invalid_request(f"No auth engine at {mount_path.strip('/')}/")
        return _envelope(mount.describe(), top_level=True)
    raise unsupported_operation()


def _tune(table: dict[str, Any], operation: str, mount_path: str) -> Reply:
    """Read-only tuning info (lease TTLs), enough for hvac's read_mount_configuration."""
    mount = table.get(mount_path.rstrip("/")[: -len("/tune")].strip("/") + "/")
    if mount is None:
        raise invalid_request("cannot fetch sysview for path")
    if operation != "read":
        raise VaultError(400, "tuning mounts is not supported by this dev server")
    config = {
        "default_lease_ttl": 2764800,
        "max_lease_ttl": 2764800,
        "force_no_cache": False,
        "description": mount.description,
        "options": mount.options,
    }
    return _envelope(config, top_level=True)


def _policy(core: VaultCore, operation: str, request: VaultRequest, name: str, legacy: bool) -> Reply:
    """Vault docs: /vault/api-docs/system/policies and /vault/api-docs/system/policy (legacy)"""
    if operation == "read":
        policy = core.policies.get(name)
        if policy is None:
            raise not_found()
        if legacy:
            return _envelope({"name": policy.name, "rules": policy.text}, top_level=True)
        return _envelope({"name": policy.name, "policy": policy.text})
    if operation in ("create", "update"):
        text = request.data.get("policy")
        if text is None and legacy:
            text = request.data.get("rules")  # the legacy endpoint's older field name
        core.policies.put(name, text)
        return _reply(204)
    if operation == "delete":
        core.policies.delete(name)
        return _reply(204)
    raise unsupported_operation()


def _capabilities_self(core: VaultCore, request: VaultRequest, token: TokenEntry) -> Reply:
    """Vault docs: /vault/api-docs/system/capabilities-self"""
    paths = request.data.get("paths", request.data.get("path"))
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise invalid_request("missing paths")
    acl = core.policies.acl_for(token.policies)
    data: dict[str, Any] = {}
    for path in paths:
        caps = acl.capabilities(str(path).lstrip("/"))
        data[path] = sorted(caps) if caps else ["deny"]
    if len(paths) == 1:
        data["capabilities"] = data[paths[0]]  # kept by Vault for older clients
    return _envelope(data, top_level=True)
