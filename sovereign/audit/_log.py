"""Appending to a nation's audit log: encrypted, hash-chained, durable before `append` returns.

Group commit: every `append` seals its record under the log's lock (so seqs and the chain follow the order of
the calls), then waits until a write + fsync covering it has finished. The first waiter with nothing in
flight writes everything pending in one go; records appended meanwhile form the next batch. A lone caller
pays one fsync per record, many callers share one, and no acknowledged record is ever only in memory.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal

import hvac

from sovereign.audit._errors import AuditLogClosed, AuditLogCorrupt
from sovereign.audit._format import (
    GENESIS,
    KEYS_FILE,
    LOCK_FILE,
    canonical,
    fsync_directory,
    line_hash,
    parse_line,
    read_head,
    seal_line,
    segment_name,
    segments,
    split_lines,
    write_head,
)
from sovereign.audit._records import AuditRecord
from sovereign.clients import vault as vault_client
from sovereign.domain.nations import transit_key_name

log = logging.getLogger(__name__)

TRANSIT_MOUNT = "transit"

# Where a writer's data keys come from:
# - "wrapped": `datakey/wrapped` then one `decrypt` of it (two calls; the writer is the nation itself, whose
#   policy may decrypt anyway), the plaintext never crosses the wire at creation;
# - "plaintext": `datakey/plaintext` (one call answering the key and its wrapped form), for a writer that may
#   encrypt but must never decrypt: the operator, whose policy denies `decrypt`, writes admin records so.
# Vault docs: /vault/api-docs/secret/transit#generate-data-key
DataKeySource = Literal["wrapped", "plaintext"]
VaultSource = hvac.Client | Callable[[], hvac.Client]


class AuditLog:
    """A nation's audit log in `directory`, open for appending by this process alone (an exclusive flock).

    `vault` needs `update` on `<transit_mount>/datakey/wrapped/` and `<transit_mount>/decrypt/` of
    `tenant-<nation>` (with `data_keys="plaintext"`: on `<transit_mount>/datakey/plaintext/` only). It is a
    client, or a function returning one, called whenever a data key is made (so a writer whose Vault token
    expires can hand over a fresh login). A new data key is made on the first append, then after every
    `rotate_after_records` records or `rotate_after_seconds` seconds, or after `rotate_data_key()`.
    """

    def __init__(
        self,
        directory: Path,
        nation: str,
        vault: VaultSource,
        *,
        transit_mount: str = TRANSIT_MOUNT,
        data_keys: DataKeySource = "wrapped",
        rotate_after_records: int = 10_000,
        rotate_after_seconds: float = 3600.0,
        segment_records: int = 100_000,
    ) -> None:
        self.directory, self.nation = Path(directory), nation
        self._vault, self._mount, self._key_name = vault, transit_mount, transit_key_name(nation)
        self._data_key_source = data_keys
        self._rotate_records, self._rotate_seconds = rotate_after_records, rotate_after_seconds
        self._segment_records = segment_records
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_file = (self.directory / LOCK_FILE).open("a+b")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            busy = f"{self.directory} is already open for appending by another process"
            raise AuditLogCorrupt(busy) from None

        self._lock = threading.Lock()
        self._durable = threading.Condition(self._lock)
        self._pending: list[tuple[int, str, bytes]] = []  # (seq, hash, line bytes)
        self._flushing = False
        self._failed: BaseException | None = None
        self._closed = False
        self._data_key: bytes | None = None
        self._key_ref = ""
        self._key_uses = 0
        self._key_made = 0.0
        self.tail_repair: str | None = None  # what was repaired on open, if anything (also logged)
        self._repair_keys_file()
        self._last_seq, self._last_hash, segment_first, segment_lines = self._resume()
        self._durable_seq = self._last_seq
        self._segment: BinaryIO | None = None
        self._segment_first, self._segment_lines = segment_first, segment_lines

    # -- public -------------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The seq of the last record appended (0 for an empty log)."""
        with self._lock:
            return self._last_seq

    @property
    def failed(self) -> BaseException | None:
        """Why a write failed (e.g. a full disk), after which the log appends nothing more: close it and open
        it again (which removes a torn last line) to go on; None while it writes."""
        with self._lock:
            return self._failed

    def append(self, record: AuditRecord) -> int:
        """Append one record; returns its seq once it is on disk (fsync'd)."""
        return self.append_many([record])[-1]

    def append_many(self, records: Sequence[AuditRecord]) -> list[int]:
        """Append records in order; returns their seqs once all are on disk (one fsync for the lot)."""
        if not records:
            return []
        for record in records:
            if record.nation != self.nation:
                raise ValueError(f"a record of {record.nation}'s log cannot go into {self.nation}'s log")
        with self._lock:
            self._check_open()
            seqs = [self._seal(record) for record in records]
            self._wait_durable(seqs[-1])
        return seqs

    def rotate_data_key(self) -> None:
        """Seal the next record under a new data key (e.g. after the transit key was rotated, so that new
        records are wrapped by its latest version)."""
        with self._lock:
            self._data_key = None

    def flush(self) -> None:
        """Return once every record appended so far is on disk (appends already wait for their own)."""
        with self._lock:
            if self._failed is None:
                self._wait_durable(self._last_seq)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._failed is None:
                self._wait_durable(self._last_seq)
            self._closed = True
            self._data_key = None
            try:
                if self._segment is not None:
                    self._segment.close()
            finally:
                self._lock_file.close()  # releases the flock

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # -- sealing (under the lock) -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise AuditLogClosed(f"{self.nation}'s audit log is closed")
        if self._failed is not None:
            raise AuditLogClosed(f"{self.nation}'s audit log failed to write ({self._failed}); reopen it")

    def _seal(self, record: AuditRecord) -> int:
        key = self._current_data_key()
        seq = self._last_seq + 1
        line = seal_line(self.nation, seq, self._last_hash, self._key_ref, key, record.canonical_bytes())
        self._pending.append((seq, line.hash, line.to_bytes()))
        self._last_seq, self._last_hash = seq, line.hash
        self._key_uses += 1
        return seq

    def _current_data_key(self) -> bytes:
        expired = time.monotonic() - self._key_made >= self._rotate_seconds
        if self._data_key is None or self._key_uses >= self._rotate_records or expired:
            plaintext, wrapped = self._new_data_key()
            key_ref = secrets.token_hex(8)
            entry = {"created": datetime.now(UTC).isoformat(), "keyRef": key_ref, "wrapped": wrapped}
            path = self.directory / KEYS_FILE
            new_file = not path.exists()
            # Durable before any record sealed with it can be acknowledged. A write that fails (a full disk)
            # is undone, so the next key's line never follows a torn one.
            with path.open("ab", buffering=0) as file:
                size = file.seek(0, os.SEEK_END)
                try:
                    _write_all(file, canonical(entry) + b"\n")
                    _fsync(file)
                except OSError:
                    with contextlib.suppress(OSError):
                        file.truncate(size)
                    raise
            if new_file:
                fsync_directory(self.directory)
            self._data_key, self._key_ref, self._key_uses = plaintext, key_ref, 0
            self._key_made = time.monotonic()
        return self._data_key

    def _new_data_key(self) -> tuple[bytes, str]:
        vault = self._vault if isinstance(self._vault, hvac.Client) else self._vault()
        if self._data_key_source == "wrapped":
            return vault_client.generate_data_key(vault, self._mount, self._key_name)
        response = vault.secrets.transit.generate_data_key(
            name=self._key_name, key_type="plaintext", bits=256, mount_point=self._mount
        )
        return base64.b64decode(response["data"]["plaintext"]), str(response["data"]["ciphertext"])

    # -- group commit -------------------------------------------------------------------------------

    def _wait_durable(self, seq: int) -> None:
        """Called holding the lock; returns holding it, once `seq` is durable (or raises)."""
        while self._durable_seq < seq:
            if self._failed is not None:
                raise AuditLogClosed(f"{self.nation}'s audit log failed to write: {self._failed}")
            if self._flushing:
                self._durable.wait()
                continue
            batch, self._pending, self._flushing = self._pending, [], True
            self._lock.release()
            try:
                self._write(batch)
            except BaseException as error:
                self._lock.acquire()
                self._failed, self._flushing = error, False
                self._durable.notify_all()
                raise
            self._lock.acquire()
            self._durable_seq, self._flushing = batch[-1][0], False
            self._durable.notify_all()

    def _write(self, batch: list[tuple[int, str, bytes]]) -> None:
        """Only one thread at a time gets here (the flusher): it alone touches the segment file."""
        chunk: list[bytes] = []
        for seq, _digest, raw in batch:
            if self._segment is None or self._segment_lines >= self._segment_records:
                self._sync(chunk)
                chunk = []
                self._open_segment(seq)
            chunk.append(raw)
            self._segment_lines += 1
        self._sync(chunk)
        write_head(self.directory, batch[-1][0], batch[-1][1])

    def _sync(self, chunk: list[bytes]) -> None:
        if chunk and self._segment is not None:
            _write_all(self._segment, b"".join(chunk))
            _fsync(self._segment)

    def _open_segment(self, seq: int) -> None:
        resuming = self._segment is None and self._segment_first is not None
        if resuming and self._segment_lines < self._segment_records:  # continue the last segment
            assert self._segment_first is not None
            self._segment = (self.directory / segment_name(self._segment_first)).open("ab", buffering=0)
            return
        if self._segment is not None:
            self._segment.close()
        self._segment = (self.directory / segment_name(seq)).open("ab", buffering=0)
        self._segment_first, self._segment_lines = seq, 0
        fsync_directory(self.directory)

    # -- resuming after a restart --------------------------------------------------------------------

    def _resume(self) -> tuple[int, str, int | None, int]:
        """Last seq and hash, and the last segment's first seq and line count; repairs a torn last line."""
        for first, path in reversed(segments(self.directory)):
            data = path.read_bytes()
            lines, torn = split_lines(data)
            if torn:
                self._truncate(path, len(data) - len(torn), len(lines) + 1)
            if not lines:
                path.unlink()  # held no acknowledged record (it was created, then the process died)
                fsync_directory(self.directory)
                continue
            try:
                last = parse_line(lines[-1])
            except ValueError as error:
                raise AuditLogCorrupt(f"{path.name} line {len(lines)}: {error}; run verify") from error
            if line_hash(last.seq, last.prev, last.key_ref, last.nonce, last.ciphertext) != last.hash:
                raise AuditLogCorrupt(f"{path.name} line {len(lines)}: hash does not match; run verify")
            self._check_head(last.seq, last.hash)
            return last.seq, last.hash, first, len(lines)
        self._check_head(0, GENESIS)
        return 0, GENESIS, None, 0

    def _check_head(self, seq: int, digest: str) -> None:
        try:
            head = read_head(self.directory)
        except ValueError as error:
            raise AuditLogCorrupt(f"{self.nation}'s audit log: {error}; run verify") from error
        if head is not None and head[0] > seq:
            raise AuditLogCorrupt(
                f"{self.nation}'s audit log ends at seq {seq} but head.json records seq {head[0]} as "
                "durable: records were removed; run verify"
            )
        if head is not None and head[0] == seq and head[1] != digest:
            raise AuditLogCorrupt(f"{self.nation}'s last audit record differs from head.json; run verify")

    def _truncate(self, path: Path, size: int, line_number: int) -> None:
        with path.open("r+b") as file:
            file.truncate(size)
            _fsync(file)
        self.tail_repair = (
            f"{path.name} line {line_number}: removed a torn final line that was never acknowledged"
        )
        log.warning("audit log of %s: %s", self.nation, self.tail_repair)

    def _repair_keys_file(self) -> None:
        path = self.directory / KEYS_FILE
        if not path.exists():
            return
        data = path.read_bytes()
        lines, torn = split_lines(data)
        if torn:  # a key line that never became durable: no record was sealed with it
            with path.open("r+b") as file:
                file.truncate(len(data) - len(torn))
                _fsync(file)
            log.warning("audit log of %s: removed a torn last line of %s", self.nation, KEYS_FILE)


def _fsync(file: BinaryIO) -> None:
    os.fsync(file.fileno())


def _write_all(file: BinaryIO, data: bytes) -> None:
    """Write all of `data` to an unbuffered file (a write may take part of it); an OSError (e.g. ENOSPC)
    leaves at most a torn last line on disk, never bytes held back for a later flush."""
    view = memoryview(data)
    while view:
        written = file.write(view)
        if not written:
            raise OSError(errno.EIO, f"no byte written to {getattr(file, 'name', 'the audit log')}")
        view = view[written:]
