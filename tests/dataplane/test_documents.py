"""Reading a dataset's source, checking each document's own markings against the dataset's, chunking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sovereign.dataplane import DocumentRejected, chunk_documents, read_documents, source_hash
from sovereign.dataplane.documents import Document, looser_than
from tests.dataplane.samples import est_markings

DATASET = "est/field-reports"
BASE = est_markings("NATO RESTRICTED", releasableTo=["FRA", "DEU"], compartments=["ATOMAL"])


def write_source(root: Path, records: list[dict], notes: str = "Patrol notes.") -> Path:
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "patrol.md").write_text(notes)
    (root / "a.txt").write_text("Plain text report.")
    (root / "records.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    (root / "ignored.pdf").write_bytes(b"%PDF")
    return root


def test_txt_md_and_jsonl_become_documents_with_ids_markings_and_lines(tmp_path: Path) -> None:
    stricter = {"classification": "NATO SECRET", "releasableTo": ["FRA"]}
    source = write_source(
        tmp_path, [{"id": "r1", "text": "one"}, {"id": "r2", "text": "two", "markings": stricter}]
    )
    documents = read_documents(source, DATASET, BASE)
    assert [(d.document_id, d.path, d.line) for d in documents] == [
        ("a.txt", "a.txt", None),
        ("notes/patrol.md", "notes/patrol.md", None),
        ("r1", "records.jsonl", 1),
        ("r2", "records.jsonl", 2),
    ]
    assert documents[0].text == "Plain text report." and documents[0].markings == BASE
    own = documents[3].markings
    # Fields the record leaves out keep the dataset's values (compartments, owner).
    assert (own.classification, own.releasable_to, own.compartments, own.owner) == (
        "NATO SECRET",
        ["FRA"],
        ["ATOMAL"],
        "EST",
    )


@pytest.mark.parametrize(
    "markings, reason",
    [
        ({"classification": "NATO UNCLASSIFIED"}, "classification NATO UNCLASSIFIED is below"),
        ({"releasableTo": ["FRA", "DEU", "POL"]}, "releasable to ['POL']"),
        ({"releasableTo": ["NATO"]}, "releasable to NATO, the dataset is not"),
        ({"compartments": []}, "compartments ['ATOMAL'] of the dataset are missing"),
        ({"classification": "TOP SECRET"}, "invalid markings: classification"),
        ({"colour": "red"}, "unknown marking fields ['colour']"),
    ],
    ids=["lower-classification", "wider-release", "nato-release", "fewer-compartments", "invalid", "unknown"],
)
def test_a_looser_or_invalid_document_is_rejected_naming_file_and_line(
    tmp_path: Path, markings: dict, reason: str
) -> None:
    source = write_source(
        tmp_path, [{"id": "ok", "text": "fine"}, {"id": "bad", "text": "x", "markings": markings}]
    )
    with pytest.raises(DocumentRejected) as raised:
        read_documents(source, DATASET, BASE)
    assert (raised.value.path, raised.value.line) == ("records.jsonl", 2)
    assert str(raised.value).startswith("records.jsonl:2: ") and reason in str(raised.value)
    assert "fine" not in str(raised.value)  # never document text


@pytest.mark.parametrize(
    "line, reason",
    [
        ("not json", "not JSON"),
        ('["a"]', "a record must be a JSON object"),
        ('{"text": "x"}', "`id` must be a non-empty string"),
        ('{"id": "a", "text": 3}', "`text` must be a string"),
        ('{"id": "a", "text": "x", "extra": 1}', "unknown fields ['extra']"),
        ('{"id": "a.txt", "text": "x"}', "document id 'a.txt' is already used at a.txt"),
    ],
)
def test_malformed_records_are_rejected_with_their_line(tmp_path: Path, line: str, reason: str) -> None:
    (tmp_path / "a.txt").write_text("text")
    (tmp_path / "b.jsonl").write_text('{"id": "fine", "text": "t"}\n\n' + line + "\n")
    with pytest.raises(DocumentRejected) as raised:
        read_documents(tmp_path, DATASET, BASE)
    assert str(raised.value).startswith("b.jsonl:3: ") and reason in raised.value.reason


def test_nato_wide_dataset_admits_named_nations_but_never_drops_a_denial() -> None:
    dataset = est_markings(releasableTo=["NATO"], deniedNations=["HUN"])
    assert looser_than(est_markings(releasableTo=["POL"], deniedNations=["HUN"]), dataset) is None
    assert looser_than(est_markings(releasableTo=["NATO"], deniedNations=["HUN", "TUR"]), dataset) is None
    assert "deniedNations ['HUN']" in (looser_than(est_markings(releasableTo=["NATO"]), dataset) or "")
    stricter_owner_only = est_markings("NATO SECRET", compartments=["ATOMAL"])
    assert looser_than(stricter_owner_only, BASE) is None


def test_chunks_are_windows_cut_at_whitespace_with_overlap_and_deterministic_ids() -> None:
    text = " ".join(f"word{i:03d}" for i in range(60))  # 8 characters per word with its space
    document = Document(DATASET, "d", text, BASE, "d.txt", None)
    chunks = chunk_documents([document], size=50, overlap=12)
    assert [c.chunk_id for c in chunks] == [f"d#{n}" for n in range(len(chunks))]
    assert all(len(c.text) <= 50 for c in chunks)
    # Every chunk starts and ends on a whole word, neighbours share at least one word, and nothing is lost.
    words = [c.text.split() for c in chunks]
    assert all(all(w.startswith("word") and len(w) == 7 for w in ws) for ws in words)
    assert all(set(a) & set(b) for a, b in zip(words, words[1:], strict=False))
    assert {w for ws in words for w in ws} == set(text.split())
    assert chunk_documents([document], size=50, overlap=12) == chunks
    assert all(c.markings == BASE and c.dataset == DATASET and c.document_id == "d" for c in chunks)


def test_chunking_a_word_longer_than_the_window_cuts_it_and_drops_blank_text() -> None:
    long_word = Document(DATASET, "w", "x" * 25, BASE, "w.txt", None)
    blank = Document(DATASET, "b", " \n\t ", BASE, "b.txt", None)
    assert [c.text for c in chunk_documents([long_word, blank], size=10, overlap=2)] == [
        "x" * 10,
        "x" * 10,
        "x" * 9,
    ]
    with pytest.raises(ValueError, match="overlap < size"):
        chunk_documents([long_word], size=10, overlap=10)


def test_source_hash_changes_with_content_and_names_not_with_ignored_files(tmp_path: Path) -> None:
    source = write_source(tmp_path / "s", [{"id": "r", "text": "t"}])
    first = source_hash(source)
    (source / "ignored.pdf").write_bytes(b"changed")
    assert source_hash(source) == first
    (source / "a.txt").write_text("Plain text report!")
    second = source_hash(source)
    (source / "a.txt").rename(source / "b.txt")
    assert len({first, second, source_hash(source)}) == 3
