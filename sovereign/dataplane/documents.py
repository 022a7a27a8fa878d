"""A dataset's documents: read from its source, checked against the dataset's markings, cut into chunks.

Pure (files in, values out; no Vault, no index). A source is a directory (or one file): every `.txt` and `.md`
file is one document whose id is its path relative to the source; every `.jsonl` file holds one document per
non-blank line, `{"id": ..., "text": ..., "markings": {...}?}`. Other files are not documents and are ignored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sovereign.domain.markings import NATO, Markings, ResourceMarkings

TEXT_SUFFIXES = frozenset({".txt", ".md"})
JSONL_SUFFIX = ".jsonl"
_MARKING_FIELDS = frozenset({"classification", "releasableTo", "deniedNations", "compartments"})


class DocumentRejected(ValueError):
    """A document that cannot be ingested; `path` (relative to the source) and `line` say where it is.

    The message never quotes document text: it is written into job output and Kubernetes status.
    """

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        self.path, self.line, self.reason = path, line, reason
        super().__init__(f"{path}:{line}: {reason}" if line is not None else f"{path}: {reason}")


@dataclass(frozen=True)
class Document:
    dataset: str  # `<nation lower>/<name>`
    document_id: str
    text: str
    markings: Markings  # the dataset's, or the document's own (only ever stricter)
    path: str  # relative to the source
    line: int | None  # 1-based line of a JSONL record; None for a whole file


@dataclass(frozen=True)
class Chunk:
    dataset: str
    document_id: str
    chunk_id: str  # f"{document_id}#{n}", n counting from 0 within the document
    text: str
    markings: Markings


# -- reading -----------------------------------------------------------------------------------------------


def read_documents(source: Path, dataset: str, dataset_markings: Markings) -> list[Document]:
    """Every document under `source`, in sorted path order; raises DocumentRejected on the first bad one."""
    documents: list[Document] = []
    seen: dict[str, str] = {}  # document id → where it was first defined
    for relative, path in _document_files(Path(source)):
        if path.suffix == JSONL_SUFFIX:
            found = list(_jsonl_documents(path, relative, dataset, dataset_markings))
        else:
            found = [Document(dataset, relative, _text(path, relative), dataset_markings, relative, None)]
        for document in found:
            where = f"{relative}:{document.line}" if document.line is not None else relative
            if document.document_id in seen:
                first = seen[document.document_id]
                reason = f"document id {document.document_id!r} is already used at {first}"
                raise DocumentRejected(relative, document.line, reason)
            seen[document.document_id] = where
            documents.append(document)
    return documents


def source_hash(source: Path) -> str:
    """sha256 (hex) over the document files' sorted relative paths and bytes: equal iff the corpus is."""
    digest = hashlib.sha256()
    for relative, path in _document_files(Path(source)):
        data = path.read_bytes()
        # Lengths make the encoding unambiguous (no path/content boundary can be shifted).
        name = relative.encode()
        digest.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def _document_files(source: Path) -> list[tuple[str, Path]]:
    if source.is_file():
        candidates = [(source.name, source)]
    elif source.is_dir():
        candidates = [(p.relative_to(source).as_posix(), p) for p in source.rglob("*") if p.is_file()]
    else:
        raise FileNotFoundError(f"dataset source {source} does not exist")
    return sorted(
        (relative, path)
        for relative, path in candidates
        if path.suffix in TEXT_SUFFIXES | {JSONL_SUFFIX}
        and not any(part.startswith(".") for part in relative.split("/"))
    )


def _text(path: Path, relative: str, line: int | None = None) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DocumentRejected(relative, line, f"not UTF-8 text (byte {error.start})") from None


