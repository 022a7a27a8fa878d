"""Where a nation's audit logs live: one directory per nation, one log (stream) per writer inside it.

Each stream is its own hash chain with exactly one writer (an AuditLog holds an exclusive flock):
- `decisions/`: the nation's policy decisions, written by the nation's gateway side (one AuditWriter actor);
- `admin/`: administrative events (tenant provisioned, key rotated or shredded, policy changed), written by
  the operator.
A directory that itself holds a log (segments, keys.jsonl or head.json) is read as a single log, so a log
written before streams existed still verifies.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sovereign.audit._format import HEAD_FILE, KEYS_FILE, fsync_directory, segments
from sovereign.domain.nations import nation_folder

DECISIONS_STREAM = "decisions"
ADMIN_STREAM = "admin"
STREAMS = (DECISIONS_STREAM, ADMIN_STREAM)
SINGLE_LOG = "log"  # the name a directory holding one log directly is reported under


def nation_audit_directory(root: Path, nation: str) -> Path:
    return Path(root) / nation_folder(nation)


def stream_directory(root: Path, nation: str, stream: str) -> Path:
    if stream not in STREAMS:
        raise ValueError(f"unknown audit stream {stream!r}; one of {', '.join(STREAMS)}")
    return nation_audit_directory(root, nation) / stream


def set_aside(directory: Path, why: str) -> Path | None:
    """Move a directory of logs no key can read any more (its nation's key shredded, or the whole Vault
    gone) to `<name>.<why>-<UTC time>` beside it, so new logs start afresh instead of appending to chains
    nobody can verify; nothing is deleted. Returns the new place, or None when there was nothing to move."""
    directory = Path(directory)
    if not directory.exists():
        return None
    moved = directory.with_name(f"{directory.name}.{why}-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}")
    directory.rename(moved)
    fsync_directory(directory.parent)
    return moved


def holds_log(directory: Path) -> bool:
    return directory.is_dir() and (
        bool(segments(directory)) or (directory / KEYS_FILE).exists() or (directory / HEAD_FILE).exists()
    )


def stream_directories(nation_directory: Path) -> dict[str, Path]:
    """The logs under a nation's directory, by stream name (only those that exist), in STREAMS order."""
    directory = Path(nation_directory)
    if holds_log(directory):
        return {SINGLE_LOG: directory}
    return {stream: directory / stream for stream in STREAMS if holds_log(directory / stream)}
