"""The transit secrets engine: named, versioned AEAD keys; encrypt, decrypt, rewrap and data keys.

Vault docs: /vault/docs/secrets/transit and /vault/api-docs/secret/transit
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from sovereign_devstack.vault.common import (
    Clock,
    VaultError,
    as_bool,
    as_int,
    invalid_request,
    not_found,
    parse_duration,
    unsupported_operation,
    unsupported_path,
)

# Symmetric types this server implements. Vault docs: /vault/api-docs/secret/transit#type
KEY_BYTES = {"aes256-gcm96": 32, "aes128-gcm96": 16, "chacha20-poly1305": 32}
NONCE_BYTES = 12  # 96-bit nonce, as the type names say
MIN_AUTO_ROTATE = 3600


@dataclass
class TransitKey:
    name: str
    type: str
    versions: dict[int, bytes] = field(default_factory=dict)
    created: dict[int, float] = field(default_factory=dict)
    min_decryption_version: int = 1
    min_encryption_version: int = 0
    deletion_allowed: bool = False
    exportable: bool = False
    allow_plaintext_backup: bool = False
    auto_rotate_period: int = 0

    @property
    def latest_version(self) -> int:
        return max(self.versions)

    def add_version(self, now: float) -> None:
        version = (max(self.versions) + 1) if self.versions else 1
        self.versions[version] = os.urandom(KEY_BYTES[self.type])
        self.created[version] = now

    def aead(self, version: int) -> AESGCM | ChaCha20Poly1305:
        key = self.versions[version]
        return ChaCha20Poly1305(key) if self.type == "chacha20-poly1305" else AESGCM(key)

    def describe(self) -> dict[str, Any]:
        """The body of GET keys/:name. Vault docs: /vault/api-docs/secret/transit#read-key"""
        return {
            "name": self.name,
            "type": self.type,
            # Symmetric keys list their versions with the creation time as Unix seconds.
            "keys": {str(v): int(t) for v, t in sorted(self.created.items()) if v in self.versions},
            "latest_version": self.latest_version,
            "min_available_version": 0,
            "min_decryption_version": self.min_decryption_version,
            "min_encryption_version": self.min_encryption_version,
            "deletion_allowed": self.deletion_allowed,
            "derived": False,
            "exportable": self.exportable,
            "allow_plaintext_backup": self.allow_plaintext_backup,
            "auto_rotate_period": self.auto_rotate_period,
            "imported_key": False,
            "supports_encryption": True,
            "supports_decryption": True,
            "supports_derivation": True,
            "supports_signing": False,
        }


