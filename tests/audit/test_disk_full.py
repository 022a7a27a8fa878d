"""A write of the audit log failing (a full disk: ENOSPC after part of it was written) is refused, leaves
nothing that corrupts the chain, and the log goes on once it is opened again (the AuditWriter of the
gateways reopens it on its next append: tests/serving/e2e/test_serving_faults.py fills a real volume)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import BinaryIO

import pytest

from sovereign.audit import AuditLog, AuditLogClosed, _log, verify
from sovereign.audit._format import KEYS_FILE
from tests.audit.samples import AuditVault, make_record

pytestmark = pytest.mark.faults  # `make faults`: kept out of `make test` for its time


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """While `full["on"]`, every write of the log takes half its bytes, then fails with ENOSPC."""
    full = {"on": False}
    real = _log._write_all

    def write_all(file: BinaryIO, data: bytes) -> None:
        if full["on"]:
            file.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(file, data)

    monkeypatch.setattr(_log, "_write_all", write_all)
    return full


def test_a_full_disk_mid_write_fails_the_append_and_the_reopened_log_goes_on(
    audit_vault: AuditVault, tmp_path: Path, full_disk: dict[str, bool]
) -> None:
    directory, fra = tmp_path / "fra", audit_vault.client_for("FRA")
    log = AuditLog(directory, "FRA", fra)
    assert log.append_many([make_record(0), make_record(1)]) == [1, 2]
    full_disk["on"] = True
    with pytest.raises(OSError, match="No space left"):
        log.append(make_record(2))
    assert log.failed is not None
    with pytest.raises(AuditLogClosed):  # nothing more is appended after the torn line
        log.append(make_record(3))
    log.close()
    full_disk["on"] = False
    with AuditLog(directory, "FRA", fra) as reopened:
        assert reopened.tail_repair is not None  # the torn, never acknowledged line removed
        assert reopened.append(make_record(4)) == 3
    report = verify(directory, fra, "FRA")
    assert report.ok and report.last_seq == 3, report.problems


def test_a_full_disk_while_writing_a_data_key_leaves_no_torn_key_line(
    audit_vault: AuditVault, tmp_path: Path, full_disk: dict[str, bool]
) -> None:
    directory, fra = tmp_path / "fra", audit_vault.client_for("FRA")
    with AuditLog(directory, "FRA", fra) as log:
        full_disk["on"] = True
        with pytest.raises(OSError, match="No space left"):
            log.append(make_record(0))
        assert (directory / KEYS_FILE).read_bytes() == b""  # the half-written key line undone
        full_disk["on"] = False
        assert log.append(make_record(1)) == 1  # the same log goes on: nothing of it was written
    report = verify(directory, fra, "FRA")
    assert report.ok and report.last_seq == 1, report.problems
