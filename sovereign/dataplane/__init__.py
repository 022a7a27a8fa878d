"""The data plane's library: a nation's documents read and chunked, its index encrypted at rest under the
nation's transit key, and retrieval filtered by each chunk's markings before ranking.

Pure apart from the store, which reads and writes files and unwraps data keys through hvac. The Ray side
(ingest job, retriever application) and the gateway build on these names only.
"""

from sovereign.dataplane.documents import (
    Chunk,
    Document,
    DocumentRejected,
    chunk_documents,
    read_documents,
    source_hash,
)
from sovereign.dataplane.manifest import IndexManifest
from sovereign.dataplane.retrieval import LoadedIndex, allowed_chunks
from sovereign.dataplane.store import DatasetNotIngested, DatasetStore, DatasetUnreadable

__all__ = [
    "Chunk",
    "DatasetNotIngested",
    "DatasetStore",
    "DatasetUnreadable",
    "Document",
    "DocumentRejected",
    "IndexManifest",
    "LoadedIndex",
    "allowed_chunks",
    "chunk_documents",
    "read_documents",
    "source_hash",
]
