"""What one version of a dataset's index holds (counts, hashes, model; no document content): written by the
store beside the sealed parts, carried by the loaded index."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IndexManifest:
    version: int
    source_hash: str
    documents: int
    chunks: int
    dimensions: int
    model: str
    created: str  # ISO 8601, UTC
