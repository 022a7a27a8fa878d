"""Checking and reading a nation's audit log with the caller's own Vault token.

The chain is checked from the files alone (hashes, seqs, prev links, head.json); decrypting needs the
nation's data keys unwrapped by Vault (`transit/decrypt/tenant-<nation>`, one batch call), which only a token
under that nation's policy may do.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypedDict

import hvac
import hvac.exceptions
from cryptography.exceptions import InvalidTag
from pydantic import ValidationError

from sovereign.audit._errors import AuditAccessDenied, AuditLogTampered
from sovereign.audit._format import (
    GENESIS,
    LogLine,
    line_hash,
    open_line,
    parse_line,
    read_head,
    read_keys,
    segments,
    split_lines,
)
from sovereign.audit._log import TRANSIT_MOUNT
from sovereign.audit._records import AuditRecord
from sovereign.audit._report import AuditProblem, ProblemKind, VerifyReport
from sovereign.clients import vault as vault_client
from sovereign.domain.nations import transit_key_name


@dataclass
class _Entry:
    segment: str
    line: int
    body: LogLine
    intact: bool  # its hash matches its fields


class _Where(TypedDict):
    """Where in the log a problem is, as AuditProblem takes it."""

    segment: str
    line: int
    seq: int


@dataclass
class _Scan:
    entries: list[_Entry] = field(default_factory=list)
    problems: list[AuditProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def verify(
    directory: Path, vault: hvac.Client, nation: str, *, transit_mount: str = TRANSIT_MOUNT
) -> VerifyReport:
    """Check the whole chain and decrypt every record. Raises AuditAccessDenied on Vault's 403."""
    report, _records = _verify_and_decrypt(Path(directory), vault, nation, transit_mount)
    return report


def read(
    directory: Path,
    vault: hvac.Client,
    nation: str,
    since: timedelta | None = None,
    *,
    transit_mount: str = TRANSIT_MOUNT,
) -> list[AuditRecord]:
    """The records (in log order) whose time is within `since` of now, or all of them.

    The whole log is verified on the way; raises AuditLogTampered when it fails, AuditAccessDenied on 403.
    """
    report, records = _verify_and_decrypt(Path(directory), vault, nation, transit_mount)
    if report.problems:
        raise AuditLogTampered(report)
    if since is None:
        return records
    cutoff = datetime.now(UTC) - since
    return [record for record in records if record.time >= cutoff]


def _verify_and_decrypt(
    directory: Path, vault: hvac.Client, nation: str, mount: str
) -> tuple[VerifyReport, list[AuditRecord]]:
    scan = _scan_files(directory)
    _check_order_and_chain(scan)
    _check_head(directory, scan)
    records, key_count = _decrypt(directory, vault, nation, mount, scan)
    last = scan.entries[-1].body if scan.entries else None
    report = VerifyReport(
        nation=nation,
        directory=str(directory),
        records=len(scan.entries),
        last_seq=last.seq if last else 0,
        last_hash=last.hash if last else GENESIS,
        data_keys=key_count,
        problems=sorted(scan.problems, key=lambda p: (p.seq or 0, p.segment or "", p.line or 0)),
        notes=scan.notes,
    )
    return report, records


def _scan_files(directory: Path) -> _Scan:
    scan = _Scan()
    found = segments(directory)
    for index, (_first, path) in enumerate(found):
        lines, torn = split_lines(path.read_bytes())
        for number, raw in enumerate(lines, start=1):
            try:
                body = parse_line(raw)
            except ValueError as error:
                scan.problems.append(
                    AuditProblem(
                        kind="unparsable", segment=path.name, line=number, message=f"not a log line: {error}"
                    )
                )
                continue
            intact = line_hash(body.seq, body.prev, body.key_ref, body.nonce, body.ciphertext) == body.hash
            if not intact:
                scan.problems.append(
                    AuditProblem(
                        kind="altered",
                        segment=path.name,
                        line=number,
                        seq=body.seq,
                        message=f"seq {body.seq}: its hash does not match its fields (the line was altered)",
                    )
                )
            scan.entries.append(_Entry(path.name, number, body, intact))
        if torn:
            where = f"{path.name} line {len(lines) + 1}"
            if index == len(found) - 1:
                scan.notes.append(f"{where}: torn final line, never acknowledged (repaired on the next open)")
            else:
                scan.problems.append(
                    AuditProblem(
                        kind="truncated",
                        segment=path.name,
                        line=len(lines) + 1,
                        message=f"{where}: a segment that is not the last ends in a partial line",
                    )
                )
    return scan


