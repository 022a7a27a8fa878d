"""The DataSet: documents a nation owns, in its tenant namespace. Addressed as `<nation>/<name>`.

Its markings are checked at admission and its datasets appear in the access matrix; the operator ingests it
(reconcile/dataset.py).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from sovereign.domain.markings import ResourceMarkings
from sovereign.specs.resource import CustomResourceDefinitionInfo, PrinterColumn, SpecModel


class Embedding(SpecModel):
    """How the dataset is embedded: by a ModelDeployment (task embed) of the same nation."""

    model_deployment: str = Field(min_length=1, description="Name of the embedding ModelDeployment.")
    chunk_size: int = Field(800, ge=16, description="Characters per chunk.")
    chunk_overlap: int = Field(100, ge=0, description="Characters shared by neighbouring chunks.")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> Embedding:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunkOverlap must be smaller than chunkSize")
        return self


class DataSetSpec(SpecModel):
    """A nation's documents, released as their markings say."""

    source: str = Field(
        min_length=1,
        description="Path of the documents (txt, md, jsonl): relative to the nation's data root "
        "(`<root>/<nation lowercase>/`, root: the operator's SOVEREIGN_DATASET_SOURCE_ROOT, default "
        "/var/lib/sovereign/sources, on the nation's data volume), or absolute under it. A source outside "
        "the root is refused at admission, and the ingest job refuses one whose real path (symlinks "
        "followed, inside the tree too) leads outside it.",
    )
    markings: ResourceMarkings = Field(description="Classification, releasability, compartments.")
    embedding: Embedding = Field(description="The embedding model and chunking.")


DATASET_CRD = CustomResourceDefinitionInfo(
    kind="DataSet",
    plural="datasets",
    singular="dataset",
    scope="Namespaced",
    spec_model=DataSetSpec,
    description="A nation's documents, encrypted under its key and retrieved only as policy allows.",
    short_names=("ds",),
    printer_columns=(
        PrinterColumn("Classification", ".spec.markings.classification"),
        PrinterColumn("Documents", ".status.documents", type="integer"),
        PrinterColumn("Chunks", ".status.chunks", type="integer"),
        PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status'),
    ),
)
