"""A dataset's index at rest: encrypted under a data key of the owner nation's transit key, versioned.

Layout of `<root>/<nation lower>/<name>/`:
- `versions/<version>/manifest.json`: what `IndexManifest` holds (counts, hashes, model; no document content),
  plus the wrapped data key (`vault:vN:...`) and the list of sealed parts;
- `versions/<version>/<part>.bin`: 12-byte nonce + AES-256-GCM ciphertext of one part (`chunks`: ids and
  texts; `markings`: the distinct chunk markings and each chunk's index into them; `vectors-<n>`: float32
  rows, in blocks so that no single message nears AES-GCM's size limits). The associated data binds the
  dataset, the version and the part's name, so a part moved to another place fails to open;
- `CURRENT`: the current version's number, replaced atomically.

Writing: a new data key (`transit/datakey/wrapped/tenant-<nation>`, then `transit/decrypt`, as the audit log
does: Vault docs /vault/api-docs/secret/transit#generate-data-key), every file written and fsync'd in a
temporary directory, that directory renamed to `versions/<version>` and fsync'd, then `CURRENT` replaced
(write, fsync, rename, fsync). A crash or error before the last rename leaves the previous version current.
The plaintext data key lives only in memory. Deleting the nation's transit key (crypto-shredding) makes every
version unreadable.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hvac
import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sovereign.clients import vault as vault_client
from sovereign.dataplane.documents import Chunk
from sovereign.dataplane.manifest import IndexManifest
from sovereign.dataplane.retrieval import LoadedIndex
from sovereign.domain.markings import Markings
from sovereign.domain.nations import dataset_name, nation_folder, transit_key_name

CURRENT_FILE = "CURRENT"
MANIFEST_FILE = "manifest.json"
VERSIONS_DIR = "versions"
LOCK_FILE = "writer.lock"
VECTOR_BLOCK_ROWS = 65_536  # 96 MiB of 384-dim float32 per sealed part
KEEP_VERSIONS = 2  # the current one and the one a reader may still be opening


class DatasetUnreadable(RuntimeError):
    """The dataset's data key cannot be unwrapped (Vault refused: 403, or the key is gone: 400), or a part
    does not decrypt under it (altered or moved)."""


class DatasetNotIngested(LookupError):
    """The dataset has no index version yet."""


class DatasetStore:
    def __init__(self, root: Path, nation: str, name: str) -> None:
        self.nation, self.name = nation.upper(), name
        self.dataset = dataset_name(nation, name)
        self.directory = Path(root) / nation_folder(nation) / name

    # -- reading --------------------------------------------------------------------------------------

    def current(self) -> IndexManifest | None:
        """The current version's manifest (no Vault call), or None before the first write."""
        version = self._current_version()
        if version is None:
            return None
        return _manifest(self._manifest_body(version))

    def load(self, vault: hvac.Client, transit_mount: str) -> LoadedIndex:
        """Decrypt the current version into memory. Raises DatasetUnreadable, DatasetNotIngested."""
        version = self._current_version()
        if version is None:
            raise DatasetNotIngested(f"dataset {self.dataset} has no index yet")
        body = self._manifest_body(version)
        key = self._unwrap(vault, transit_mount, str(body["dataKey"]))
        folder = self._versions / str(version)
        parts = {part: self._open(folder, version, part, key) for part in body["parts"]}
        del key
        chunks = _chunks_from(self.dataset, parts)
        rows, dimensions = int(body["chunks"]), int(body["dimensions"])
        blocks = [np.frombuffer(parts[p], dtype="<f4") for p in body["parts"] if p.startswith("vectors-")]
        vectors = (np.concatenate(blocks) if blocks else np.empty(0, "<f4")).astype(np.float32, copy=False)
        if len(chunks) != rows or vectors.size != rows * dimensions:
            raise DatasetUnreadable(f"dataset {self.dataset} version {version}: parts disagree with manifest")
        return LoadedIndex(_manifest(body), chunks, vectors.reshape(rows, dimensions))

    # -- writing --------------------------------------------------------------------------------------

    def write_index(
        self,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        vault: hvac.Client,
        transit_mount: str,
        source_hash: str,
        model: str,
    ) -> IndexManifest:
        """Write a new version and make it current; returns its manifest."""
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        if vectors.ndim != 2 or vectors.shape[0] != len(chunks):
            raise ValueError(f"need one vector per chunk: {len(chunks)} chunks, vectors {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise ValueError("vectors must be finite")
        foreign = {c.dataset for c in chunks} - {self.dataset}
        if foreign:
            raise ValueError(f"chunks of {sorted(foreign)} cannot go into {self.dataset}")
        self._versions.mkdir(parents=True, exist_ok=True)
        with (self.directory / LOCK_FILE).open("a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one writer per dataset at a time; released on close
            return self._write_locked(chunks, vectors, vault, transit_mount, source_hash, model)

    def _write_locked(
        self,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        vault: hvac.Client,
        mount: str,
        source_hash: str,
        model: str,
    ) -> IndexManifest:
        self._remove_temporaries()
        existing = [int(p.name) for p in self._versions.iterdir() if p.name.isdigit()]
        version = max(existing, default=0) + 1
        key, wrapped = vault_client.generate_data_key(vault, mount, transit_key_name(self.nation))
        parts = {"chunks": _chunks_bytes(chunks), "markings": _markings_bytes(chunks)}
        for n, start in enumerate(range(0, len(vectors), VECTOR_BLOCK_ROWS)):
            parts[f"vectors-{n:05d}"] = vectors[start : start + VECTOR_BLOCK_ROWS].tobytes()
        temporary = self._versions / f".tmp-{version}-{secrets.token_hex(4)}"
        temporary.mkdir()
        try:
            for part, plaintext in parts.items():
                self._seal(temporary, version, part, key, plaintext)
            del key
            manifest = IndexManifest(
                version=version,
                source_hash=source_hash,
                documents=len({c.document_id for c in chunks}),
                chunks=len(chunks),
                dimensions=int(vectors.shape[1]),
                model=model,
                created=datetime.now(UTC).isoformat(),
            )
            body = {**_manifest_json(manifest), "dataKey": wrapped, "parts": list(parts)}
            _write_synced(temporary / MANIFEST_FILE, json.dumps(body, indent=1).encode())
            _fsync_directory(temporary)
            os.rename(temporary, self._versions / str(version))
            _fsync_directory(self._versions)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        pointer = self.directory / f"{CURRENT_FILE}.tmp"
        _write_synced(pointer, f"{version}\n".encode())
        os.replace(pointer, self.directory / CURRENT_FILE)  # the switch: atomic on POSIX
        _fsync_directory(self.directory)
        self._remove_old_versions(version)
        return manifest

    # -- internals -------------------------------------------------------------------------------------

    @property
    def _versions(self) -> Path:
        return self.directory / VERSIONS_DIR

    def _current_version(self) -> int | None:
        try:
            return int((self.directory / CURRENT_FILE).read_text().strip())
        except FileNotFoundError:
            return None

    def _manifest_body(self, version: int) -> dict[str, Any]:
        return dict(json.loads((self._versions / str(version) / MANIFEST_FILE).read_bytes()))

    def _aad(self, version: int, part: str) -> bytes:
        bound = {"dataset": self.dataset, "part": part, "version": version}
        return json.dumps(bound, sort_keys=True).encode()

    def _seal(self, folder: Path, version: int, part: str, key: bytes, plaintext: bytes) -> None:
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(nonce, plaintext, self._aad(version, part))
        _write_synced(folder / f"{part}.bin", nonce + sealed)

    def _open(self, folder: Path, version: int, part: str, key: bytes) -> bytes:
        data = (folder / f"{part}.bin").read_bytes()
        try:
            return AESGCM(key).decrypt(data[:12], data[12:], self._aad(version, part))
        except InvalidTag:
            raise DatasetUnreadable(
                f"dataset {self.dataset} version {version}: part {part} does not decrypt (altered or moved)"
            ) from None

    def _unwrap(self, vault: hvac.Client, mount: str, wrapped: str) -> bytes:
        key_name = transit_key_name(self.nation)
        refused = f"dataset {self.dataset}: Vault cannot unwrap its data key with {key_name}"
        try:
            [key] = vault_client.decrypt_data_keys(vault, mount, key_name, [wrapped])
        except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest, hvac.exceptions.InvalidPath) as e:
            # 403: this token may not use the key; 400/404: the key is gone (shredded) or never existed.
            raise DatasetUnreadable(f"{refused} ({type(e).__name__})") from None
        if key is None:
            raise DatasetUnreadable(refused)
        return key

    def _remove_temporaries(self) -> None:
        for leftover in self._versions.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)

    def _remove_old_versions(self, current: int) -> None:
        for folder in self._versions.iterdir():
            if folder.name.isdigit() and int(folder.name) <= current - KEEP_VERSIONS:
                shutil.rmtree(folder, ignore_errors=True)


