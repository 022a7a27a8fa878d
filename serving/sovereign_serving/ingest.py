"""`python -m sovereign_serving.ingest --config '<IngestConfig JSON>'`: one dataset's ingestion, as a Ray job.

The operator submits it to the nation's own Ray cluster through the dashboard's job server (Ray docs: "Ray
Jobs REST API"), so documents, chunks and vectors never leave the nation's boundary. The job reads the
source (only under the nation's data root, real paths included: `sovereign.dataplane.sources`), checks each
document's markings against the dataset's (a looser one fails the job, naming file and line), chunks, embeds
through the nation's embedding application (a Serve handle, Ray docs: "Deploy Multiple Applications",
`serve.get_app_handle`) and writes a new encrypted index version (the store logs in to Vault as the
nation). A source whose hash equals the current index's is skipped.

Its one contract with the operator is the LAST line of its output: a JSON object, either
`{"dataset", "version", "documents", "chunks", "sourceHash", "skipped"}` or `{"dataset", "error"}`, where the
error is `<file>:<line>: <reason>` or `<ExceptionType>: <reason>`. No document text is ever printed: the job's
log is readable by whoever reads the Ray dashboard.

It attaches only to the cluster it was submitted to: the address Ray's job supervisor gives the entrypoint in
RAY_ADDRESS (`host:port` of that cluster's GCS). Without one, or with `auto` or `local`, it refuses before
reading a document (`NoSubmittedCluster`), since `ray.init` would then attach to whichever cluster the file
`ray_current_cluster` in Ray's shared temporary directory names, or start a new one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import hvac
import numpy as np

from sovereign.clients.vault import classify_vault_error
from sovereign.dataplane.documents import DocumentRejected, chunk_documents, read_documents, source_hash
from sovereign.dataplane.sources import (
    SOURCE_FIELD,
    SourceOutsideDataRoot,
    check_confined_entry,
    resolve_confined_source,
)
from sovereign.dataplane.store import DatasetStore
from sovereign.domain.nations import dataset_name
from sovereign.serving_contract import IngestConfig
from sovereign.telemetry import configure_tracing, flush_tracing, span
from sovereign_serving.nation_vault import NationVault

IN_FLIGHT = 8  # embedding calls outstanding at once: keeps every replica of the embedder busy
RAY_ADDRESS = "RAY_ADDRESS"  # set by Ray's job supervisor for the entrypoint (Ray docs: "Ray Jobs")
NOT_AN_ADDRESS = ("", "auto", "local")  # what makes `ray.init` pick a cluster itself


class NoSubmittedCluster(RuntimeError):
    """The job has no explicit address of the Ray cluster it was submitted to."""


def submitted_cluster_address(environ: Mapping[str, str] = os.environ) -> str:
    """The cluster the job was submitted to, `host:port` from RAY_ADDRESS (raises NoSubmittedCluster when
    it is unset, `auto`, `local` or not `host:port`)."""
    address = environ.get(RAY_ADDRESS, "").strip()
    host, _, port = address.rpartition(":")
    if address.lower() in NOT_AN_ADDRESS or not host or "/" in address or not port.isdigit():
        shown = "unset" if RAY_ADDRESS not in environ else repr(address[:128])
        raise NoSubmittedCluster(
            f"{RAY_ADDRESS} is {shown}: the ingest job runs only as a Ray job, attached to the cluster it "
            "was submitted to (host:port); it never lets Ray pick a cluster from its temporary directory"
        )
    return address


def _attach_to_submitted_cluster() -> None:
    import ray

    if not ray.is_initialized():  # a caller that attached this process itself (the benchmark) chose its own
        ray.init(address=submitted_cluster_address())


def embed_texts(application: str, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """Vectors of `texts` (float32, one row each) from the embedding application's `embed` method."""
    from ray import serve

    _attach_to_submitted_cluster()
    handle = serve.get_app_handle(application)
    batches = [list(texts[start : start + batch_size]) for start in range(0, len(texts), batch_size)]
    rows: list[list[float]] = []
    pending: list[Any] = []
    for batch in batches:
        pending.append(handle.embed.remote({"input": batch}))
        if len(pending) >= IN_FLIGHT:
            rows += _vectors(pending.pop(0).result())
    for response in pending:
        rows += _vectors(response.result())
    if len(rows) != len(texts):
        raise RuntimeError(f"{application} returned {len(rows)} vectors for {len(texts)} chunks")
    return np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)


