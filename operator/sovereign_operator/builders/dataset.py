"""Pure builders for a DataSet's ingestion: the ingest job's config and its Ray Jobs request, where the job is
submitted (the nation's Ray dashboard), and the DataSet's status from the job's outcome.

The job runs on the nation's own Ray cluster (Ray docs: "Ray Jobs REST API", `POST /api/jobs/`), so the
documents are read, embedded and encrypted inside the nation's boundary; the operator sees only counts,
hashes and versions.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sovereign.dataplane.sources import confined_source
from sovereign.domain.nations import (
    dataset_name,
    model_application_name,
    nation_folder,
    rayservice_name,
    served_model_name,
    tenant_namespace,
    vault_role_name,
)
from sovereign.serving_contract import AIR_GAP_ENV, INGEST_MODULE, IngestConfig, VaultSink
from sovereign.specs.dataset import DataSetSpec
from sovereign.specs.model_deployment import ModelDeploymentSpec
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.builders.conditions import Condition, status_is_ready, stored_condition
from sovereign_operator.builders.vault import vault_mounts_for_tenant

RAY_DASHBOARD_PORT = 8265  # KubeRay's head Service exposes the dashboard (and its job server) here
INGESTED = "Ingested"
READY = "Ready"
# Ready's reason while an ingested index waits for the nation's retriever and every gateway to serve it:
# the serving pass sets Ready once their Ray applications run the configuration that holds it.
PUBLISHING = "Publishing"


class EmbeddingUnusable(ValueError):
    """The DataSet's embedding ModelDeployment cannot embed it (absent, not task embed, stopped)."""


def build_vault_sink_for_nation(
    tenant_spec: TenantSpec, *, platform_vault_addr: str, token_file: str, vault_ca_cert: str | None = None
) -> VaultSink:
    """How the nation's ingest job and retriever log in to Vault: the Vault holding its key (its own,
    spec.vault, or the platform's) with its Kubernetes auth role and the serving ServiceAccount token,
    its certificate verified with `vault_ca_cert` (PEM: the platform's VAULT_CACERT or the nation's
    caBundle)."""
    own, mounts = tenant_spec.vault, vault_mounts_for_tenant(tenant_spec)
    return VaultSink(
        vault_addr=own.address if own is not None else platform_vault_addr,
        auth_mount=mounts.auth,
        role=vault_role_name(tenant_spec.nation),
        token_file=token_file,
        transit_mount=mounts.transit,
        ca_cert=vault_ca_cert,
    )


def embedding_application(nation: str, spec: DataSetSpec, embedder: ModelDeploymentSpec | None) -> str:
    """The Serve application that embeds the dataset (raises EmbeddingUnusable)."""
    wanted = spec.embedding.model_deployment
    if embedder is None:
        raise EmbeddingUnusable(
            f"the ModelDeployment {wanted!r} does not exist in {tenant_namespace(nation)}"
        )
    if embedder.task != "embed":
        raise EmbeddingUnusable(f"the ModelDeployment {wanted!r} has task {embedder.task!r}, not 'embed'")
    if embedder.replicas == 0:
        raise EmbeddingUnusable(f"the ModelDeployment {wanted!r} is stopped (replicas: 0)")
    return model_application_name(nation, embedder.model)


def build_ingest_config(
    nation: str,
    name: str,
    spec: DataSetSpec,
    embedder: ModelDeploymentSpec | None,
    *,
    store_root: str,
    source_root: str,
    vault: VaultSink,
    force: bool = False,
) -> IngestConfig:
    """The ingest job's config for the DataSet `name` of `nation`: its source as an absolute path under
    the nation's data root (`<source_root>/<nation>`; raises SourceOutsideDataRoot) and its embedder (raises
    EmbeddingUnusable)."""
    source = confined_source(source_root, nation, spec.source)
    application = embedding_application(nation, spec, embedder)
    assert embedder is not None
    return IngestConfig(
        dataset=name,
        nation=nation,
        source=source,
        data_root=source_root,
        markings=spec.markings.owned_by(nation),
        chunk_size=spec.embedding.chunk_size,
        chunk_overlap=spec.embedding.chunk_overlap,
        embedding_application=application,
        embedding_model=served_model_name(nation, embedder.model),
        store_root=store_root,
        vault=vault,
        force=force,
    )