def _check_order_and_chain(scan: _Scan) -> None:
    """Order: each seq is one more than the highest before it. Chain: prev is the hash of seq - 1."""
    present = Counter(entry.body.seq for entry in scan.entries)
    hash_of: dict[int, str] = {0: GENESIS}
    for entry in scan.entries:
        hash_of.setdefault(entry.body.seq, entry.body.hash)
    highest, seen = 0, set()

    def problem(kind: ProblemKind, entry: _Entry, message: str) -> None:
        scan.problems.append(
            AuditProblem(
                kind=kind, segment=entry.segment, line=entry.line, seq=entry.body.seq, message=message
            )
        )

    for entry in scan.entries:
        seq = entry.body.seq
        if seq in seen:
            problem("duplicated", entry, f"seq {seq} appears again (a record was inserted or copied)")
        elif seq <= highest:
            problem("reordered", entry, f"seq {seq} comes after seq {highest} (records were reordered)")
        elif seq > highest + 1:
            gap = range(highest + 1, seq)
            absent = [missing for missing in gap if present[missing] == 0]
            if absent:
                problem("removed", entry, f"{_ranges(absent)} missing before seq {seq} (removed)")
            if len(absent) < len(gap):
                problem("reordered", entry, f"seq {seq} comes before seq {highest + 1} (reordered)")
        seen.add(seq)
        highest = max(highest, seq)
        expected_prev = hash_of.get(seq - 1)
        if expected_prev is not None and entry.body.prev != expected_prev and present[seq] == 1:
            problem(
                "chain-broken",
                entry,
                f"seq {seq}: prev is not the hash of seq {seq - 1} (one of the two was replaced)",
            )


def _check_head(directory: Path, scan: _Scan) -> None:
    last = scan.entries[-1] if scan.entries else None
    try:
        head = read_head(directory)
    except ValueError as error:
        scan.problems.append(
            AuditProblem(kind="truncated", message=f"{error}: a cut-off tail cannot be ruled out")
        )
        return
    last_seq = last.body.seq if last else 0
    if head is None:
        if last is not None:
            scan.notes.append("head.json is missing: a cut-off tail could not be detected")
        return
    head_seq, head_hash = head
    if head_seq > last_seq:
        scan.problems.append(
            AuditProblem(
                kind="truncated",
                segment=last.segment if last else None,
                line=(last.line + 1) if last else None,
                seq=last_seq + 1,
                message=(
                    f"the log ends at seq {last_seq} but head.json records seq {head_seq} as durable: "
                    f"{_ranges(list(range(last_seq + 1, head_seq + 1)))} cut off"
                ),
            )
        )
    elif any(e.body.seq == head_seq and e.body.hash != head_hash for e in scan.entries):
        scan.problems.append(
            AuditProblem(kind="altered", seq=head_seq, message=f"seq {head_seq} differs from head.json")
        )


def _decrypt(
    directory: Path, vault: hvac.Client, nation: str, mount: str, scan: _Scan
) -> tuple[list[AuditRecord], int]:
    wrapped_by_ref = read_keys(directory)
    refs = sorted({entry.body.key_ref for entry in scan.entries if entry.intact} & set(wrapped_by_ref))
    try:
        unwrapped = vault_client.decrypt_data_keys(
            vault, mount, transit_key_name(nation), [wrapped_by_ref[ref] for ref in refs]
        )
    except hvac.exceptions.Forbidden as error:
        raise AuditAccessDenied(nation) from error
    keys = dict(zip(refs, unwrapped, strict=True))
    records = []
    for entry in scan.entries:
        if not entry.intact:
            continue
        where: _Where = {"segment": entry.segment, "line": entry.line, "seq": entry.body.seq}
        key = keys.get(entry.body.key_ref)
        if key is None:
            why = "is not in keys.jsonl" if entry.body.key_ref not in keys else "cannot be unwrapped by Vault"
            message = f"seq {entry.body.seq}: data key {entry.body.key_ref} {why}"
            scan.problems.append(AuditProblem(kind="unknown-key", message=message, **where))
            continue
        try:
            plaintext = open_line(nation, entry.body, key)
        except (InvalidTag, ValueError):
            message = (
                f"seq {entry.body.seq}: does not decrypt under its data key "
                "(altered, or moved from another position or nation)"
            )
            scan.problems.append(AuditProblem(kind="undecryptable", message=message, **where))
            continue
        try:
            record = AuditRecord.model_validate_json(plaintext)
        except ValidationError as error:
            message = f"seq {entry.body.seq}: content is not a valid record ({error.error_count()} errors)"
            scan.problems.append(AuditProblem(kind="invalid-content", message=message, **where))
            continue
        if record.nation != nation:
            message = f"seq {entry.body.seq}: a record of {record.nation} in {nation}'s log"
            scan.problems.append(AuditProblem(kind="wrong-nation", message=message, **where))
            continue
        records.append(record)
    return records, len(refs)


def _ranges(seqs: list[int]) -> str:
    """`seq 4`, `seqs 4..9`, or a list of such runs."""
    runs: list[tuple[int, int]] = []
    for seq in seqs:
        if runs and runs[-1][1] == seq - 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    text = ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in runs)
    return f"seq {text}" if len(seqs) == 1 else f"seqs {text}"