def _jsonl_documents(
    path: Path, relative: str, dataset: str, dataset_markings: Markings
) -> Iterator[Document]:
    # Split on \n only (not str.splitlines' other separators), so line numbers match an editor's.
    for number, raw in enumerate(_text(path, relative).split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            raise DocumentRejected(relative, number, f"not JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise DocumentRejected(relative, number, "a record must be a JSON object")
        unknown = set(record) - {"id", "text", "markings"}
        if unknown:
            raise DocumentRejected(relative, number, f"unknown fields {sorted(unknown)}")
        document_id, text = record.get("id"), record.get("text")
        if not isinstance(document_id, str) or not document_id.strip():
            raise DocumentRejected(relative, number, "`id` must be a non-empty string")
        if not isinstance(text, str):
            raise DocumentRejected(relative, number, "`text` must be a string")
        markings = _own_markings(record.get("markings"), dataset_markings, relative, number)
        yield Document(dataset, document_id, text, markings, relative, number)


def _own_markings(value: Any, dataset_markings: Markings, relative: str, line: int) -> Markings:
    if value is None:
        return dataset_markings
    if not isinstance(value, dict):
        raise DocumentRejected(relative, line, "`markings` must be a JSON object")
    unknown = set(value) - _MARKING_FIELDS
    if unknown:
        raise DocumentRejected(relative, line, f"unknown marking fields {sorted(unknown)}")
    # A field the record leaves out keeps the dataset's value: a record says only what it tightens.
    inherited = dataset_markings.model_dump(by_alias=True, mode="json", exclude={"owner"})
    try:
        own = ResourceMarkings.model_validate({**inherited, **value}).owned_by(dataset_markings.owner)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "markings"
        raise DocumentRejected(relative, line, f"invalid markings: {field}: {first['msg']}") from None
    looser = looser_than(own, dataset_markings)
    if looser:
        raise DocumentRejected(relative, line, f"markings looser than the dataset's: {looser}")
    return own


def looser_than(document: Markings, dataset: Markings) -> str | None:
    """Why `document`'s markings are not at least as strict as `dataset`'s, or None when they are."""
    if document.classification < dataset.classification:
        return f"classification {document.classification} is below the dataset's {dataset.classification}"
    dropped = sorted(set(dataset.compartments) - set(document.compartments))
    if dropped:
        return f"compartments {dropped} of the dataset are missing"
    # deniedNations are forbids that hold even for the owner: a document may add denials, never drop one.
    undenied = sorted(set(dataset.denied_nations) - set(document.denied_nations))
    if undenied:
        return f"deniedNations {undenied} of the dataset are missing"
    allowed, own = dataset.releasable_set(), document.releasable_set()
    if NATO in own and NATO not in allowed:
        return "releasable to NATO, the dataset is not"
    # NATO in the dataset's set stands for every member (minus its denials, already required above).
    wider = sorted(n for n in own - {NATO} if n not in allowed and NATO not in allowed)
    if wider:
        return f"releasable to {wider}, the dataset is not"
    return None


# -- chunking ----------------------------------------------------------------------------------------------


def chunk_documents(documents: Iterable[Document], size: int, overlap: int) -> list[Chunk]:
    """Character windows of at most `size` with about `overlap` shared characters, cut at whitespace when a
    whitespace lies in the window's second half; whitespace-only windows are dropped. Deterministic."""
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"need size >= 1 and 0 <= overlap < size (size {size}, overlap {overlap})")
    chunks: list[Chunk] = []
    for document in documents:
        for n, text in enumerate(_windows(document.text, size, overlap)):
            chunks.append(
                Chunk(
                    document.dataset,
                    document.document_id,
                    f"{document.document_id}#{n}",
                    text,
                    document.markings,
                )
            )
    return chunks


def _windows(text: str, size: int, overlap: int) -> Iterator[str]:
    start, length = 0, len(text)
    while start < length:
        while start < length and text[start].isspace():
            start += 1
        if start >= length:
            return
        end = min(start + size, length)
        if end < length and not text[end].isspace():
            # Cut at the last whitespace in the window's second half, so a word is not split (if possible).
            cut = _last_space(text, start + size // 2, end)
            if cut is not None:
                end = cut
        piece = text[start:end].rstrip()
        if piece:
            yield piece
        if end >= length:
            return
        # The next window starts `overlap` characters back, moved forward to a word's start.
        following = max(end - overlap, start + 1)
        if overlap and following < end and not text[following - 1].isspace():
            space = next((i for i in range(following, end) if text[i].isspace()), None)
            following = space + 1 if space is not None else following
        start = following


def _last_space(text: str, low: int, high: int) -> int | None:
    for index in range(high - 1, low - 1, -1):
        if text[index].isspace():
            return index
    return None
