"""One DataSet's ingestion, level-based: submit the ingest job when due, follow it, write the status.

Due: the spec's generation differs from the one last submitted (a spec change re-embeds even an unchanged
source: `force`), after a failure (backoff doubling from FAILURE_BACKOFF_SECONDS up to the resync period),
and every `dataset_resync_seconds` (the job itself skips an unchanged source, so a resync is cheap). The job
runs on the nation's own Ray cluster (runtime local-ray: the devstack's; kuberay: the nation's RayService
head, where its data volume is mounted, `builders/dataset.py`); runtime none ingests nothing and says so.
A failed job leaves the previous index serving. The status keeps the running job's submission id, so an
operator restarted mid-job (or a new leader) follows the same job instead of starting another; the job's
name comes from the status alone, so one killed between submitting and writing the status finds its job too.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
from kubernetes.dynamic import DynamicClient
from pydantic import ValidationError

from sovereign.clients import kubernetes as kube
from sovereign.clients import ray
from sovereign.dataplane.sources import SOURCE_FIELD, SourceOutsideDataRoot
from sovereign.domain.nations import tenant_namespace
from sovereign.specs.dataset import DataSetSpec
from sovereign.specs.model_deployment import ModelDeploymentSpec
from sovereign.specs.tenant import TenantSpec
from sovereign_operator import failpoints
from sovereign_operator.builders.conditions import (
    merge_conditions,
    now_rfc3339,
    status_changes,
    status_is_ready,
)
from sovereign_operator.builders.dataset import (
    EmbeddingUnusable,
    JobTarget,
    Outcome,
    build_ingest_config,
    build_ingest_job_request,
    build_vault_sink_for_nation,
    ingest_submission_id,
    job_outcome,
    status_after_job,
    status_ingesting,
    status_not_ingested,
)
from sovereign_operator.config import OperatorConfig
from sovereign_operator.constants import GROUP, VERSION
from sovereign_operator.reconcile.vault_access import vault_ca_for_tenant
from sovereign_operator.runtimes import job_target

log = logging.getLogger(__name__)
API_VERSION = f"{GROUP}/{VERSION}"
FAILURE_BACKOFF_SECONDS = 5.0


def _ready(body: dict[str, Any] | None) -> bool:
    return status_is_ready((body or {}).get("status") or {})


def _epoch(rfc3339: str | None) -> float | None:
    if not rfc3339:
        return None
    return datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def submission_due(status: dict[str, Any], generation: int, resync_seconds: float, now: float) -> bool | None:
    """None: not due; else whether it must re-ingest an unchanged source (`force`)."""
    observed = status.get("observedGeneration")
    if observed != generation:
        return observed is not None
    last = _epoch(status.get("lastAttemptTime")) or 0.0
    failures = int(status.get("failures") or 0)
    wait = min(FAILURE_BACKOFF_SECONDS * 2 ** (failures - 1), resync_seconds) if failures else resync_seconds
    # A failed forced job (a spec change) is retried forced: the source alone may not have changed.
    return bool(failures and status.get("retryForced")) if now >= last + wait else None


def reconcile_dataset(
    config: OperatorConfig, dynamic: DynamicClient, body: dict[str, Any], now: float | None = None
) -> dict[str, Any]:
    """One pass for one DataSet; returns the status fields to patch (empty: nothing changed)."""
    now = time.time() if now is None else now
    metadata = body["metadata"]
    name, namespace, generation = (
        metadata["name"],
        metadata["namespace"],
        int(metadata.get("generation") or 1),
    )
    live = dict(body.get("status") or {})
    identity = (name, namespace, str(metadata.get("uid") or ""))
    wanted = _pass(config, dynamic, identity, generation, dict(body.get("spec") or {}), live, now)
    if "conditions" in wanted:
        wanted["conditions"] = merge_conditions(live.get("conditions"), wanted["conditions"], generation)
    return status_changes(live, wanted)


def _pass(
    config: OperatorConfig,
    dynamic: DynamicClient,
    identity: tuple[str, str, str],  # name, namespace, uid
    generation: int,
    raw_spec: dict[str, Any],
    live: dict[str, Any],
    now: float,
) -> dict[str, Any]:
    name, namespace, uid = identity
    tenants = kube.list_objects(dynamic, API_VERSION, "Tenant") or []
    tenant = next((t for t in tenants if tenant_namespace(str(t["spec"].get("nation"))) == namespace), None)
    if tenant is None or not _ready(tenant):
        return status_not_ingested(live, "TenantNotReady", f"the Tenant of {namespace} is not Ready")
    tenant_spec = TenantSpec.model_validate(tenant["spec"])
    nation = tenant_spec.nation
    target = job_target(config, nation)
    if isinstance(target, str):
        return status_not_ingested(live, "NotServed", target)
    running = live.get("job") or {}
    if running.get("submissionId"):
        return _follow(target, live, running, now)
    try:
        spec = DataSetSpec.model_validate(raw_spec)
    except ValidationError as error:
        return status_not_ingested(live, "InvalidSpec", str(error.errors()[0]["msg"]))
    force = submission_due(live, generation, config.dataset_resync_seconds, now)
    if force is None:
        return {}
    embedder_body = _embedder(dynamic, namespace, spec.embedding.model_deployment)
    embedder = ModelDeploymentSpec.model_validate(embedder_body["spec"]) if embedder_body else None
    vault = build_vault_sink_for_nation(
        tenant_spec,
        platform_vault_addr=config.vault_addr,
        token_file=target.token_file,
        vault_ca_cert=vault_ca_for_tenant(config, dynamic.client, tenant_spec),
    )
    try:
        ingest = build_ingest_config(
            nation,
            name,
            spec,
            embedder,
            store_root=target.store_root,
            source_root=config.dataset_source_root,
            vault=vault,
            force=force,
        )
    except EmbeddingUnusable as error:
        return status_not_ingested(live, "EmbeddingUnusable", str(error))
    except SourceOutsideDataRoot as error:  # admitted before the rule, or past the webhook: never read
        return status_not_ingested(live, "SourceOutsideDataRoot", f"{SOURCE_FIELD}: {error}")
    if not _ready(embedder_body):
        message = f"the embedding model {spec.embedding.model_deployment!r} is not Ready yet"
        return status_not_ingested(live, "EmbeddingNotReady", message)
    if target.token_file_here and not _exists(target.token_file):
        raise kopf.TemporaryError(f"{nation}'s ServiceAccount token file is not written yet", delay=2)
    # Named from the status alone (each submission moves lastAttemptTime, each failure `failures`): an
    # operator killed after submitting and before writing the status submits the same name again on restart,
    # which Ray refuses, and follows that job instead of running a second one beside it.
    attempt = int(_epoch(live.get("lastAttemptTime")) or 0) * 1000 + int(live.get("failures") or 0) % 1000
    submission_id = ingest_submission_id(nation, name, uid, generation, attempt)
    request = build_ingest_job_request(
        ingest,
        submission_id=submission_id,
        python=target.python,
        telemetry_env=config.telemetry_env,
        entrypoint_resources=target.ray_resources,
    )
    failpoints.reach("dataset:before-submit")
    try:
        ray.submit_job(
            target.dashboard_url,
            request["entrypoint"],
            submission_id=submission_id,
            runtime_env=request["runtime_env"],
            metadata=request["metadata"],
            entrypoint_resources=request.get("entrypoint_resources"),
            token=target.token,
        )
        log.info(f"ingest job {submission_id} submitted for {namespace}/{name}")
    except ray.RayServeError as error:
        if "already exists" not in error.message:  # Ray 2.60 answers 500 with a ValueError for it
            raise
        log.info(f"ingest job {submission_id} for {namespace}/{name} was submitted before: following it")
    failpoints.reach("dataset:after-submit")
    return {
        "job": {"submissionId": submission_id, "generation": generation, "force": force},
        "observedGeneration": generation,
        "lastAttemptTime": now_rfc3339(),
        "conditions": status_ingesting(live, submission_id),
    }


def _follow(target: JobTarget, live: dict[str, Any], running: dict[str, Any], now: float) -> dict[str, Any]:
    """The running job's progress: nothing while it runs; the status from its outcome once it ended."""
    submission_id = str(running["submissionId"])
    details = ray.job_status(target.dashboard_url, submission_id, token=target.token)
    finished = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if details is None:  # Ray lost it (the cluster restarted): count it as failed, try again after backoff
        outcome = Outcome(False, {"error": f"the ingest job {submission_id} is unknown to Ray"}, finished)
    elif details.get("status") not in ray.JOB_TERMINAL_STATUSES:
        return {}
    else:
        logs = ray.job_logs(target.dashboard_url, submission_id, token=target.token)
        outcome = job_outcome(details, logs, finished)
    status = status_after_job(live, outcome)
    status["job"] = None  # merge patch: removes the field
    status["failures"] = 0 if outcome.succeeded else int(live.get("failures") or 0) + 1
    status["retryForced"] = None if outcome.succeeded else bool(running.get("force"))
    return status


def _embedder(dynamic: DynamicClient, namespace: str, name: str) -> dict[str, Any] | None:
    models = kube.list_objects(dynamic, API_VERSION, "ModelDeployment", namespace) or []
    return next((m for m in models if m["metadata"]["name"] == name), None)


def _exists(path: str) -> bool:
    return Path(path).exists()
