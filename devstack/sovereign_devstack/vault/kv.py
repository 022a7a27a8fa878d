"""The KV version 2 secrets engine: versioned secrets with check-and-set, soft delete and destroy.

Vault docs: /vault/docs/secrets/kv/kv-v2 and /vault/api-docs/secret/kv/kv-v2
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from sovereign_devstack.vault.common import (
    Clock,
    VaultError,
    as_bool,
    as_int,
    format_duration,
    invalid_request,
    not_found,
    parse_duration,
    rfc3339,
    unsupported_operation,
    unsupported_path,
)

DEFAULT_MAX_VERSIONS = 10  # Vault docs: /vault/api-docs/secret/kv/kv-v2#max_versions ("defaults to 10")


@dataclass
class Version:
    data: dict[str, Any] | None
    created: float
    deleted: float | None = None
    destroyed: bool = False

    def metadata(self, number: int, custom: dict[str, str] | None) -> dict[str, Any]:
        return {
            "created_time": rfc3339(self.created),
            "custom_metadata": custom,
            "deletion_time": rfc3339(self.deleted) if self.deleted is not None else "",
            "destroyed": self.destroyed,
            "version": number,
        }


@dataclass
class Secret:
    created: float
    updated: float
    versions: dict[int, Version] = field(default_factory=dict)
    current_version: int = 0
    oldest_version: int = 0
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: int = 0
    custom_metadata: dict[str, str] | None = None


class KVv2Engine:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.secrets: dict[str, Secret] = {}
        self.max_versions = DEFAULT_MAX_VERSIONS
        self.cas_required = False
        self.delete_version_after = 0

    # -- routing ---------------------------------------------------------------------------------

    def exists(self, path: str) -> bool | None:
        """data/ and metadata/ writes distinguish create from update.

        Vault docs: /vault/api-docs/secret/kv/kv-v2#create-update-secret
        """
        head, _, rest = path.partition("/")
        if head in ("data", "metadata"):
            return rest in self.secrets
        if head == "config":
            return True
        return None

    def handle(
        self, operation: str, path: str, data: dict[str, Any], query: dict[str, str]
    ) -> dict[str, Any] | None:
        head, _, rest = path.partition("/")
        if head == "config" and not rest:
            return self._config(operation, data)
        if head == "metadata":
            return self._metadata_endpoint(operation, rest, data)
        if not rest:
            raise unsupported_path()
        if head == "data":
            if operation == "read":
                return self.read(rest, query.get("version"))
            if operation in ("create", "update"):
                return self.write(rest, data)
            if operation == "patch":
                return self.patch(rest, data)
            if operation == "delete":
                self.delete_latest(rest)
                return None
            raise unsupported_operation()
        if head in ("delete", "undelete", "destroy"):
            if operation not in ("create", "update"):
                raise unsupported_operation()
            versions = self._versions_param(data)
            getattr(self, f"{head}_versions")(rest, versions)
            return None
        raise unsupported_path()

    def _metadata_endpoint(self, operation: str, rest: str, data: dict[str, Any]) -> dict[str, Any] | None:
        if operation == "list":
            return self.list(rest)
        if not rest:
            raise unsupported_path()
        if operation == "read":
            return self.read_metadata(rest)
        if operation in ("create", "update", "patch"):
            self.write_metadata(rest, data)
            return None
        if operation == "delete":
            self.secrets.pop(rest, None)
            return None
        raise unsupported_operation()

    def _config(self, operation: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """Vault docs: /vault/api-docs/secret/kv/kv-v2#configure-the-kv-engine"""
        if operation == "read":
            return {
                "max_versions": self.max_versions,
                "cas_required": self.cas_required,
                "delete_version_after": format_duration(self.delete_version_after),
            }
        if operation not in ("create", "update"):
            raise unsupported_operation()
        if "max_versions" in data:
            self.max_versions = as_int(data["max_versions"], "max_versions") or DEFAULT_MAX_VERSIONS
        if "cas_required" in data:
            self.cas_required = as_bool(data["cas_required"], "cas_required")
        if "delete_version_after" in data:
            self.delete_version_after = parse_duration(data["delete_version_after"], "delete_version_after")
        return None

    # -- data ------------------------------------------------------------------------------------

    def read(self, path: str, version_param: Any = None) -> dict[str, Any]:
        """Vault docs: /vault/api-docs/secret/kv/kv-v2#read-secret-version"""
        secret = self.secrets.get(path)
        if secret is None or not secret.current_version:
            raise not_found()
        number = as_int(version_param, "version") if version_param not in (None, "") else 0
        number = number or secret.current_version
        version = secret.versions.get(number)
        if version is None:
            raise not_found()
        meta = version.metadata(number, secret.custom_metadata)
        if version.deleted is not None or version.destroyed:
            # A deleted or destroyed version answers 404 but still shows its metadata (hvac reads it).
            raise VaultError(404, body_data={"data": None, "metadata": meta})
        return {"data": copy.deepcopy(version.data), "metadata": meta}

    def write(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Vault docs: /vault/api-docs/secret/kv/kv-v2#create-update-secret"""
        secret_data = body.get("data")
        if not isinstance(secret_data, dict):
            raise invalid_request("no data provided")
        options = body.get("options") or {}
        secret = self.secrets.get(path)
        cas = options.get("cas") if isinstance(options, dict) else None
        cas_required = self.cas_required or (secret is not None and secret.cas_required)
        if cas is None and cas_required:
            raise invalid_request("check-and-set parameter required for this call")
        if cas is not None:
            # cas=0 only succeeds if the key does not exist yet.
            current = secret.current_version if secret is not None else 0
            if as_int(cas, "cas") != current:
                raise invalid_request("check-and-set parameter did not match the current version")
        now = self.clock.now()
        if secret is None:
            secret = self.secrets[path] = Secret(created=now, updated=now)
        number = secret.current_version + 1
        secret.versions[number] = Version(data=copy.deepcopy(secret_data), created=now)
        secret.current_version, secret.updated = number, now
        if not secret.oldest_version:
            secret.oldest_version = number
        self._trim(secret)
        return secret.versions[number].metadata(number, secret.custom_metadata)

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """JSON merge patch (RFC 7396) of the latest version.

        Vault docs: /vault/api-docs/secret/kv/kv-v2#patch-secret
        """
        secret = self.secrets.get(path)
        if secret is None or not secret.current_version:
            raise not_found()
        latest = secret.versions[secret.current_version]
        if latest.deleted is not None or latest.destroyed:
            raise not_found()
        patch_data = body.get("data")
        if not isinstance(patch_data, dict):
            raise invalid_request("no data provided")
        options = body.get("options") or {}
        cas = options.get("cas") if isinstance(options, dict) else None
        if cas is not None and as_int(cas, "cas") != secret.current_version:
            raise invalid_request("check-and-set parameter did not match the current version")
        merged = _merge_patch(copy.deepcopy(latest.data or {}), patch_data)
        return self.write(path, {"data": merged})

    def _trim(self, secret: Secret) -> None:
        limit = secret.max_versions or self.max_versions
        while len(secret.versions) > limit:
            oldest = min(secret.versions)
            del secret.versions[oldest]
        secret.oldest_version = min(secret.versions)

    def delete_latest(self, path: str) -> None:
        """Soft-delete the latest version.

        Vault docs: /vault/api-docs/secret/kv/kv-v2#delete-latest-version-of-secret
        """
        secret = self.secrets.get(path)
        if secret is None or not secret.current_version:
            return
        latest = secret.versions.get(secret.current_version)
        if latest is not None and latest.deleted is None:
            latest.deleted = self.clock.now()

    @staticmethod
    def _versions_param(data: dict[str, Any]) -> list[int]:
        versions = data.get("versions")
        if isinstance(versions, int | str):
            versions = [versions]
        if not versions:
            raise invalid_request("no version number provided")
        return [as_int(v, "versions") for v in versions]

    def delete_versions(self, path: str, versions: list[int]) -> None:
        """Vault docs: /vault/api-docs/secret/kv/kv-v2#delete-secret-versions"""
        secret = self.secrets.get(path)
        for number in versions:
            version = secret.versions.get(number) if secret else None
            if version is not None and version.deleted is None and not version.destroyed:
                version.deleted = self.clock.now()

    def undelete_versions(self, path: str, versions: list[int]) -> None:
        """Destroyed versions stay destroyed.

        Vault docs: /vault/api-docs/secret/kv/kv-v2#undelete-secret-versions
        """
        secret = self.secrets.get(path)
        for number in versions:
            version = secret.versions.get(number) if secret else None
            if version is not None and not version.destroyed:
                version.deleted = None

    def destroy_versions(self, path: str, versions: list[int]) -> None:
        """Permanently remove the data. Vault docs: /vault/api-docs/secret/kv/kv-v2#destroy-secret-versions"""
        secret = self.secrets.get(path)
        for number in versions:
            version = secret.versions.get(number) if secret else None
            if version is not None:
                version.destroyed, version.data = True, None

    # -- metadata --------------------------------------------------------------------------------

    def read_metadata(self, path: str) -> dict[str, Any]:
        """Vault docs: /vault/api-docs/secret/kv/kv-v2#read-secret-metadata"""
        secret = self.secrets.get(path)
        if secret is None:
            raise not_found()
        return {
            "cas_required": secret.cas_required,
            "created_time": rfc3339(secret.created),
            "current_version": secret.current_version,
            "custom_metadata": secret.custom_metadata,
            "delete_version_after": format_duration(secret.delete_version_after),
            "max_versions": secret.max_versions,
            "oldest_version": secret.oldest_version,
            "updated_time": rfc3339(secret.updated),
            "versions": {
                str(n): {
                    k: v
                    for k, v in version.metadata(n, None).items()
                    if k not in ("version", "custom_metadata")
                }
                for n, version in sorted(secret.versions.items())
            },
        }

    def write_metadata(self, path: str, data: dict[str, Any]) -> None:
        """Vault docs: /vault/api-docs/secret/kv/kv-v2#create-update-metadata"""
        now = self.clock.now()
        secret = self.secrets.get(path)
        if secret is None:
            secret = self.secrets[path] = Secret(created=now, updated=now)
        if "max_versions" in data:
            secret.max_versions = as_int(data["max_versions"], "max_versions")
        if "cas_required" in data:
            secret.cas_required = as_bool(data["cas_required"], "cas_required")
        if "delete_version_after" in data:
            secret.delete_version_after = parse_duration(data["delete_version_after"], "delete_version_after")
        if "custom_metadata" in data:
            custom = data["custom_metadata"]
            if custom is not None and not isinstance(custom, dict):
                raise invalid_request("custom_metadata must be a map of strings")
            secret.custom_metadata = {str(k): str(v) for k, v in (custom or {}).items()} or None
        secret.updated = now
        if secret.versions:
            self._trim(secret)

    def list(self, prefix: str) -> dict[str, Any]:
        """Keys directly under `prefix`; sub-folders end in "/".

        Vault docs: /vault/api-docs/secret/kv/kv-v2#list-secrets
        """
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        keys: set[str] = set()
        for path in self.secrets:
            if path.startswith(prefix):
                head, slash, _ = path[len(prefix) :].partition("/")
                keys.add(head + slash)
        return {"keys": sorted(keys)}


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge recursively; null removes a key; anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge_patch(target.get(key), value)
    return target
