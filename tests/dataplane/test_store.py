"""The encrypted index store against a real (devstack) Vault: round trip, nothing plaintext at rest, the
atomic version switch, and crypto-shredding."""

from __future__ import annotations

import os
from pathlib import Path

import hvac
import numpy as np
import pytest

from sovereign.clients.vault import delete_transit_key, set_transit_key_deletion_allowed
from sovereign.dataplane import DatasetNotIngested, DatasetStore, DatasetUnreadable
from tests.dataplane.samples import (
    TRANSIT,
    DataplaneVault,
    est_markings,
    prepare_nations,
    sample_chunks,
    unit_vectors,
)
from tests.servers import VaultServer

MARKINGS = [est_markings(), est_markings("NATO SECRET", releasableTo=["FRA"], compartments=["ATOMAL"])]


def write(store: DatasetStore, vault: hvac.Client, count: int = 30, seed: int = 0, model: str = "est/minilm"):
    chunks = sample_chunks(count, MARKINGS)
    vectors = unit_vectors(count, 16, seed)
    return chunks, vectors, store.write_index(chunks, vectors, vault, TRANSIT, f"hash-{seed}", model)


def test_round_trip_decrypts_chunks_markings_and_vectors(
    tmp_path: Path, dataplane_vault: DataplaneVault
) -> None:
    store = DatasetStore(tmp_path, "EST", "field-reports")
    est = dataplane_vault.client_for("EST")
    assert store.current() is None
    with pytest.raises(DatasetNotIngested):
        store.load(est, TRANSIT)
    chunks, vectors, manifest = write(store, est)
    assert (manifest.version, manifest.source_hash, manifest.chunks, manifest.documents) == (
        1,
        "hash-0",
        30,
        10,
    )
    assert (manifest.dimensions, manifest.model) == (16, "est/minilm")
    assert store.current() == manifest
    assert store.directory == tmp_path / "est" / "field-reports"
    loaded = store.load(est, TRANSIT)
    assert loaded.manifest == manifest
    assert loaded.chunks == chunks
    np.testing.assert_allclose(loaded.vectors, vectors, rtol=1e-6, atol=1e-6)


def test_nothing_is_plaintext_at_rest(tmp_path: Path, dataplane_vault: DataplaneVault) -> None:
    store = DatasetStore(tmp_path, "EST", "field-reports")
    chunks, vectors, _ = write(store, dataplane_vault.client_for("EST"))
    vectors[:, :4] = np.float32(0.123456789)  # a distinctive run of floats, as float32 bytes
    store.write_index(chunks, vectors, dataplane_vault.client_for("EST"), TRANSIT, "hash-1", "est/minilm")
    stored = b"".join(p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file())
    assert b"CANARY" not in stored and b"report " not in stored and b"doc-" not in stored
    assert b"ATOMAL" not in stored and b"NATO SECRET" not in stored
    assert np.float32(0.123456789).tobytes() * 4 not in stored
    for row in unit_vectors(30, 16, 0):
        assert row[:2].tobytes() not in stored


def test_another_nations_token_cannot_load(tmp_path: Path, dataplane_vault: DataplaneVault) -> None:
    store = DatasetStore(tmp_path, "EST", "field-reports")
    write(store, dataplane_vault.client_for("EST"))
    with pytest.raises(DatasetUnreadable, match="Forbidden"):
        store.load(dataplane_vault.client_for("FRA"), TRANSIT)


def test_an_altered_or_moved_part_does_not_decrypt(tmp_path: Path, dataplane_vault: DataplaneVault) -> None:
    est = dataplane_vault.client_for("EST")
    store = DatasetStore(tmp_path, "EST", "field-reports")
    write(store, est)
    write(store, est, seed=1)
    versions = store.directory / "versions"
    # Version 2's chunks replaced by version 1's (same data key would not help: the version is bound).
    (versions / "2" / "chunks.bin").write_bytes((versions / "1" / "chunks.bin").read_bytes())
    with pytest.raises(DatasetUnreadable, match="part chunks does not decrypt"):
        store.load(est, TRANSIT)
    sealed = bytearray((versions / "1" / "markings.bin").read_bytes())
    sealed[-1] ^= 1
    (versions / "1" / "markings.bin").write_bytes(bytes(sealed))
    (store.directory / "CURRENT").write_text("1\n")
    with pytest.raises(DatasetUnreadable, match="part markings does not decrypt"):
        store.load(est, TRANSIT)


@pytest.mark.parametrize("failing", ["fsync of a part", "pointer rename"])
def test_a_failed_write_leaves_the_previous_version_current(
    tmp_path: Path, dataplane_vault: DataplaneVault, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    est = dataplane_vault.client_for("EST")
    store = DatasetStore(tmp_path, "EST", "field-reports")
    chunks, _vectors, first = write(store, est)
    real_fsync, real_replace, calls = os.fsync, os.replace, []

    def fsync(descriptor: int) -> None:
        calls.append(descriptor)
        if len(calls) == 2:  # after the first sealed part, before the rest and the manifest
            raise OSError(28, "No space left on device")
        real_fsync(descriptor)

    def replace(source: object, target: object) -> None:
        if str(target).endswith("CURRENT"):
            raise OSError(5, "Input/output error")
        real_replace(source, target)

    if failing == "fsync of a part":
        monkeypatch.setattr(os, "fsync", fsync)
    else:
        monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        write(store, est, seed=1)
    monkeypatch.undo()
    assert store.current() == first
    assert store.load(est, TRANSIT).chunks == chunks
    assert not list((store.directory / "versions").glob(".tmp-*"))
    _, _, later = write(store, est, seed=2)
    assert store.current() == later and later.version > first.version and later.source_hash == "hash-2"


def test_only_the_last_two_versions_are_kept(tmp_path: Path, dataplane_vault: DataplaneVault) -> None:
    est = dataplane_vault.client_for("EST")
    store = DatasetStore(tmp_path, "EST", "field-reports")
    for seed in range(4):
        write(store, est, seed=seed)
    assert sorted(p.name for p in (store.directory / "versions").iterdir()) == ["3", "4"]
    assert store.load(est, TRANSIT).manifest.source_hash == "hash-3"


def test_shredding_the_nations_key_makes_the_dataset_unreadable(
    tmp_path: Path, fresh_vault: VaultServer
) -> None:
    vault = prepare_nations(fresh_vault, ("EST",))
    est = vault.client_for("EST")
    store = DatasetStore(tmp_path, "EST", "field-reports")
    chunks, _, manifest = write(store, est)
    assert store.load(est, TRANSIT).chunks == chunks
    root = fresh_vault.client()
    set_transit_key_deletion_allowed(root, TRANSIT, "tenant-est", True)
    assert delete_transit_key(root, TRANSIT, "tenant-est")
    assert store.current() == manifest  # the files are still there ...
    for client in (est, root):  # ... and nobody, not even root, can read them
        with pytest.raises(DatasetUnreadable):
            store.load(client, TRANSIT)


def test_an_empty_corpus_round_trips(tmp_path: Path, dataplane_vault: DataplaneVault) -> None:
    est = dataplane_vault.client_for("EST")
    store = DatasetStore(tmp_path, "EST", "empty")
    manifest = store.write_index([], np.empty((0, 384), np.float32), est, TRANSIT, "h", "est/minilm")
    assert (manifest.chunks, manifest.documents, manifest.dimensions) == (0, 0, 384)
    loaded = store.load(est, TRANSIT)
    assert loaded.chunks == [] and loaded.search(np.ones(384, np.float32), 5, None) == []
