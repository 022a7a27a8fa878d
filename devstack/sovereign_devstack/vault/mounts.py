"""Mount tables for secrets engines (sys/mounts) and auth methods (sys/auth), and path routing to them.

Vault docs: /vault/api-docs/system/mounts and /vault/api-docs/system/auth
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from sovereign_devstack.vault.auth_kubernetes import KubernetesAuth
from sovereign_devstack.vault.common import Clock, invalid_request
from sovereign_devstack.vault.kv import KVv2Engine
from sovereign_devstack.vault.transit import TransitEngine

# Paths a user cannot mount at. Vault docs: /vault/api-docs/system/mounts#enable-secrets-engine
RESERVED_PREFIXES = ("sys/", "auth/", "cubbyhole/", "identity/")


@dataclass
class Mount:
    path: str  # always ends with "/"
    type: str
    description: str = ""
    options: dict[str, str] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    engine: Any = None
    accessor: str = ""
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))

    def describe(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "description": self.description,
            "accessor": self.accessor,
            "uuid": self.uuid,
            "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": False, **self.config},
            "options": self.options,
            "local": False,
            "seal_wrap": False,
            "external_entropy_access": False,
            "plugin_version": "",
            "running_plugin_version": "",
            "running_sha256": "",
        }


def _accessor(kind: str) -> str:
    return f"{kind}_{secrets.token_hex(4)}"


def normalise_mount_path(path: str) -> str:
    path = path.strip("/")
    if not path:
        raise invalid_request("path cannot be empty")
    return path + "/"


class MountTable:
    """Secrets mounts keyed by "path/"; auth mounts keyed by "path/" below auth/."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.secrets: dict[str, Mount] = {}
        self.auth: dict[str, Mount] = {}
        # `vault server -dev` starts with kv-v2 at secret/. Vault docs: /vault/docs/concepts/dev-server
        self.secrets["sys/"] = Mount(
            "sys/",
            "system",
            "system endpoints used for control, policy and debugging",
            accessor=_accessor("system"),
        )
        self.enable_secrets(
            "secret", {"type": "kv", "options": {"version": "2"}, "description": "key/value secret storage"}
        )
        self.auth["token/"] = Mount(
            "token/", "token", "token based credentials", accessor=_accessor("auth_token")
        )

    def enable_secrets(self, path: str, data: dict[str, Any]) -> None:
        """Vault docs: /vault/api-docs/system/mounts#enable-secrets-engine"""
        path = normalise_mount_path(path)
        if path.startswith(RESERVED_PREFIXES):
            raise invalid_request(f"cannot mount under reserved path {path}")  # "sys/", "auth/", ...
        if any(path.startswith(p) or p.startswith(path) for p in self.secrets):
            raise invalid_request(f"path is already in use at {path}")
        mount_type = str(data.get("type") or "")
        options = {str(k): str(v) for k, v in (data.get("options") or {}).items()}
        if mount_type == "kv-v2":
            mount_type, options["version"] = "kv", "2"
        if mount_type == "kv":
            if options.get("version", "1") != "2":
                raise invalid_request(
                    "kv version 1 is not supported by this dev server; use options version=2"
                )
            engine: Any = KVv2Engine(self.clock)
        elif mount_type == "transit":
            engine = TransitEngine(self.clock)
        elif not mount_type:
            raise invalid_request("plugin not found in the catalog: ")
        else:
            raise invalid_request(f"plugin not found in the catalog: {mount_type}")
        config = dict(data.get("config") or {})
        self.secrets[path] = Mount(
            path,
            mount_type,
            str(data.get("description") or ""),
            options or None,
            config,
            engine,
            _accessor(mount_type),
        )

    def disable_secrets(self, path: str) -> None:
        path = normalise_mount_path(path)
        if path == "sys/" or path.startswith(RESERVED_PREFIXES):
            raise invalid_request(f"cannot unmount {path!r}")
        self.secrets.pop(path, None)

    def enable_auth(self, path: str, data: dict[str, Any]) -> None:
        """Vault docs: /vault/api-docs/system/auth#enable-auth-method"""
        path = normalise_mount_path(path)
        if path in self.auth or any(path.startswith(p) or p.startswith(path) for p in self.auth):
            raise invalid_request(f"path is already in use at auth/{path}")
        method = str(data.get("type") or "")
        if method != "kubernetes":
            raise invalid_request(f"plugin not found in the catalog: {method}")
        self.auth[path] = Mount(
            path,
            method,
            str(data.get("description") or ""),
            None,
            dict(data.get("config") or {}),
            KubernetesAuth(),
            _accessor(f"auth_{method}"),
        )

    def disable_auth(self, path: str) -> None:
        path = normalise_mount_path(path)
        if path == "token/":
            raise invalid_request("token credential backend cannot be disabled")
        self.auth.pop(path, None)

    def route_secrets(self, path: str) -> tuple[Mount, str] | None:
        """The mount owning `path` (longest prefix) and the path inside it."""
        return _longest(self.secrets, path)

    def route_auth(self, path: str) -> tuple[Mount, str] | None:
        """`path` is below auth/, e.g. "kubernetes/login"."""
        return _longest(self.auth, path)


def _longest(table: dict[str, Mount], path: str) -> tuple[Mount, str] | None:
    best = None
    for mount_path, mount in table.items():
        if (path + "/").startswith(mount_path) and (best is None or len(mount_path) > len(best.path)):
            best = mount
    if best is None:
        return None
    return best, path[len(best.path) :]