def ingest_submission_id(nation: str, name: str, uid: str, generation: int, attempt: int) -> str:
    """A unique Ray job name per submission (Ray refuses a second job with the same submission_id). The
    object's uid is in it: a DataSet deleted and made again under its name starts at generation 1 with an
    empty status, and must not follow the job of the one before."""
    return f"ingest-{nation.lower()}-{name}-{uid[:8]}-g{generation}-{attempt}"


def build_ingest_job_request(
    config: IngestConfig,
    *,
    submission_id: str,
    python: str = "python",
    telemetry_env: Mapping[str, str] | None = None,
    entrypoint_resources: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The body of `POST /api/jobs/`: the entrypoint (the config as one shell-quoted JSON argument), the
    air-gap and telemetry environment, and metadata naming the dataset (Ray shows it in `ray job list`).
    `entrypoint_resources`: custom Ray resources the entrypoint asks for, so that it runs where the store
    root is (Ray docs: "Ray Jobs REST API", `entrypoint_resources`; kuberay: the head, see `JobTarget`)."""
    argument = shlex.quote(config.model_dump_json(by_alias=True))
    request: dict[str, Any] = {
        "entrypoint": f"{shlex.quote(python)} -m {INGEST_MODULE} --config {argument}",
        "submission_id": submission_id,
        "runtime_env": {"env_vars": {**AIR_GAP_ENV, **dict(sorted((telemetry_env or {}).items()))}},
        "metadata": {
            "sovereign.ai/dataset": dataset_name(config.nation, config.dataset),
            "sovereign.ai/nation": config.nation,
        },
    }
    if entrypoint_resources:
        request["entrypoint_resources"] = dict(sorted(entrypoint_resources.items()))
    return request


def kuberay_dashboard_url(nation: str) -> str:
    """The nation's Ray dashboard (job server) in its cluster: the head Service KubeRay makes for the
    RayService's cluster, `<rayservice>-head-svc` (KubeRay docs: "RayService", head service)."""
    return f"http://{rayservice_name(nation)}-head-svc.{tenant_namespace(nation)}.svc:{RAY_DASHBOARD_PORT}"


def token_file_for_nation(directory: str, nation: str) -> str:
    """local-ray: the nation's serving ServiceAccount token file, kept fresh outside the operator (as a
    kubelet keeps a pod's projected token)."""
    return str(Path(directory) / nation_folder(nation) / "token")


@dataclass(frozen=True)
class JobTarget:
    """Where and how a nation's ingest job runs. `ray_resources`: the custom Ray resources that place what
    reads or writes `store_root` (the ingest job's entrypoint, the retriever's replicas) where it is: on
    kuberay the head, where the nation's data volume is mounted; none on local-ray (one host)."""

    dashboard_url: str
    token: str | None
    store_root: str
    token_file: str
    python: str
    ray_resources: Mapping[str, float] = field(default_factory=dict)
    # The token file is on the operator's host (local-ray), so a job waits until it is written; kuberay:
    # in the nation's pods, projected by the kubelet.
    token_file_here: bool = False


# -- the job's outcome and the DataSet's status -------------------------------------------------------------


def ingest_result(logs: str) -> dict[str, Any] | None:
    """The job's final JSON line (`sovereign_serving.ingest`), or None when it printed none."""
    for line in reversed(logs.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                parsed = json.loads(line)
            except json.JSONDecodeError:
                return None
            return parsed if isinstance(parsed, dict) and "dataset" in parsed else None
    return None


@dataclass(frozen=True)
class Outcome:
    """What a finished ingest job tells the DataSet's status."""

    succeeded: bool
    result: Mapping[str, Any]  # the final line (or `{"error": ...}` made from Ray's message)
    finished_at: str  # RFC 3339


def job_outcome(details: Mapping[str, Any], logs: str, finished_at: str) -> Outcome:
    """A terminal job's outcome from its details (`GET /api/jobs/<id>`) and output."""
    result = ingest_result(logs)
    if details.get("status") == "SUCCEEDED" and result is not None and "error" not in result:
        return Outcome(True, result, finished_at)
    if result is None or "error" not in result:
        message = str(details.get("message") or f"the ingest job ended {details.get('status')}")
        result = {"error": message.strip().splitlines()[-1][:1000] if message.strip() else message}
    return Outcome(False, result, finished_at)


def status_after_job(previous: Mapping[str, Any], outcome: Outcome) -> dict[str, Any]:
    """The DataSet's status fields (conditions as Condition values) after a finished job.

    A first index is not Ready yet (`PUBLISHING`): the serving pass sets Ready once the retriever and every
    gateway serve it. A failure leaves the previous index serving: Ready stays as it was when a version
    exists, Ingested is False with the job's error (`file:line: reason`) as its message."""
    if outcome.succeeded:
        result = outcome.result
        skipped = bool(result.get("skipped"))
        version = result.get("version")
        return {
            "documents": result.get("documents"),
            "chunks": result.get("chunks"),
            "sourceHash": result.get("sourceHash"),
            "indexVersion": version,
            "lastIngestionTime": previous.get("lastIngestionTime") if skipped else outcome.finished_at,
            "message": "",
            "conditions": [
                Condition(READY, True, "IndexServing", f"index version {version}")
                if status_is_ready(previous)
                else _publishing(version),
                Condition(INGESTED, True, "SourceUnchanged" if skipped else "Ingested", ""),
            ],
        }
    error = str(outcome.result.get("error"))
    has_index = previous.get("indexVersion") is not None
    if status_is_ready(previous):
        ready = Condition(
            READY, True, "IndexServing", f"index version {previous.get('indexVersion')} (previous)"
        )
    elif has_index:
        ready = _publishing(previous.get("indexVersion"))
    else:
        ready = Condition(READY, False, "IngestionFailed", error)
    return {"message": error, "conditions": [ready, Condition(INGESTED, False, "IngestionFailed", error)]}


def _publishing(version: object) -> Condition:
    message = f"index version {version} is ingested: waiting for its retriever and every gateway to serve it"
    return Condition(READY, False, PUBLISHING, message)


def status_published(previous: Mapping[str, Any]) -> list[Condition] | None:
    """The conditions once the serving pass saw the nation's retriever and every gateway run the
    configuration that serves the DataSet's index: Ready, the others as they were. None: nothing to change
    (Ready already, or no index)."""
    if status_is_ready(previous) or previous.get("indexVersion") is None:
        return None
    others = [stored_condition(c) for c in previous.get("conditions") or [] if c.get("type") != READY]
    ready = Condition(READY, True, "IndexServing", f"index version {previous.get('indexVersion')}")
    return [ready, *others]


def status_ingesting(previous: Mapping[str, Any], submission_id: str) -> list[Condition]:
    """The conditions while a job runs: Ready as it was (an index serves, one is being published, or none
    yet), Ingested Unknown."""
    ready = next((c for c in previous.get("conditions") or [] if c.get("type") == READY), None)
    if ready is not None and ready.get("status") == "True":
        current = stored_condition(ready)
    elif previous.get("indexVersion") is not None:
        current = _publishing(previous.get("indexVersion"))
    else:
        current = Condition(READY, False, "Ingesting", "no index yet")
    return [
        current,
        Condition(INGESTED, None, "Ingesting", f"Ray job {submission_id}"),
    ]


def status_not_ingested(previous: Mapping[str, Any], reason: str, message: str) -> dict[str, Any]:
    """The status when no job can run (no runtime, Tenant not Ready, embedding model unusable): an existing
    index keeps serving where a retriever can serve it (Ready as it was, or still being published)."""
    has_index = previous.get("indexVersion") is not None and reason not in ("NotServed", "TenantNotReady")
    if has_index and status_is_ready(previous):
        ready = Condition(READY, True, "IndexServing", "previous index")
    elif has_index:
        ready = _publishing(previous.get("indexVersion"))
    else:
        ready = Condition(READY, False, reason, message)
    return {"message": message, "conditions": [ready, Condition(INGESTED, False, reason, message)]}
