"""The DataSet's builders, as data: one fixture DataSet (EST's field reports, embedded by `est/embedder`), a
table of cases that each change one thing; the ingest job request, the nation's dashboard, the status after a
job, and the retriever application (validated by Ray Serve's own `ServeDeploySchema`)."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest
from ray.serve.schema import ServeDeploySchema
from sovereign_operator.builders.dataset import (
    EmbeddingUnusable,
    JobTarget,
    Outcome,
    build_ingest_config,
    build_ingest_job_request,
    build_vault_sink_for_nation,
    ingest_result,
    ingest_submission_id,
    job_outcome,
    kuberay_dashboard_url,
    status_after_job,
    status_ingesting,
    status_not_ingested,
    status_published,
)
from sovereign_operator.builders.rayservice import DATASET_DIR
from sovereign_operator.builders.retriever_application import (
    build_retriever_application,
    retriever_datasets_for_nation,
)
from sovereign_operator.builders.serve_config import build_serve_deploy_config
from sovereign_operator.config import OperatorConfig
from sovereign_operator.reconcile.dataset import submission_due
from sovereign_operator.runtimes import job_target

from sovereign.dataplane.sources import SourceOutsideDataRoot
from sovereign.serving_contract import AIR_GAP_ENV, IngestConfig, RetrieverConfig
from sovereign.specs.dataset import DataSetSpec
from sovereign.specs.model_deployment import ModelDeploymentSpec
from sovereign.specs.tenant import TenantSpec

SPEC: dict[str, Any] = {
    "source": "field-reports",
    "markings": {"classification": "NATO RESTRICTED", "releasableTo": ["LVA"]},
    "embedding": {"modelDeployment": "est-embedder", "chunkSize": 400, "chunkOverlap": 50},
}
EMBEDDER: dict[str, Any] = {
    "model": "embedder",
    "source": "/models/minilm",
    "sha256": {"model.safetensors": "ab" * 32},
    "task": "embed",
    "resources": {"cpu": "1", "memory": "1Gi"},
    "replicas": 1,
    "maxTokens": 256,
    "markings": {"classification": "NATO UNCLASSIFIED"},
}
TENANT = TenantSpec.model_validate({"nation": "EST", "displayName": "Estonia", "clearance": "NATO SECRET"})
VAULT = build_vault_sink_for_nation(
    TENANT, platform_vault_addr="http://vault:8200", token_file="/t/est/token"
)
BUNDLE = {"version": "v1", "schema": "{}", "base": "permit(principal, action, resource);"}


def config(spec: dict[str, Any] | None = None, embedder: dict[str, Any] | None = EMBEDDER) -> IngestConfig:
    return build_ingest_config(
        "EST",
        "field-reports",
        DataSetSpec.model_validate(spec or SPEC),
        None if embedder is None else ModelDeploymentSpec.model_validate(embedder),
        store_root="/state/datasets",
        source_root="/state/sources",
        vault=VAULT,
    )


def test_the_ingest_config_names_the_nations_embedder_and_marks_the_owner() -> None:
    built = config().model_dump(mode="json", by_alias=True)
    assert built == {
        "dataset": "field-reports",
        "nation": "EST",
        "source": "/state/sources/est/field-reports",  # relative to EST's data root, made absolute
        "dataRoot": "/state/sources",
        "markings": {
            "classification": "NATO RESTRICTED",
            "releasableTo": ["LVA"],
            "compartments": [],
            "deniedNations": [],
            "owner": "EST",
        },
        "chunkSize": 400,
        "chunkOverlap": 50,
        "embeddingApplication": "est-embedder",
        "embeddingModel": "est/embedder",
        "storeRoot": "/state/datasets",
        "vault": {
            "vaultAddr": "http://vault:8200",
            "authMount": "kubernetes",
            "role": "tenant-est",
            "tokenFile": "/t/est/token",
            "transitMount": "transit",
            "caCert": None,
        },
        "batchSize": 64,
        "force": False,
    }


@pytest.mark.parametrize(
    ("embedder", "reason"),
    [
        pytest.param(None, "does not exist in tenant-est", id="missing"),
        pytest.param({**EMBEDDER, "task": "generate"}, "not 'embed'", id="not-an-embedder"),
        pytest.param({**EMBEDDER, "replicas": 0}, "stopped", id="stopped"),
    ],
)
def test_an_unusable_embedder_is_refused(embedder: dict[str, Any] | None, reason: str) -> None:
    with pytest.raises(EmbeddingUnusable, match=reason):
        config(embedder=embedder)


def test_a_source_outside_the_nations_data_root_is_never_given_to_a_job() -> None:
    with pytest.raises(SourceOutsideDataRoot, match="outside EST's data root /state/sources/est"):
        config({**SPEC, "source": "../fra/intel-summaries"})


def test_the_job_request_quotes_the_config_as_one_argument() -> None:
    request = build_ingest_job_request(
        config(),
        submission_id="ingest-est-field-reports-g1-7",
        python="/venv/bin/python",
        telemetry_env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318"},
    )
    words = shlex.split(request["entrypoint"])
    assert words[:4] == ["/venv/bin/python", "-m", "sovereign_serving.ingest", "--config"]
    assert IngestConfig.model_validate_json(words[4]) == config()
    assert request["submission_id"] == "ingest-est-field-reports-g1-7"
    assert request["runtime_env"] == {
        "env_vars": {**AIR_GAP_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318"}
    }
    assert request["metadata"] == {"sovereign.ai/dataset": "est/field-reports", "sovereign.ai/nation": "EST"}
    assert "entrypoint_resources" not in request  # local-ray: one host, the job may run anywhere


def test_a_dataset_made_again_under_its_name_never_reuses_a_job_name() -> None:
    # Deleted and made again: generation 1 and an empty status again, a new uid. Ray refuses a second job
    # under a name it has seen, and the operator would follow the old job's outcome.
    first = ingest_submission_id("EST", "field-reports", "3f2a9c1e-0000-4000-8000-000000000001", 1, 0)
    again = ingest_submission_id("EST", "field-reports", "b71d04aa-0000-4000-8000-000000000002", 1, 0)
    assert first != again and first.startswith("ingest-est-field-reports-")


def test_the_job_request_asks_for_the_data_volume_when_told() -> None:
    request = build_ingest_job_request(
        config(), submission_id="ingest-est-g1-7", entrypoint_resources={"sovereign-data": 0.001}
    )
    assert request["entrypoint_resources"] == {"sovereign-data": 0.001}


def test_kuberay_jobs_go_to_the_nations_own_head() -> None:
    assert kuberay_dashboard_url("EST") == "http://est-serving-head-svc.tenant-est.svc:8265"
    target = job_target(OperatorConfig(vault_addr="http://vault:8200", runtime="kuberay"), "EST")
    assert isinstance(target, JobTarget)
    assert (target.dashboard_url, target.store_root, target.token) == (
        "http://est-serving-head-svc.tenant-est.svc:8265",
        DATASET_DIR,
        None,
    )
    # On the nation's data volume, mounted on the head only: the job and the retriever are placed there.
    assert DATASET_DIR == "/var/lib/sovereign/datasets"
    assert target.ray_resources == {"sovereign-data": 0.001}
    request = build_ingest_job_request(config(), submission_id="s", entrypoint_resources=target.ray_resources)
    assert request["entrypoint_resources"] == {"sovereign-data": 0.001}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param({"runtime": "none"}, "not ingested", id="runtime-none"),
        pytest.param(
            {"runtime": "local-ray", "ray_dashboard_url": "http://ray:8265"}, "DATASET_DIR", id="no-dir"
        ),
    ],
)
def test_no_target_says_why(options: dict[str, Any], expected: str) -> None:
    target = job_target(OperatorConfig(vault_addr="http://vault:8200", **options), "EST")
    assert isinstance(target, str) and expected in target


def test_local_ray_jobs_use_the_devstack_dirs() -> None:
    operator = OperatorConfig(
        vault_addr="http://vault:8200",
        runtime="local-ray",
        ray_dashboard_url="http://127.0.0.1:8265",
        ray_token="t",
        dataset_dir="/state/datasets",
        service_account_token_dir="/state/tokens",
    )
    target = job_target(operator, "EST")
    assert isinstance(target, JobTarget)
    assert (target.dashboard_url, target.token, target.store_root, target.token_file) == (
        "http://127.0.0.1:8265",
        "t",
        "/state/datasets",
        "/state/tokens/est/token",
    )
    assert target.ray_resources == {}  # one host: no placement


DONE = {"dataset": "est/field-reports", "version": 3, "documents": 4, "chunks": 9, "sourceHash": "h3"}


@pytest.mark.parametrize(
    ("logs", "expected"),
    [
        pytest.param(
            "starting\n" + json.dumps({**DONE, "skipped": False}) + "\n",
            {**DONE, "skipped": False},
            id="last-line",
        ),
        pytest.param("Traceback ...\nKeyError: x\n", None, id="no-json"),
        pytest.param('{"not": "ours"}\n', None, id="foreign-json"),
    ],
)
def test_the_jobs_last_line_is_its_result(logs: str, expected: dict[str, Any] | None) -> None:
    assert ingest_result(logs) == expected


def conditions(status: dict[str, Any]) -> dict[str, tuple[bool | None, str]]:
    return {c.type: (c.status, c.reason) for c in status["conditions"]}


def test_a_success_sets_counts_and_version() -> None:
    status = status_after_job({}, Outcome(True, {**DONE, "skipped": False}, "2026-11-27T10:00:00Z"))
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "documents": 4,
        "chunks": 9,
        "sourceHash": "h3",
        "indexVersion": 3,
        "lastIngestionTime": "2026-11-27T10:00:00Z",
        "message": "",
    }
    # Not Ready yet: the serving pass sets Ready once the retriever and every gateway serve the index.
    assert conditions(status) == {"Ready": (False, "Publishing"), "Ingested": (True, "Ingested")}


READY_STATUS = {"conditions": [{"type": "Ready", "status": "True", "reason": "IndexServing"}]}


def test_a_new_version_of_a_served_index_stays_ready() -> None:
    previous = {"indexVersion": 2, **READY_STATUS}
    status = status_after_job(previous, Outcome(True, {**DONE, "skipped": False}, "2026-11-27T10:00:00Z"))
    assert conditions(status) == {"Ready": (True, "IndexServing"), "Ingested": (True, "Ingested")}


def test_an_index_is_published_once_its_retriever_and_the_gateways_serve_it() -> None:
    ingested = {
        "indexVersion": 3,
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "Publishing"},
            {"type": "Ingested", "status": "True", "reason": "Ingested", "message": ""},
        ],
    }
    published = status_published(ingested)
    assert published is not None
    assert {c.type: (c.status, c.reason) for c in published} == {
        "Ready": (True, "IndexServing"),
        "Ingested": (True, "Ingested"),
    }
    assert status_published({"indexVersion": 3, **READY_STATUS}) is None  # Ready already
    assert status_published({"conditions": ingested["conditions"]}) is None  # no index to serve


def test_a_skipped_source_keeps_the_last_ingestion_time() -> None:
    previous = {"indexVersion": 3, "lastIngestionTime": "2026-11-27T09:00:00Z"}
    status = status_after_job(previous, Outcome(True, {**DONE, "skipped": True}, "2026-11-27T10:00:00Z"))
    assert status["lastIngestionTime"] == "2026-11-27T09:00:00Z"
    assert conditions(status)["Ingested"] == (True, "SourceUnchanged")


@pytest.mark.parametrize(
    ("previous", "ready"),
    [
        pytest.param({"indexVersion": 2, **READY_STATUS}, True, id="previous-index-serves"),
        pytest.param({"indexVersion": 2}, False, id="previous-index-not-yet-published"),
        pytest.param({}, False, id="first"),
    ],
)
def test_a_failure_names_file_and_line_and_keeps_a_previous_index(
    previous: dict[str, Any], ready: bool
) -> None:
    logs = json.dumps({"dataset": "est/field-reports", "error": "reports.jsonl:3: releasableTo is looser"})
    outcome = job_outcome({"status": "FAILED", "message": "exit 1"}, logs, "2026-11-27T10:00:00Z")
    status = status_after_job(previous, outcome)
    assert status["message"] == "reports.jsonl:3: releasableTo is looser"
    assert conditions(status)["Ready"][0] is ready
    assert conditions(status)["Ingested"] == (False, "IngestionFailed")
    assert "indexVersion" not in status  # the previous version stays in the status


def test_a_job_without_a_result_reports_rays_message() -> None:
    outcome = job_outcome({"status": "FAILED", "message": "Job entrypoint command failed\nexit 137"}, "", "t")
    assert not outcome.succeeded and outcome.result == {"error": "exit 137"}


@pytest.mark.parametrize(
    ("previous", "ready"),
    [
        pytest.param(
            {"conditions": [{"type": "Ready", "status": "True", "reason": "IndexServing"}]},
            True,
            id="an-index-serves-meanwhile",
        ),
        pytest.param({}, False, id="first-ingestion"),
    ],
)
def test_while_a_job_runs(previous: dict[str, Any], ready: bool) -> None:
    ingesting = {c.type: c for c in status_ingesting(previous, "ingest-est-x-g1-1")}
    assert ingesting["Ready"].status is ready
    assert (ingesting["Ingested"].status, ingesting["Ingested"].reason) == (None, "Ingesting")


def test_not_ingested_on_runtime_none_is_never_ready() -> None:
    status = status_not_ingested({"indexVersion": 1}, "NotServed", "runtime none")
    assert conditions(status) == {"Ready": (False, "NotServed"), "Ingested": (False, "NotServed")}


@pytest.mark.parametrize(
    ("status", "now", "due"),
    [
        pytest.param({}, 0.0, False, id="never-submitted"),
        pytest.param(
            {"observedGeneration": 1, "lastAttemptTime": "1970-01-01T00:00:00Z"},
            10.0,
            True,
            id="spec-changed-forces",
        ),
        pytest.param(
            {"observedGeneration": 2, "lastAttemptTime": "1970-01-01T00:00:00Z"},
            299.0,
            None,
            id="before-resync",
        ),
        pytest.param(
            {"observedGeneration": 2, "lastAttemptTime": "1970-01-01T00:00:00Z"}, 300.0, False, id="resync"
        ),
        pytest.param(
            {"observedGeneration": 2, "lastAttemptTime": "1970-01-01T00:00:00Z", "failures": 3},
            19.0,
            None,
            id="backoff-waits",
        ),
        pytest.param(
            {"observedGeneration": 2, "lastAttemptTime": "1970-01-01T00:00:00Z", "failures": 3},
            20.0,
            False,
            id="backoff-over",
        ),
        pytest.param(
            {
                "observedGeneration": 2,
                "lastAttemptTime": "1970-01-01T00:00:00Z",
                "failures": 1,
                "retryForced": True,
            },
            5.0,
            True,
            id="failed-forced-job-retried-forced",
        ),
    ],
)
def test_when_a_job_is_due(status: dict[str, Any], now: float, due: bool | None) -> None:
    assert submission_due(status, 2, 300.0, now) is due


def dataset_object(name: str, ready: str = "True", index: bool = True, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "tenant-est"},
        "spec": {**SPEC, **spec},
        "status": {
            "conditions": [{"type": "Ready", "status": ready}],
            **({"indexVersion": 1} if index else {}),
        },
    }


def test_the_retriever_serves_the_ingested_datasets_only() -> None:
    served = retriever_datasets_for_nation(
        "EST",
        [
            dataset_object("z-reports"),
            dataset_object("publishing", ready="False"),  # ingested: served before it is Ready
            dataset_object("pending", ready="False", index=False),
            dataset_object("orphan", embedding={"modelDeployment": "gone"}),
            dataset_object("a-reports"),
        ],
        {"est-embedder": "embedder"},
    )
    assert [d.name for d in served] == ["a-reports", "publishing", "z-reports"]
    assert served[0].embedding_application == "est-embedder" and served[0].markings.owner == "EST"


def test_the_retriever_application_is_a_valid_serve_config() -> None:
    served = retriever_datasets_for_nation(
        "EST", [dataset_object("field-reports")], {"est-embedder": "embedder"}
    )
    application = build_retriever_application(
        "EST",
        served,
        BUNDLE,
        store_root="/state/datasets",
        vault=VAULT,
        telemetry_env={"OTEL_SERVICE_NAME": "x"},
    )
    ServeDeploySchema.model_validate(build_serve_deploy_config([application], 8000))
    assert (application["name"], application["route_prefix"], application["import_path"]) == (
        "est-retriever",
        None,
        "sovereign_serving.retriever:build_app",
    )
    [deployment] = application["deployments"]
    assert deployment["name"] == "Retriever"
    user_config = RetrieverConfig.model_validate(deployment["user_config"])
    assert user_config.nation == "EST" and user_config.store_root == "/state/datasets"
    assert [d.name for d in user_config.datasets] == ["field-reports"]
    assert user_config.vault == VAULT and user_config.bundle == BUNDLE
    assert application["runtime_env"]["env_vars"] == {"OTEL_SERVICE_NAME": "x", **AIR_GAP_ENV}
    assert deployment["ray_actor_options"] == {"num_cpus": 0.1}  # local-ray: one host, no placement


def test_on_kuberay_the_retriever_runs_where_the_data_volume_is() -> None:
    target = job_target(OperatorConfig(vault_addr="http://vault:8200", runtime="kuberay"), "EST")
    assert isinstance(target, JobTarget)
    served = retriever_datasets_for_nation(
        "EST", [dataset_object("field-reports")], {"est-embedder": "embedder"}
    )
    application = build_retriever_application(
        "EST", served, BUNDLE, store_root=target.store_root, vault=VAULT, ray_resources=target.ray_resources
    )
    ServeDeploySchema.model_validate(build_serve_deploy_config([application]))
    [deployment] = application["deployments"]
    assert deployment["ray_actor_options"] == {"num_cpus": 0.1, "resources": {"sovereign-data": 0.001}}
    assert RetrieverConfig.model_validate(deployment["user_config"]).store_root == DATASET_DIR


@pytest.mark.parametrize(
    ("vault", "expected_address", "ca_cert"),
    [
        pytest.param(None, "https://vault:8200", "PLATFORM CA", id="platform-vault-its-ca"),
        pytest.param(
            {"address": "https://vault.est.example:8200"},
            "https://vault.est.example:8200",
            "EST CA",
            id="own-vault-its-ca-bundle",
        ),
    ],
)
def test_the_vault_sink_carries_the_ca_its_vault_is_verified_with(
    vault: dict[str, Any] | None, expected_address: str, ca_cert: str
) -> None:
    body = {"nation": "EST", "displayName": "Estonia", "clearance": "NATO SECRET"}
    tenant = TenantSpec.model_validate({**body, **({"vault": vault} if vault else {})})
    sink = build_vault_sink_for_nation(
        tenant, platform_vault_addr="https://vault:8200", token_file="/t", vault_ca_cert=ca_cert
    )
    assert (sink.vault_addr, sink.ca_cert) == (expected_address, ca_cert)
    # Through the IngestConfig's JSON, as the job receives it on Ray.
    assert (
        IngestConfig.model_validate_json(
            config().model_copy(update={"vault": sink}).model_dump_json(by_alias=True)
        ).vault.ca_cert
        == ca_cert
    )