# -- part encodings ---------------------------------------------------------------------------------------


def _chunks_bytes(chunks: Sequence[Chunk]) -> bytes:
    rows = [[c.document_id, c.chunk_id, c.text] for c in chunks]
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode()


def _markings_bytes(chunks: Sequence[Chunk]) -> bytes:
    # Few distinct markings, many chunks: a table of them and one small integer per chunk.
    table: dict[str, int] = {}
    indexes = []
    for chunk in chunks:
        encoded = chunk.markings.model_dump_json(by_alias=True)
        indexes.append(table.setdefault(encoded, len(table)))
    distinct = [json.loads(encoded) for encoded in table]
    return json.dumps({"distinct": distinct, "chunks": indexes}, separators=(",", ":")).encode()


def _chunks_from(dataset: str, parts: dict[str, bytes]) -> list[Chunk]:
    rows = json.loads(parts["chunks"])
    table = json.loads(parts["markings"])
    distinct = [Markings.model_validate(m) for m in table["distinct"]]
    return [
        Chunk(dataset, document_id, chunk_id, text, distinct[index])
        for (document_id, chunk_id, text), index in zip(rows, table["chunks"], strict=True)
    ]


def _manifest_json(manifest: IndexManifest) -> dict[str, Any]:
    return {
        "version": manifest.version,
        "sourceHash": manifest.source_hash,
        "documents": manifest.documents,
        "chunks": manifest.chunks,
        "dimensions": manifest.dimensions,
        "model": manifest.model,
        "created": manifest.created,
    }


def _manifest(body: dict[str, Any]) -> IndexManifest:
    return IndexManifest(
        version=int(body["version"]),
        source_hash=str(body["sourceHash"]),
        documents=int(body["documents"]),
        chunks=int(body["chunks"]),
        dimensions=int(body["dimensions"]),
        model=str(body["model"]),
        created=str(body["created"]),
    )


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
