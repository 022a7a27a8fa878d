"""Every change to a log's files is detected and located: altered, removed, inserted, reordered, cut off.

Each case tampers with a copy of the same 1,000-record reference log (one segment, seq N on line N).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sovereign.audit import AuditLogTampered, read, verify
from sovereign.audit._format import line_hash
from tests.audit.samples import AuditVault

SEGMENT = "segment-00000000000000000001.jsonl"


def _lines(directory: Path) -> list[bytes]:
    return (directory / SEGMENT).read_bytes().splitlines(keepends=True)


def _write(directory: Path, lines: list[bytes]) -> None:
    (directory / SEGMENT).write_bytes(b"".join(lines))


def _problems(audit_vault: AuditVault, directory: Path) -> list[tuple[str, int | None, int | None]]:
    report = verify(directory, audit_vault.client_for("FRA"), "FRA")
    assert not report.ok
    return [(problem.kind, problem.seq, problem.line) for problem in report.problems]


def test_the_untouched_copy_verifies(audit_vault: AuditVault, copy_of_reference: Callable[[], Path]) -> None:
    report = verify(copy_of_reference(), audit_vault.client_for("FRA"), "FRA")
    assert report.ok and report.last_seq == 1000


def test_a_flipped_ciphertext_byte_is_located(
    audit_vault: AuditVault, copy_of_reference: Callable[[], Path]
) -> None:
    directory = copy_of_reference()
    lines = _lines(directory)
    body = json.loads(lines[499])
    flipped = "A" if body["ciphertext"][10] != "A" else "B"
    body["ciphertext"] = body["ciphertext"][:10] + flipped + body["ciphertext"][11:]
    lines[499] = json.dumps(body, separators=(",", ":")).encode() + b"\n"
    _write(directory, lines)
    assert _problems(audit_vault, directory) == [("altered", 500, 500)]
    with pytest.raises(AuditLogTampered, match="seq 500"):
        read(directory, audit_vault.client_for("FRA"), "FRA")


def test_an_altered_line_with_a_recomputed_hash_breaks_the_chain(
    audit_vault: AuditVault, copy_of_reference: Callable[[], Path]
) -> None:
    directory = copy_of_reference()
    lines = _lines(directory)
    body = json.loads(lines[99])
    body["ciphertext"] = (
        "A" + body["ciphertext"][1:] if body["ciphertext"][0] != "A" else "B" + body["ciphertext"][1:]
    )
    body["hash"] = line_hash(body["seq"], body["prev"], body["keyRef"], body["nonce"], body["ciphertext"])
    lines[99] = json.dumps(body, separators=(",", ":")).encode() + b"\n"
    _write(directory, lines)
    assert _problems(audit_vault, directory) == [("undecryptable", 100, 100), ("chain-broken", 101, 101)]


def test_swapped_lines_are_located(audit_vault: AuditVault, copy_of_reference: Callable[[], Path]) -> None:
    directory = copy_of_reference()
    lines = _lines(directory)
    lines[299], lines[300] = lines[300], lines[299]
    _write(directory, lines)
    assert _problems(audit_vault, directory) == [("reordered", 300, 301), ("reordered", 301, 300)]


def test_a_deleted_line_is_located(audit_vault: AuditVault, copy_of_reference: Callable[[], Path]) -> None:
    directory = copy_of_reference()
    lines = _lines(directory)
    del lines[699]
    _write(directory, lines)
    report = verify(directory, audit_vault.client_for("FRA"), "FRA")
    assert [(p.kind, p.seq, p.line) for p in report.problems] == [("removed", 701, 700)]
    assert "seq 700 missing" in report.problems[0].message


def test_a_duplicated_line_is_located(audit_vault: AuditVault, copy_of_reference: Callable[[], Path]) -> None:
    directory = copy_of_reference()
    lines = _lines(directory)
    lines.insert(42, lines[10])  # seq 11 copied after seq 42
    _write(directory, lines)
    assert _problems(audit_vault, directory) == [("duplicated", 11, 43)]


def test_a_truncated_log_is_detected(audit_vault: AuditVault, copy_of_reference: Callable[[], Path]) -> None:
    directory = copy_of_reference()
    data = (directory / SEGMENT).read_bytes()
    cut = sum(len(line) for line in _lines(directory)[:899]) + 25  # in the middle of line 900
    (directory / SEGMENT).write_bytes(data[:cut])
    report = verify(directory, audit_vault.client_for("FRA"), "FRA")
    assert [(p.kind, p.seq, p.line) for p in report.problems] == [("truncated", 900, 900)]
    assert "seqs 900..1000 cut off" in report.problems[0].message


def test_records_moved_and_rechained_do_not_decrypt(
    audit_vault: AuditVault, copy_of_reference: Callable[[], Path]
) -> None:
    """Swap two records' sealed content and rebuild every hash and head.json: the chain is whole again, but
    the associated data binds each record to its seq and prev, so nothing from the first moved one on opens.
    """
    directory = copy_of_reference()
    bodies = [json.loads(line) for line in _lines(directory)]
    for field in ("nonce", "ciphertext"):
        bodies[9][field], bodies[19][field] = bodies[19][field], bodies[9][field]
    prev = "0" * 64
    for body in bodies:
        body["prev"] = prev
        body["hash"] = prev = line_hash(body["seq"], prev, body["keyRef"], body["nonce"], body["ciphertext"])
    _write(directory, [json.dumps(body, separators=(",", ":")).encode() + b"\n" for body in bodies])
    (directory / "head.json").write_text(json.dumps({"seq": 1000, "hash": prev}))
    problems = _problems(audit_vault, directory)
    assert {kind for kind, _seq, _line in problems} == {"undecryptable"}
    assert [seq for _kind, seq, _line in problems] == list(range(10, 1001))


def test_a_damaged_data_key_line_is_reported(
    audit_vault: AuditVault, copy_of_reference: Callable[[], Path]
) -> None:
    directory = copy_of_reference()
    (directory / "keys.jsonl").write_text('{"keyRef": "damaged"\n')
    problems = _problems(audit_vault, directory)
    assert {kind for kind, _seq, _line in problems} == {"unknown-key"}
    assert len(problems) == 1000


def test_a_rewritten_head_is_reported(audit_vault: AuditVault, copy_of_reference: Callable[[], Path]) -> None:
    directory = copy_of_reference()
    (directory / "head.json").write_text(json.dumps({"seq": 1000, "hash": "f" * 64}))
    assert _problems(audit_vault, directory) == [("altered", 1000, None)]
