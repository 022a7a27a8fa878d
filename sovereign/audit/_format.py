"""The on-disk format of a nation's audit log; pure (no Vault, no locks).

A log is a directory:
- `segment-<first seq, 20 digits>.jsonl`: one JSON line per record,
  `{"seq", "prev", "keyRef", "nonce", "ciphertext", "hash"}`. `hash` is the hex sha256 of the canonical
  bytes of the other five fields, `prev` the previous line's `hash` (64 zeros for seq 1): integrity is
  checkable without decrypting. `ciphertext` is AES-256-GCM of the record's canonical JSON under the data
  key `keyRef`, with associated data `{"nation", "prev", "seq"}`, so a record moved to another position or
  nation fails to open.
- `keys.jsonl`: one JSON line per data key, `{"keyRef", "wrapped", "created"}` (`wrapped`: Vault's
  `vault:vN:` ciphertext of the data key under the nation's transit key). A key line is durable before any
  record using it.
- `head.json`: `{"seq", "hash"}` of the last record known durable, replaced after each fsync'd batch. The log
  can only be as long as or longer than it says, so a cut-off tail is detected.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

GENESIS = "0" * 64
KEYS_FILE = "keys.jsonl"
HEAD_FILE = "head.json"
LOCK_FILE = "writer.lock"
_SEGMENT = re.compile(r"^segment-(\d{20})\.jsonl$")
_LINE_FIELDS = ("seq", "prev", "keyRef", "nonce", "ciphertext", "hash")


@dataclass(frozen=True)
class LogLine:
    seq: int
    prev: str
    key_ref: str
    nonce: str
    ciphertext: str
    hash: str

    def to_bytes(self) -> bytes:
        body = {
            "seq": self.seq,
            "prev": self.prev,
            "keyRef": self.key_ref,
            "nonce": self.nonce,
            "ciphertext": self.ciphertext,
            "hash": self.hash,
        }
        return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def line_hash(seq: int, prev: str, key_ref: str, nonce: str, ciphertext: str) -> str:
    body = {"seq": seq, "prev": prev, "keyRef": key_ref, "nonce": nonce, "ciphertext": ciphertext}
    return hashlib.sha256(canonical(body)).hexdigest()


def associated_data(nation: str, seq: int, prev: str) -> bytes:
    return canonical({"nation": nation, "prev": prev, "seq": seq})


def seal_line(nation: str, seq: int, prev: str, key_ref: str, data_key: bytes, plaintext: bytes) -> LogLine:
    nonce = os.urandom(12)
    sealed = AESGCM(data_key).encrypt(nonce, plaintext, associated_data(nation, seq, prev))
    nonce_b64, ciphertext_b64 = base64.b64encode(nonce).decode(), base64.b64encode(sealed).decode()
    digest = line_hash(seq, prev, key_ref, nonce_b64, ciphertext_b64)
    return LogLine(seq, prev, key_ref, nonce_b64, ciphertext_b64, digest)


def open_line(nation: str, line: LogLine, data_key: bytes) -> bytes:
    """The record's plaintext; raises cryptography's InvalidTag if anything bound to it was changed."""
    aad = associated_data(nation, line.seq, line.prev)
    return AESGCM(data_key).decrypt(base64.b64decode(line.nonce), base64.b64decode(line.ciphertext), aad)


def parse_line(raw: bytes) -> LogLine:
    """Raises ValueError when the line is not a well-formed log line (hashes are not checked here)."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"not JSON ({error.msg if hasattr(error, 'msg') else error})") from error
    if not isinstance(body, dict) or set(body) != set(_LINE_FIELDS):
        raise ValueError(f"fields are not exactly {', '.join(_LINE_FIELDS)}")
    if not isinstance(body["seq"], int) or isinstance(body["seq"], bool) or body["seq"] < 1:
        raise ValueError("seq is not a positive integer")
    if not all(isinstance(body[name], str) for name in _LINE_FIELDS[1:]):
        raise ValueError("prev, keyRef, nonce, ciphertext and hash must be strings")
    return LogLine(body["seq"], body["prev"], body["keyRef"], body["nonce"], body["ciphertext"], body["hash"])


def segment_name(first_seq: int) -> str:
    return f"segment-{first_seq:020d}.jsonl"


def segments(directory: Path) -> list[tuple[int, Path]]:
    """The segment files in seq order, each with the first seq its name claims."""
    found = []
    for path in directory.iterdir() if directory.is_dir() else []:
        match = _SEGMENT.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def split_lines(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete (newline-terminated) lines, and the torn rest after the last newline."""
    end = data.rfind(b"\n") + 1
    return data[:end].splitlines(), data[end:]


def read_keys(directory: Path) -> dict[str, str]:
    """keyRef → wrapped data key; a torn last line (never used by a durable record) is ignored."""
    path = directory / KEYS_FILE
    if not path.exists():
        return {}
    lines, _torn = split_lines(path.read_bytes())
    keys = {}
    for raw in lines:
        try:
            body = json.loads(raw)
            keys[str(body["keyRef"])] = str(body["wrapped"])
        except (ValueError, KeyError, TypeError):
            continue  # records sealed with a key whose line is damaged are reported as `unknown-key`
    return keys


def read_head(directory: Path) -> tuple[int, str] | None:
    """The last durable (seq, hash) head.json records; None without one, ValueError when it is damaged."""
    path = directory / HEAD_FILE
    if not path.exists():
        return None
    try:
        body = json.loads(path.read_bytes())
        return int(body["seq"]), str(body["hash"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{HEAD_FILE} is damaged: {error}") from error


def write_head(directory: Path, seq: int, digest: str) -> None:
    """Replace head.json atomically (write, fsync, rename): it is never seen half-written."""
    temporary = directory / f"{HEAD_FILE}.tmp"
    with temporary.open("wb") as file:
        file.write(canonical({"hash": digest, "seq": seq}))
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, directory / HEAD_FILE)


def fsync_directory(directory: Path) -> None:
    """Make a new file's directory entry durable too (POSIX: fsync the directory)."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
