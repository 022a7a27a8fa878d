"""A writer killed with SIGKILL loses no acknowledged record, and the log reopens and verifies.

SIGKILL stops the process, not the machine: the page cache survives it, so this proves the writer's order
of operations (key line before records, records before the acknowledgement, torn tails repaired), not
fsync against power loss.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sovereign.audit import AuditLog, read, verify
from tests.audit.samples import AuditVault, make_record
from tests.helpers import ROOT


def _start_writer(audit_vault: AuditVault, directory: Path, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tests.audit.crash_writer", str(directory), audit_vault.url]
    return subprocess.Popen(
        [*command, audit_vault.tokens["FRA"], "4", *extra],
        cwd=ROOT,
        env={**os.environ, "VAULT_CACERT": str(audit_vault.ca_cert)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _acknowledged(output: str) -> set[int]:
    return {int(line.split()[1]) for line in output.splitlines() if line.startswith("ack ")}


def _check_survivors(audit_vault: AuditVault, directory: Path, acknowledged: set[int]) -> None:
    fra = audit_vault.client_for("FRA")
    report = verify(directory, fra, "FRA")
    assert report.ok, report.problems
    assert acknowledged <= set(range(1, report.last_seq + 1))
    with AuditLog(directory, "FRA", fra) as log:  # reopens: repairs a torn tail if the kill left one
        assert log.append(make_record(0)) == report.last_seq + 1
    assert len(read(directory, fra, "FRA")) == report.last_seq + 1


@pytest.mark.parametrize("round_", range(3))
def test_killed_while_appending(audit_vault: AuditVault, tmp_path: Path, round_: int) -> None:
    writer = _start_writer(audit_vault, tmp_path / "fra")
    assert writer.stdout is not None
    seen = 0
    for line in writer.stdout:
        seen += line.startswith("ack ")
        if seen >= 300 + 97 * round_:
            break
    writer.send_signal(signal.SIGKILL)
    rest, errors = writer.communicate(timeout=30)
    assert writer.returncode == -signal.SIGKILL, errors
    acknowledged = _acknowledged(rest) | set(range(1, seen + 1))
    _check_survivors(audit_vault, tmp_path / "fra", acknowledged)


def test_killed_right_after_an_acknowledged_append(audit_vault: AuditVault, tmp_path: Path) -> None:
    writer = _start_writer(audit_vault, tmp_path / "fra", "--kill-self-after", "250")
    output, errors = writer.communicate(timeout=60)
    assert writer.returncode == -signal.SIGKILL, errors
    acknowledged = _acknowledged(output)
    assert len(acknowledged) == 250
    _check_survivors(audit_vault, tmp_path / "fra", acknowledged)