def _vectors(answer: dict[str, Any]) -> list[list[float]]:
    return [item["embedding"] for item in sorted(answer["data"], key=lambda item: item["index"])]


def ingest(config: IngestConfig, vault: Callable[[], hvac.Client] | None = None) -> dict[str, Any]:
    """Run one ingestion; returns the final line's object (raises on failure). `vault`: where the Vault
    client comes from (default: a Kubernetes auth login as the nation, `config.vault`; the benchmark passes
    a token's client)."""
    name = dataset_name(config.nation, config.dataset)
    source = confined_source(config)
    store = DatasetStore(Path(config.store_root), config.nation, config.dataset)
    with span("ingest dataset", attributes={"sovereign.dataset": name}) as current:
        digest = source_hash(source)
        manifest = store.current()
        if (
            manifest is not None
            and not config.force
            and manifest.source_hash == digest
            and manifest.model == config.embedding_model
        ):
            current.set_attribute("sovereign.ingest.skipped", True)
            return _result(name, manifest, skipped=True)
        documents = read_documents(source, name, config.markings)
        chunks = chunk_documents(documents, config.chunk_size, config.chunk_overlap)
        current.set_attribute("sovereign.dataset.documents", len(documents))
        current.set_attribute("sovereign.dataset.chunks", len(chunks))
        with span("ingest embed", attributes={"sovereign.dataset.chunks": len(chunks)}):
            vectors = embed_texts(config.embedding_application, [c.text for c in chunks], config.batch_size)
        client = (vault or NationVault(config.vault).client)()
        manifest = store.write_index(
            chunks, vectors, client, config.vault.transit_mount, digest, config.embedding_model
        )
        current.set_attribute("sovereign.dataset.version", str(manifest.version))
        return _result(name, manifest, skipped=False)


def confined_source(config: IngestConfig) -> Path:
    """The source's real path, checked as the nation reads it: it and every symlink inside it must resolve
    under the nation's data root, and no file may be a hard link (raises SourceOutsideDataRoot). Checked
    when the job starts."""
    source = resolve_confined_source(config.data_root, config.nation, config.source)
    entries = source.rglob("*") if source.is_dir() else [source]
    for entry in entries:
        shown = entry.relative_to(source).as_posix() if entry != source else entry.name
        check_confined_entry(config.data_root, config.nation, entry, shown)
    return source


def _result(name: str, manifest: Any, *, skipped: bool) -> dict[str, Any]:
    return {
        "dataset": name,
        "version": manifest.version,
        "documents": manifest.documents,
        "chunks": manifest.chunks,
        "sourceHash": manifest.source_hash,
        "skipped": skipped,
    }


def error_line(name: str, error: BaseException) -> dict[str, str]:
    """The failure as the operator shows it in the DataSet's status: file and line for a rejected document,
    the exception's type and message otherwise (messages of this job's code never hold document text)."""
    if isinstance(error, DocumentRejected):
        line = "" if error.line is None else f":{error.line}"
        return {"dataset": name, "error": f"{error.path}{line}: {error.reason}"}
    if isinstance(error, SourceOutsideDataRoot):
        return {"dataset": name, "error": f"{SOURCE_FIELD}: {error}"[:1000]}
    outage = classify_vault_error(error)  # sealed or unreachable: say so, and what to do
    if outage is not None:
        return {"dataset": name, "error": f"{type(outage).__name__}: {outage}"[:1000]}
    return {"dataset": name, "error": f"{type(error).__name__}: {error}"[:1000]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sovereign_serving.ingest")
    parser.add_argument("--config", required=True, help="The IngestConfig as JSON.")
    args = parser.parse_args(argv)
    config = IngestConfig.model_validate_json(args.config)
    configure_tracing("sovereign-ingest", **{"sovereign.tenant": config.nation})
    name = dataset_name(config.nation, config.dataset)
    try:
        import ray

        if not ray.is_initialized():
            submitted_cluster_address()  # refused before a document is read
        result: dict[str, Any] = ingest(config)
        code = 0
    except Exception as error:  # noqa: BLE001 — reported as the job's last line, and a failed job
        result, code = error_line(name, error), 1
    finally:
        flush_tracing()
    print(json.dumps(result, sort_keys=True), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