def _b64decode(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_request(f"failed to base64-decode {what}") from None


def _aad(item: dict[str, Any]) -> bytes | None:
    """Optional base64 `associated_data`, authenticated by the AEAD but not encrypted.

    Vault docs: /vault/api-docs/secret/transit#associated_data
    """
    value = item.get("associated_data")
    return _b64decode(value, "associated_data") if value else None


class TransitEngine:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.keys: dict[str, TransitKey] = {}

    # -- routing ---------------------------------------------------------------------------------

    def exists(self, path: str) -> bool | None:
        """Existence check for create-vs-update; only encrypt/:name has one (None: writes are `update`).

        encrypt/:name upserts a missing key when the caller has `create`, while keys/:name itself is a plain
        update path. Vault docs: /vault/api-docs/secret/transit#encrypt-data
        """
        parts = path.split("/")
        if len(parts) == 2 and parts[0] == "encrypt":
            return parts[1] in self.keys
        return None

    def handle(self, operation: str, path: str, data: dict[str, Any]) -> dict[str, Any] | None:
        parts = path.split("/")
        head = parts[0]
        if head == "keys" and (len(parts) == 1 or parts[1] == ""):
            if operation != "list":
                raise unsupported_operation()
            return {"keys": sorted(self.keys)}
        if head == "keys" and len(parts) == 2:
            return self._key_endpoint(operation, parts[1], data)
        if head == "keys" and len(parts) == 3 and parts[2] in ("config", "rotate"):
            if operation not in ("create", "update"):
                raise unsupported_operation()
            if parts[2] == "rotate":
                return self.rotate(parts[1])
            return self.configure(parts[1], data)
        if operation not in ("create", "update"):
            raise unsupported_operation()
        if head == "encrypt" and len(parts) == 2:
            return self.encrypt(parts[1], data, may_create=operation == "create")
        if head == "decrypt" and len(parts) == 2:
            return self.decrypt(parts[1], data)
        if head == "rewrap" and len(parts) == 2:
            return self.rewrap(parts[1], data)
        if head == "datakey" and len(parts) == 3:
            return self.datakey(parts[1], parts[2], data)
        raise unsupported_path()

    def _key_endpoint(self, operation: str, name: str, data: dict[str, Any]) -> dict[str, Any] | None:
        if operation == "read":
            key = self._get(name)
            if key is None:
                raise not_found()
            return key.describe()
        if operation in ("create", "update"):
            return self.create_key(name, data)
        if operation == "delete":
            self.delete_key(name)
            return None
        raise unsupported_operation()

    # -- keys ------------------------------------------------------------------------------------

    def _get(self, name: str) -> TransitKey | None:
        key = self.keys.get(name)
        if key is not None and key.auto_rotate_period:
            # Vault rotates in the background; rotating on next use looks the same to any caller.
            now = self.clock.now()
            if now - key.created[key.latest_version] >= key.auto_rotate_period:
                key.add_version(now)
        return key

    def _require(self, name: str, message: str = "encryption key not found") -> TransitKey:
        key = self._get(name)
        if key is None:
            raise invalid_request(message)
        return key

    def create_key(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        """Vault docs: /vault/api-docs/secret/transit#create-key (creating an existing key is a no-op)."""
        existing = self._get(name)
        if existing is not None:
            return existing.describe()
        key_type = str(data.get("type") or "aes256-gcm96")
        if key_type not in KEY_BYTES:
            raise invalid_request(f"unknown key type {key_type}")
        if as_bool(data.get("derived", False), "derived") or as_bool(
            data.get("convergent_encryption", False), "convergent_encryption"
        ):
            raise invalid_request("derived keys are not supported by this dev server")
        key = TransitKey(
            name=name,
            type=key_type,
            exportable=as_bool(data.get("exportable", False), "exportable"),
            allow_plaintext_backup=as_bool(
                data.get("allow_plaintext_backup", False), "allow_plaintext_backup"
            ),
            auto_rotate_period=self._auto_rotate(data.get("auto_rotate_period")),
        )
        key.add_version(self.clock.now())
        self.keys[name] = key
        return key.describe()

    @staticmethod
    def _auto_rotate(value: Any) -> int:
        period = parse_duration(value, "auto_rotate_period")
        if period and period < MIN_AUTO_ROTATE:
            # Vault docs: /vault/api-docs/secret/transit#auto_rotate_period ("minimum ... is one hour")
            raise invalid_request("auto rotate period must be 0 to disable or at least an hour")
        return period

    def configure(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        """Vault docs: /vault/api-docs/secret/transit#update-key-configuration"""
        key = self._require(name, f"no existing key named {name} could be found")
        min_dec = as_int(
            data.get("min_decryption_version", key.min_decryption_version), "min_decryption_version"
        )
        min_enc = as_int(
            data.get("min_encryption_version", key.min_encryption_version), "min_encryption_version"
        )
        if min_dec == 0:
            min_dec = 1
        if min_dec > key.latest_version:
            raise invalid_request(
                f"cannot set min decryption version of {min_dec}, latest key version is {key.latest_version}"
            )
        if min_enc > key.latest_version:
            raise invalid_request(
                f"cannot set min encryption version of {min_enc}, latest key version is {key.latest_version}"
            )
        if min_enc and min_enc < min_dec:
            raise invalid_request(
                f"cannot set min encryption/decryption values; min encryption version of {min_enc} must be "
                f"greater than or equal to min decryption version of {min_dec}"
            )
        if "exportable" in data:
            exportable = as_bool(data["exportable"], "exportable")
            if key.exportable and not exportable:
                raise invalid_request("exportable key cannot be made non-exportable")
            key.exportable = exportable
        if "allow_plaintext_backup" in data:
            allow = as_bool(data["allow_plaintext_backup"], "allow_plaintext_backup")
            if key.allow_plaintext_backup and not allow:
                raise invalid_request("plaintext backups cannot be disabled once allowed")
            key.allow_plaintext_backup = allow
        if "deletion_allowed" in data:
            key.deletion_allowed = as_bool(data["deletion_allowed"], "deletion_allowed")
        if "auto_rotate_period" in data:
            key.auto_rotate_period = self._auto_rotate(data["auto_rotate_period"])
        key.min_decryption_version, key.min_encryption_version = min_dec, min_enc
        return key.describe()

    def rotate(self, name: str) -> dict[str, Any]:
        """Vault docs: /vault/api-docs/secret/transit#rotate-key"""
        key = self._require(name, "key not found")
        key.add_version(self.clock.now())
        return key.describe()

    def delete_key(self, name: str) -> None:
        """Vault docs: /vault/api-docs/secret/transit#delete-key ("deletion_allowed" must be set first)."""
        key = self._require(name, "could not delete key; not found")
        if not key.deletion_allowed:
            raise invalid_request("deletion is not allowed for this key")
        del self.keys[name]

    # -- crypto ----------------------------------------------------------------------------------

    def _seal(self, key: TransitKey, plaintext: bytes, version: int, aad: bytes | None = None) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = key.aead(version).encrypt(nonce, plaintext, aad)  # ciphertext || 16-byte tag
        # Vault docs: /vault/docs/secrets/transit ("vault:v1:" prefix, then base64 of nonce+ciphertext+tag)
        return f"vault:v{version}:" + base64.b64encode(nonce + sealed).decode()

    def _open(self, key: TransitKey, ciphertext: Any, aad: bytes | None = None) -> tuple[bytes, int]:
        text = str(ciphertext or "")
        if not text:
            raise invalid_request("missing ciphertext to decrypt")
        if not text.startswith("vault:"):
            raise invalid_request("invalid ciphertext: no prefix")
        fields = text.split(":", 2)
        if len(fields) != 3 or not fields[1].startswith("v"):
            raise invalid_request("invalid ciphertext: wrong number of fields")
        try:
            version = int(fields[1][1:])
        except ValueError:
            raise invalid_request("invalid ciphertext: version number could not be decoded") from None
        if version < key.min_decryption_version:
            # Vault docs: /vault/api-docs/secret/transit#min_decryption_version
            raise invalid_request("ciphertext or signature version is disallowed by policy (too old)")
        if version not in key.versions:
            raise invalid_request("invalid key version")
        blob = _b64decode(fields[2], "ciphertext")
        if len(blob) < NONCE_BYTES + 16:
            raise invalid_request("invalid ciphertext: too short")
        try:
            plaintext = key.aead(version).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise invalid_request("cipher: message authentication failed") from None
        return plaintext, version

    def _encryption_version(self, key: TransitKey, requested: Any) -> int:
        version = as_int(requested or 0, "key_version")
        if version == 0:
            return key.latest_version
        if version < key.min_encryption_version:
            raise invalid_request(
                "requested version for encryption is less than the minimum encryption key version"
            )
        if version > key.latest_version:
            raise invalid_request("requested version for encryption is higher than the latest key version")
        if version < key.min_decryption_version:
            raise invalid_request(
                "requested version for encryption is less than the minimum decryption key version"
            )
        return version

    def encrypt(self, name: str, data: dict[str, Any], may_create: bool = False) -> dict[str, Any]:
        """Vault docs: /vault/api-docs/secret/transit#encrypt-data"""
        if self._get(name) is None and may_create:
            self.create_key(name, {"type": data.get("type")})
        key = self._require(name)
        batch = data.get("batch_input")
        if batch is not None:
            return {
                "batch_results": [
                    self._batch_item(lambda item: self._encrypt_one(key, item), item)
                    for item in self._batch(batch)
                ]
            }
        if "plaintext" not in data:
            raise invalid_request("missing plaintext to encrypt")
        return self._encrypt_one(key, data)

    def _encrypt_one(self, key: TransitKey, item: dict[str, Any]) -> dict[str, Any]:
        plaintext = _b64decode(item.get("plaintext", ""), "plaintext")
        version = self._encryption_version(key, item.get("key_version"))
        return {"ciphertext": self._seal(key, plaintext, version, _aad(item)), "key_version": version}

    def decrypt(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        """Vault docs: /vault/api-docs/secret/transit#decrypt-data"""
        key = self._require(name)
        batch = data.get("batch_input")
        if batch is not None:
            return {
                "batch_results": [
                    self._batch_item(lambda item: self._decrypt_one(key, item), item)
                    for item in self._batch(batch)
                ]
            }
        return self._decrypt_one(key, data)

    def _decrypt_one(self, key: TransitKey, item: dict[str, Any]) -> dict[str, Any]:
        plaintext, _ = self._open(key, item.get("ciphertext"), _aad(item))
        return {"plaintext": base64.b64encode(plaintext).decode()}

    def rewrap(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        """Vault docs: /vault/api-docs/secret/transit#rewrap-data"""
        key = self._require(name)
        batch = data.get("batch_input")
        if batch is not None:
            return {
                "batch_results": [
                    self._batch_item(lambda item: self._rewrap_one(key, item), item)
                    for item in self._batch(batch)
                ]
            }
        return self._rewrap_one(key, data)

    def _rewrap_one(self, key: TransitKey, item: dict[str, Any]) -> dict[str, Any]:
        aad = _aad(item)
        plaintext, _ = self._open(key, item.get("ciphertext"), aad)
        version = self._encryption_version(key, item.get("key_version"))
        return {"ciphertext": self._seal(key, plaintext, version, aad), "key_version": version}

    def datakey(self, kind: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
        """Vault docs: /vault/api-docs/secret/transit#generate-data-key"""
        if kind not in ("plaintext", "wrapped"):
            raise invalid_request(f"invalid type {kind}")
        key = self._require(name)
        bits = as_int(data.get("bits", 256) or 256, "bits")
        if bits not in (128, 256, 512):
            raise invalid_request("invalid bits value")
        material = os.urandom(bits // 8)
        version = self._encryption_version(key, data.get("key_version"))
        result: dict[str, Any] = {"ciphertext": self._seal(key, material, version), "key_version": version}
        if kind == "plaintext":
            result["plaintext"] = base64.b64encode(material).decode()
        return result

    @staticmethod
    def _batch(batch: Any) -> list[dict[str, Any]]:
        if not isinstance(batch, list) or not all(isinstance(item, dict) for item in batch):
            raise invalid_request("failed to parse batch input")
        if not batch:
            raise invalid_request("missing batch input to process")
        return batch

    @staticmethod
    def _batch_item(operation, item: dict[str, Any]) -> dict[str, Any]:
        # A failing item reports its own error instead of failing the whole batch (Vault docs: batch_input).
        try:
            result = operation(item)
        except VaultError as err:
            return {"error": "; ".join(err.messages)}
        if "reference" in item:
            result["reference"] = item["reference"]
        return result
