"""Grounding answers in datasets: the `sovereign` extension of a body, the search request, the
prompt built from retrieved chunks, the answer's sources and marking. Pure: no Ray, no HTTP.

A chat or completion body may carry `"sovereign": {"datasets": ["est/field-reports"], "top_k": 5}` (the
openai client's `extra_body`). The chunks go into the prompt as one system message (chat) or before the
prompt (completion), each headed by its chunk id, so the model can cite them; the answer lists them as
`"sovereign": {"sources": [{"dataset", "documentId", "chunkId"}]}` and is marked with the least upper bound
of the model's and the chunks' markings.

Streaming with datasets is refused (400): the OpenAI stream has no place for the sources, and a client
reading only the standard chunk fields would show a grounded answer without the sources its marking rests on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from sovereign.domain.markings import AnswerMarking, Markings

from ._errors import bad_request
from ._routes import Operation

EXTENSION = "sovereign"
MAX_DATASETS = 8
MAX_TOP_K = 50
DEFAULT_TOP_K = 5
MAX_QUERY_CHARS = 8192
SOURCES_PREAMBLE = (
    "Use the following sources to answer. Each source starts with its id in brackets; cite the ids you use. "
    "If the sources do not answer the question, say so."
)

# `<owner nation lowercase>/<DataSet name>`: a Kubernetes object name after the nation.
DatasetName = Annotated[
    str, StringConstraints(strict=True, max_length=256, pattern=r"^[a-z]{3}/[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")
]
Datasets = Annotated[list[DatasetName], Field(min_length=1, max_length=MAX_DATASETS)]
TopK = Annotated[int, Field(ge=1, le=MAX_TOP_K, strict=True)]


class Grounding(BaseModel):
    """The `sovereign` extension of a chat or completion body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    datasets: Datasets = Field(description="Datasets to ground the answer in, `<nation>/<name>`.")
    top_k: TopK = Field(
        DEFAULT_TOP_K, description="How many chunks, over all the datasets, go into the prompt."
    )


class SearchRequest(BaseModel):
    """The body of `POST /v1/sovereign/search` (and of its federation twin)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    datasets: Datasets = Field(description="Datasets to search, `<nation>/<name>`.")
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, strict=True, description="What to look for.")
    top_k: TopK = Field(DEFAULT_TOP_K, description="How many chunks to return, over all the datasets.")


M = TypeVar("M", bound=BaseModel)


def _validated(model: type[M], data: Any, prefix: str) -> M:
    """The model, or a 400 naming the first wrong field (never echoing its value)."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_input=False, include_url=False)[0]
        field = ".".join(
            [prefix, *(str(p) for p in first["loc"])] if prefix else [str(p) for p in first["loc"]]
        )
        message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        raise bad_request(
            f"`{field or prefix or 'body'}`: {message}", param=field or prefix or None
        ) from None


def _unique(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))


def grounding_of(body: Mapping[str, Any]) -> tuple[dict[str, Any], Grounding | None]:
    """The body without the extension (what the model gets), and the extension if the body has one."""
    rest = {key: value for key, value in body.items() if key != EXTENSION}
    given = body.get(EXTENSION)
    if given is None:
        return rest, None
    if not isinstance(given, dict):
        raise bad_request(f"`{EXTENSION}` must be an object", param=EXTENSION)
    grounding = _validated(Grounding, given, EXTENSION)
    return rest, grounding.model_copy(update={"datasets": _unique(grounding.datasets)})


def search_request(body: Mapping[str, Any]) -> SearchRequest:
    request = _validated(SearchRequest, body, "")
    return request.model_copy(update={"datasets": _unique(request.datasets)})


def query_of(body: Mapping[str, Any], operation: Operation) -> str:
    """What to search for: the last user message (chat) or the prompt (completion)."""
    if operation == Operation.COMPLETION:
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise bad_request("with datasets, `prompt` must be one non-empty string", param="prompt")
        return prompt[-MAX_QUERY_CHARS:]
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            text = _text_of(message.get("content"))
            if text.strip():
                return text[-MAX_QUERY_CHARS:]
    raise bad_request("with datasets, a user message with text is required", param="messages")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only the text ones are searched for
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    return ""


@dataclass(frozen=True)
class Retrieved:
    """One chunk a retriever returned for the principal, with its own markings (owner included)."""

    dataset: str
    document_id: str
    chunk_id: str
    text: str
    score: float
    markings: Markings

    def source(self) -> dict[str, str]:
        return {"dataset": self.dataset, "documentId": self.document_id, "chunkId": self.chunk_id}

    def result(self, with_markings: bool = False) -> dict[str, Any]:
        found: dict[str, Any] = {**self.source(), "text": self.text, "score": self.score}
        if with_markings:  # the federation route: the calling gateway marks its answer with them
            found["markings"] = self.markings.model_dump(mode="json", by_alias=True)
        return found


class _Chunk(BaseModel):
    """A chunk as a retriever (or an owner's federation route) returns it; extra fields are ignored."""

    model_config = ConfigDict(populate_by_name=True)

    document_id: str = Field(alias="documentId")
    chunk_id: str = Field(alias="chunkId")
    text: str
    score: float
    markings: Markings


def chunks_of(dataset: str, found: Sequence[Any]) -> list[Retrieved]:
    """The retriever's chunks, validated (a malformed one raises ValidationError: the retrieval failed)."""
    chunks = [_Chunk.model_validate(item) for item in found]
    return [Retrieved(dataset, c.document_id, c.chunk_id, c.text, c.score, c.markings) for c in chunks]


def releasable_to_model(
    chunks: Sequence[Retrieved], model_owner: str, members: frozenset[str]
) -> list[Retrieved]:
    """Only the chunks the model's owner may receive: a prompt is read by the nation that runs the model
    (its replicas, its cluster on kuberay), so a chunk not releasable to that nation never goes into it, even
    when the user may read it (`members`: the alliance's nations, for chunks released to NATO)."""
    return [chunk for chunk in chunks if model_owner in chunk.markings.releasable_set(members)]


def best(chunks: Sequence[Retrieved], top_k: int) -> list[Retrieved]:
    """The top_k chunks over every dataset, best score first (ties: the order the datasets were named)."""
    return sorted(chunks, key=lambda chunk: -chunk.score)[:top_k]


def grounded(body: Mapping[str, Any], operation: Operation, chunks: Sequence[Retrieved]) -> dict[str, Any]:
    """The body the model gets: the chunks as context before the user's own messages (or prompt)."""
    if not chunks:  # nothing the principal may read matched: the model answers ungrounded
        return dict(body)
    sources = "\n\n".join(f"[{chunk.chunk_id}] ({chunk.dataset})\n{chunk.text}" for chunk in chunks)
    context = f"{SOURCES_PREAMBLE}\n\n{sources}"
    if operation == Operation.COMPLETION:
        return {**body, "prompt": f"{context}\n\n{body['prompt']}"}
    return {**body, "messages": [{"role": "system", "content": context}, *body["messages"]]}


def with_sources(answer: Any, chunks: Sequence[Retrieved]) -> Any:
    if not isinstance(answer, dict):
        return answer
    return {**answer, EXTENSION: {"sources": [chunk.source() for chunk in chunks]}}


def search_answer(
    chunks: Sequence[Retrieved], marking: AnswerMarking, with_markings: bool = False
) -> dict[str, Any]:
    return {
        "results": [chunk.result(with_markings) for chunk in chunks],
        "marking": marking.model_dump(mode="json", by_alias=True),
    }
