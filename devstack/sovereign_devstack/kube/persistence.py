"""The API server's objects on disk, as etcd keeps a real cluster's: an append-only journal and a snapshot.

# k8s docs: /docs/tasks/administer-cluster/configure-upgrade-etcd/ (all cluster data lives in etcd)
# etcd docs: https://etcd.io/docs/v3.5/learning/persistent-storage-files/ (a write-ahead log, synced before a
# write is acknowledged, and snapshots that let the log be cut)

The data dir holds `snapshot.json` (the revision, every object, and the name of the journal that follows it)
and that journal, one JSON record per line, each synced to disk before `append` returns. A write is therefore
either in the journal whole or was never acknowledged: a torn last line (the process was killed while
writing it) is dropped on load. `compact` writes a new snapshot beside the old one and renames it into place,
so a crash at any moment leaves either the old pair (snapshot, journal) or the new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("sovereign_devstack.kube.persistence")

SNAPSHOT = "snapshot.json"
LOCK = "lock"
FORMAT = 1
JOURNAL_LIMIT = 16 * 1024 * 1024  # bytes of journal before it is folded into a new snapshot

ResourceKey = tuple[str, str]  # (group, plural)


class DataDirError(RuntimeError):
    """The data dir is in use by another API server, or its files cannot be read back."""


@dataclass
class Restored:
    revision: int = 0
    objects: dict[ResourceKey, dict[tuple[str | None, str], dict[str, Any]]] = field(default_factory=dict)


class DataDir:
    """One API server's data dir: held with an exclusive lock from `__init__` until `close`."""

    def __init__(self, directory: Path, journal_limit: int = JOURNAL_LIMIT) -> None:
        self.directory = directory
        self.journal_limit = journal_limit
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise DataDirError(f"{directory} is in use by another Kubernetes API server") from None
        self._journal_fd: int | None = None
        self._journal_bytes = 0
        self._snapshot_bytes = 0
        self._generation = 0
        self._failed: str | None = None  # why the journal stopped taking writes

    # ---- reading back
    def load(self) -> Restored:
        """The state as of the last acknowledged write: the snapshot, then the journal it names."""
        restored = Restored()
        snapshot_path = self.directory / SNAPSHOT
        journal_name = None
        if snapshot_path.exists():
            try:
                snapshot = json.loads(snapshot_path.read_bytes())
            except ValueError as exc:
                raise DataDirError(f"{snapshot_path} is unreadable ({exc}): restore a backup") from exc
            if snapshot.get("format") != FORMAT:
                raise DataDirError(f"{snapshot_path} has format {snapshot.get('format')!r}, not {FORMAT}")
            restored.revision = snapshot["revision"]
            self._generation = snapshot["generation"]
            journal_name = snapshot["journal"]
            for entry in snapshot["objects"]:
                _apply_put(restored, tuple(entry["resource"]), entry["object"])  # type: ignore[arg-type]
        if journal_name is not None:
            self._replay(self.directory / journal_name, restored)
        return restored

    def _replay(self, path: Path, restored: Restored) -> None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return  # compaction stopped right after the snapshot's rename: the snapshot has everything
        complete, _, torn = data.rpartition(b"\n")
        records = complete.split(b"\n") if complete else []
        for number, line in enumerate(records, start=1):
            try:
                record = json.loads(line)
            except ValueError:
                if number < len(records):
                    raise DataDirError(f"{path}: record {number} is unreadable: restore a backup") from None
                torn = line  # a last record whose write never completed was never acknowledged either
                break
            resource: ResourceKey = tuple(record["resource"])  # type: ignore[assignment]
            restored.revision = max(restored.revision, record["rev"])
            if "object" in record:
                _apply_put(restored, resource, record["object"])
            elif "deleted" in record:
                namespace, name = record["deleted"]
                restored.objects.get(resource, {}).pop((namespace, name), None)
            elif record.get("dropped"):
                restored.objects.pop(resource, None)
        if torn:
            log.warning("%s: ignored a torn last record (%d bytes, never acknowledged)", path, len(torn))

    # ---- writing
    def append(self, record: dict[str, Any]) -> None:
        """Add one record to the journal and return only once it is on disk."""
        if self._journal_fd is None or self._failed is not None:
            why = self._failed or "not open"
            raise DataDirError(f"{self.directory}: the journal is not writable ({why})")
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        try:
            written = os.write(self._journal_fd, line)
            if written != len(line):
                raise OSError(f"short write ({written} of {len(line)} bytes): is the disk full?")
            os.fdatasync(self._journal_fd)
        except OSError as exc:
            # As etcd, stop writing: after a failed sync what is on disk is unknown, so acknowledge nothing.
            self._failed = str(exc)
            log.error("%s: journal write failed, refusing further writes: %s", self.directory, exc)
            raise DataDirError(f"{self.directory}: the journal write failed: {exc}") from exc
        self._journal_bytes += len(line)

    def needs_compaction(self) -> bool:
        return self._journal_bytes > max(self.journal_limit, self._snapshot_bytes)

    def compact(self, revision: int, objects: Iterable[tuple[ResourceKey, dict[str, Any]]]) -> None:
        """Write every object into a new snapshot that names a new, empty journal; drop the old journal.

        Until the rename, a failure leaves the old snapshot and journal in charge (and in use); after it,
        writes go to the new journal only once the directory is synced, else the journal stops taking any.
        """
        generation = self._generation + 1
        journal = self.directory / _journal_name(generation)
        snapshot = {
            "format": FORMAT,
            "revision": revision,
            "generation": generation,
            "journal": journal.name,
            "objects": [{"resource": list(resource), "object": obj} for resource, obj in objects],
        }
        body = json.dumps(snapshot, separators=(",", ":")).encode()
        temporary = self.directory / (SNAPSHOT + ".tmp")
        _write_synced(temporary, body)
        fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        try:
            os.fsync(fd)
            os.replace(temporary, self.directory / SNAPSHOT)
        except OSError:
            os.close(fd)
            raise
        old_fd, self._journal_fd = self._journal_fd, fd
        if old_fd is not None:
            os.close(old_fd)
        self._generation, self._journal_bytes, self._snapshot_bytes = generation, 0, len(body)
        try:
            _sync_directory(self.directory)
        except OSError as exc:
            self._failed = f"the data dir could not be synced after a compaction: {exc}"
            raise
        for stale in self.directory.glob("journal-*.jsonl"):  # the previous one, and any a crash left
            if stale != journal:
                stale.unlink(missing_ok=True)

    def close(self) -> None:
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None
        with contextlib.suppress(OSError):
            os.close(self._lock)  # releases the flock


def _journal_name(generation: int) -> str:
    return f"journal-{generation:08d}.jsonl"


def _apply_put(restored: Restored, resource: ResourceKey, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    restored.objects.setdefault(resource, {})[(meta.get("namespace"), meta["name"])] = obj


def _write_synced(path: Path, body: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_directory(directory: Path) -> None:
    """Make a rename or a new file in `directory` durable (the directory entry itself is synced)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
