"""What `verify` reports: the problems found in a nation's log, and where."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

ProblemKind = Literal[
    "unparsable",
    "altered",
    "removed",
    "reordered",
    "duplicated",
    "chain-broken",
    "truncated",
    "unknown-key",
    "undecryptable",
    "invalid-content",
    "wrong-nation",
]


class AuditProblem(BaseModel):
    """One thing wrong with the log, and where: segment file, line number (1-based) and seq."""

    model_config = ConfigDict(frozen=True)

    kind: ProblemKind
    segment: str | None = None
    line: int | None = None
    seq: int | None = None
    message: str


class VerifyReport(BaseModel):
    """What `verify` found; `ok` when the chain is whole and every record decrypts to valid content."""

    nation: str
    directory: str
    records: int = Field(description="Lines read from the segments.")
    last_seq: int = Field(alias="lastSeq")
    last_hash: str = Field(alias="lastHash")
    data_keys: int = Field(alias="dataKeys", description="Data keys the records use (unwrapped in one call).")
    problems: list[AuditProblem]
    notes: list[str] = Field(description="Facts that are not failures, e.g. a torn unacknowledged tail.")

    model_config = ConfigDict(populate_by_name=True)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.problems
