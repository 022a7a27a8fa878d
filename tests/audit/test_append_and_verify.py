"""Appending to a nation's log and reading it back with the nation's own Vault token."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import hvac
import pytest

from sovereign.audit import AuditAccessDenied, AuditLog, AuditLogCorrupt, read, verify
from tests.audit.samples import AuditVault, make_record


def test_a_thousand_appends_cost_at_most_two_vault_calls(audit_vault: AuditVault, tmp_path: Path) -> None:
    records = [make_record(index) for index in range(1000)]
    before = audit_vault.transit_calls()
    started = time.perf_counter()
    with AuditLog(tmp_path / "fra", "FRA", audit_vault.client_for("FRA")) as log:
        seqs = [log.append(record) for record in records]
    elapsed = time.perf_counter() - started
    calls = audit_vault.transit_calls() - before
    print(f"\n1,000 sequential appends: {calls} Vault call(s), {1000 / elapsed:,.0f} records/s")
    assert seqs == list(range(1, 1001))
    assert calls <= 2


def test_the_data_key_rotates_after_n_records(audit_vault: AuditVault, tmp_path: Path) -> None:
    before = audit_vault.transit_calls()
    with AuditLog(tmp_path / "fra", "FRA", audit_vault.client_for("FRA"), rotate_after_records=100) as log:
        log.append_many([make_record(index) for index in range(250)])
    assert audit_vault.transit_calls() - before == 6  # each data key: datakey/wrapped, then one decrypt
    report = verify(tmp_path / "fra", audit_vault.client_for("FRA"), "FRA")
    assert report.ok and report.data_keys == 3


def test_verify_passes_and_content_round_trips(audit_vault: AuditVault, tmp_path: Path) -> None:
    records = [make_record(index, kind="admin" if index % 10 == 0 else "decision") for index in range(50)]
    with AuditLog(tmp_path / "fra", "FRA", audit_vault.client_for("FRA")) as log:
        log.append_many(records)
    report = verify(tmp_path / "fra", audit_vault.client_for("FRA"), "FRA")
    assert report.ok, report.problems
    assert (report.records, report.last_seq, report.data_keys) == (50, 50, 1)
    assert read(tmp_path / "fra", audit_vault.client_for("FRA"), "FRA") == records
    assert report.model_dump(mode="json", by_alias=True)["ok"] is True


def test_read_since_returns_the_recent_records_only(audit_vault: AuditVault, tmp_path: Path) -> None:
    old = make_record(1).model_copy(update={"time": make_record(1).time - timedelta(hours=3)})
    recent = make_record(2)
    with AuditLog(tmp_path / "fra", "FRA", audit_vault.client_for("FRA")) as log:
        log.append_many([old, recent])
    assert read(tmp_path / "fra", audit_vault.client_for("FRA"), "FRA", since=timedelta(hours=1)) == [recent]


def test_another_nations_token_cannot_decrypt(audit_vault: AuditVault, tmp_path: Path) -> None:
    with AuditLog(tmp_path / "fra", "FRA", audit_vault.client_for("FRA")) as log:
        log.append(make_record(1))
    message = r"cannot decrypt FRA's audit data keys with these credentials \(403\)"
    with pytest.raises(AuditAccessDenied, match=message):
        verify(tmp_path / "fra", audit_vault.client_for("DEU"), "FRA")
    with pytest.raises(AuditAccessDenied, match=message):
        read(tmp_path / "fra", audit_vault.client_for("DEU"), "FRA")


def test_another_nation_cannot_append_to_a_log_with_its_key(audit_vault: AuditVault, tmp_path: Path) -> None:
    # DEU's token may not make data keys under FRA's transit key.
    log = AuditLog(tmp_path / "fra", "FRA", audit_vault.client_for("DEU"))
    with log, pytest.raises(hvac.exceptions.Forbidden):
        log.append(make_record(1))


def test_a_record_of_another_nation_is_refused(audit_vault: AuditVault, tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "fra", "FRA", audit_vault.client_for("FRA"))
    with log, pytest.raises(ValueError, match="DEU's log cannot go into FRA's log"):
        log.append(make_record(1, nation="DEU"))


def test_concurrent_appends_keep_the_chain_valid(audit_vault: AuditVault, tmp_path: Path) -> None:
    threads, per_thread = 8, 250
    acknowledged: list[int] = []
    guard = threading.Lock()
    with AuditLog(tmp_path / "fra", "FRA", audit_vault.client_for("FRA")) as log:

        def work(worker: int) -> None:
            for index in range(per_thread):
                seq = log.append(make_record(worker * per_thread + index))
                with guard:
                    acknowledged.append(seq)

        started = time.perf_counter()
        pool = [threading.Thread(target=work, args=(worker,)) for worker in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        elapsed = time.perf_counter() - started
    print(f"\n{threads} threads x {per_thread} appends: {threads * per_thread / elapsed:,.0f} records/s")
    assert sorted(acknowledged) == list(range(1, threads * per_thread + 1))
    report = verify(tmp_path / "fra", audit_vault.client_for("FRA"), "FRA")
    assert report.ok, report.problems
    assert report.last_seq == threads * per_thread


def test_reopening_continues_the_chain(audit_vault: AuditVault, tmp_path: Path) -> None:
    for round_ in range(3):
        with AuditLog(tmp_path / "fra", "FRA", audit_vault.client_for("FRA"), segment_records=7) as log:
            log.append_many([make_record(index) for index in range(10)])
            assert log.last_seq == 10 * (round_ + 1)
    report = verify(tmp_path / "fra", audit_vault.client_for("FRA"), "FRA")
    assert report.ok, report.problems
    assert (report.last_seq, report.data_keys) == (30, 3)
    assert len(list((tmp_path / "fra").glob("segment-*.jsonl"))) == 5


def test_a_torn_last_line_is_repaired_on_reopen(audit_vault: AuditVault, tmp_path: Path) -> None:
    directory = tmp_path / "fra"
    with AuditLog(directory, "FRA", audit_vault.client_for("FRA")) as log:
        log.append_many([make_record(index) for index in range(10)])
    (segment,) = directory.glob("segment-*.jsonl")
    with segment.open("ab") as file:
        file.write(b'{"seq":11,"prev":"ab')  # a write cut short: never acknowledged
    report = verify(directory, audit_vault.client_for("FRA"), "FRA")
    assert report.ok and "line 11: torn final line" in report.notes[0]

    with AuditLog(directory, "FRA", audit_vault.client_for("FRA")) as log:
        assert log.tail_repair is not None and "line 11" in log.tail_repair
        assert log.append(make_record(11)) == 11
    report = verify(directory, audit_vault.client_for("FRA"), "FRA")
    assert report.ok and not report.notes and report.last_seq == 11


def test_a_second_writer_is_refused(audit_vault: AuditVault, tmp_path: Path) -> None:
    # flock is per open file description, so a second open in the same process conflicts as well.
    first = AuditLog(tmp_path / "fra", "FRA", audit_vault.client_for("FRA"))
    with first, pytest.raises(AuditLogCorrupt, match="already open for appending"):
        AuditLog(tmp_path / "fra", "FRA", audit_vault.client_for("FRA"))
