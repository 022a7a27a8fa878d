"""A DataSet as a nation's data steward meets it: the real operator on the devstack's `local-ray` runtime
(a real Ray head started as `sovereign up` starts it), DEU's MiniLM embedder applied as a ModelDeployment, a
DataSet applied with kubectl; the operator submits the ingest job to Ray's job server, `kubectl get datasets`
shows its documents, chunks and READY, a changed source is ingested again, a looser document fails the job
with file and line while the previous index keeps serving (so does a source that a planted symlink leads
out of DEU's data root), and DEU's retriever application runs."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sovereign_devstack.otlp_receiver import OtlpReceiver

from sovereign.clients import ray as ray_client
from sovereign.dataplane import DatasetStore, DatasetUnreadable
from tests.helpers import kubectl, wait_until
from tests.operator.harness import Platform
from tests.operator.tenants import delete_tenant
from tests.serving.e2e.harness import CLEARANCES, SOVEREIGN, Serving, running_local_ray, serving_platform

RECORDS = [
    {"id": "r1", "text": "The bridge at the river crossing was repaired by the engineers."},
    {
        "id": "r2",
        "text": "Fuel reserves are stored at the northern depot.",
        "markings": {"classification": "NATO SECRET"},
    },
]


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as started:
        yield started


@pytest.fixture(scope="module")
def serving(
    platform: Platform,
    receiver: OtlpReceiver,
    dataset_dir: Path,
    source_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Serving]:
    ray_temp = Path(tempfile.mkdtemp(prefix="rd", dir="/tmp"))  # Ray's socket paths must stay short
    # Every span of the operator, the gateways, the retriever and the ingest job goes to a real receiver.
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    env = {
        **otel,
        "SOVEREIGN_DATASET_DIR": str(dataset_dir),
        "SOVEREIGN_DATASET_SOURCE_ROOT": str(source_root),
        "SOVEREIGN_SERVICE_ACCOUNT_TOKEN_DIR": str(tmp_path_factory.mktemp("serviceaccount-tokens")),
        "SOVEREIGN_DATASET_POLL_SECONDS": "1",
        "SOVEREIGN_DATASET_RESYNC_SECONDS": "2",
    }
    try:
        with contextlib.ExitStack() as stack:
            local_ray, _ = stack.enter_context(
                running_local_ray(tmp_path_factory.mktemp("ray"), {"RAY_TMPDIR": str(ray_temp), **otel})
            )
            operator, models, digests = stack.enter_context(
                serving_platform(platform, local_ray, tmp_path_factory, env)
            )
            served = Serving(platform, local_ray, operator, models, digests)
            served.apply_model(
                "deu-embedder",
                "deu",
                "embedder",
                "minilm",
                task="embed",
                markings={"classification": "NATO UNCLASSIFIED"},
            )
            served.wait_condition("deu", "deu-embedder", "Ready", "True")
            yield served
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)


def apply_dataset(serving: Serving, source: Path | str) -> None:
    manifest = {
        "apiVersion": "sovereign.ai/v1alpha1",
        "kind": "DataSet",
        "metadata": {"name": "field-reports", "namespace": "tenant-deu"},
        "spec": {
            "source": str(source),
            "markings": {"classification": "NATO RESTRICTED", "releasableTo": ["FRA"]},
            "embedding": {"modelDeployment": "deu-embedder", "chunkSize": 200, "chunkOverlap": 20},
        },
    }
    kubectl(serving.platform.kube, "apply", "-f", "-", input=yaml.safe_dump(manifest))


def dataset(serving: Serving) -> dict[str, Any]:
    out = kubectl(serving.platform.kube, "get", "dataset", "field-reports", "-n", "tenant-deu", "-o=json")
    return json.loads(out.stdout)


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return {c["type"]: c for c in (body.get("status") or {}).get("conditions", [])}.get(kind) or {}


def test_a_dataset_is_ingested_reingested_and_a_failure_keeps_the_index(
    serving: Serving, source_root: Path
) -> None:
    source = source_root / "deu" / "reports"
    source.mkdir(parents=True)
    (source / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    (source / "summary.md").write_text("# Summary\nThe convoy reached the depot before dawn.")
    apply_dataset(serving, source)

    def ingested(version: int) -> dict[str, Any] | None:
        body = dataset(serving)
        status = body.get("status") or {}
        # Ingested too: a resync's job (every few seconds here) may be under way once Ready, Ingested Unknown.
        done = all(condition(body, kind).get("status") == "True" for kind in ("Ready", "Ingested"))
        return body if status.get("indexVersion") == version and done else None

    body = wait_until(lambda: ingested(1), "field-reports ingested", timeout=90, interval=0.5)
    assert body["status"]["documents"] == 3 and body["status"]["chunks"] >= 3
    assert condition(body, "Ingested")["status"] == "True" and body["status"]["lastIngestionTime"]
    table = kubectl(serving.platform.kube, "get", "datasets", "-n", "tenant-deu").stdout
    header, row = table.strip().splitlines()
    assert header.split()[:2] == ["NAME", "CLASSIFICATION"] and "READY" in header
    words = row.split()
    at = words.index("True")  # NAME, CLASSIFICATION (two words), DOCUMENTS, CHUNKS, READY
    assert words[0] == "field-reports"
    assert words[at - 2 : at] == [str(body["status"]["documents"]), str(body["status"]["chunks"])]

    def retriever_running() -> bool:
        states = ray_client.application_states(
            ray_client.get_serve_status(serving.ray.dashboard_url, token=serving.ray.token)
        )
        return states.get("deu-retriever", ("", ""))[0] == "RUNNING"

    wait_until(retriever_running, "deu-retriever RUNNING", timeout=60, interval=0.5)

    # A changed source: the next resync ingests it again (an unchanged one is skipped).
    (source / "extra.txt").write_text("A second bridge was repaired.")
    body = wait_until(lambda: ingested(2), "field-reports re-ingested", timeout=60, interval=0.5)
    assert body["status"]["documents"] == 4

    # A looser document (UNCLASSIFIED in a RESTRICTED dataset): the job fails naming the file and line;
    # the previous index keeps serving.
    bad = source_root / "deu" / "bad"
    shutil.copytree(source, bad)
    (bad / "log.jsonl").write_text(
        json.dumps(RECORDS[0])
        + "\n"
        + json.dumps({"id": "r3", "text": "x", "markings": {"classification": "NATO UNCLASSIFIED"}})
        + "\n"
    )
    apply_dataset(serving, bad)

    def failed() -> dict[str, Any] | None:
        body = dataset(serving)
        return body if condition(body, "Ingested").get("reason") == "IngestionFailed" else None

    body = wait_until(failed, "the failed ingestion reported", timeout=60, interval=0.5)
    assert body["status"]["message"].startswith("log.jsonl:2: "), body["status"]["message"]
    assert condition(body, "Ready")["status"] == "True" and body["status"]["indexVersion"] == 2

    # A symlink planted after admission, from DEU's data root to documents outside it: the job refuses it.
    france = source_root / "fra" / "notes"
    shutil.copytree(source, france)
    (source_root / "deu" / "planted").symlink_to(france)
    apply_dataset(serving, "planted")  # relative to DEU's data root: admitted

    def refused() -> dict[str, Any] | None:
        body = dataset(serving)
        return body if body["status"]["message"].startswith("spec.source: ") else None

    body = wait_until(refused, "the planted symlink refused", timeout=60, interval=0.5)
    assert "resolves outside DEU's data root" in body["status"]["message"]
    assert condition(body, "Ingested")["reason"] == "IngestionFailed"
    assert condition(body, "Ready")["status"] == "True" and body["status"]["indexVersion"] == 2


SECRET_TEXT = "northern depot"  # only in r2, a NATO SECRET record of the NATO RESTRICTED dataset


def search_as(serving: Serving, nation: str, clearance: str, query: str) -> subprocess.CompletedProcess[str]:
    """`sovereign dataset search` as an analyst of `nation` does it, through the nation's own gateway."""
    return subprocess.run(
        [*SOVEREIGN, "dataset", "search", "--nation", nation, "--dataset", "deu/field-reports", query]
        + ["--top-k", "10", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **serving.cli_env(),
            "SOVEREIGN_GATEWAY_URL": serving.ray.gateway_url,
            "SOVEREIGN_TOKEN": serving.token(nation, clearance),
        },
    )


def test_each_principal_gets_only_the_chunks_it_may_read_and_nothing_leaks_into_logs_or_spans(
    serving: Serving, receiver: OtlpReceiver
) -> None:
    """After the test above the index is version 2 (r1, r2, the summary, extra.txt). Through the real
    gateways and DEU's real retriever: FRA SECRET reads r2; FRA RESTRICTED and DEU CONFIDENTIAL (below
    SECRET) never see it, nor can it push their results around; POL, to whom the dataset is not released,
    is refused like an unknown dataset. The SECRET text is in no log of the platform."""

    def found(nation: str, clearance: str) -> list[dict[str, Any]] | None:
        answer = search_as(serving, nation, clearance, "fuel reserves at the depot")
        # Until the gateways' next serving pass knows the dataset, it is refused as unknown.
        return json.loads(answer.stdout)["results"] if answer.returncode == 0 else None

    secret_reader = wait_until(lambda: found("FRA", "NATO SECRET"), "FRA's search served", timeout=60)
    assert any(SECRET_TEXT in r["text"] for r in secret_reader)
    for nation, clearance in (("FRA", "NATO RESTRICTED"), ("DEU", "NATO CONFIDENTIAL")):
        results = found(nation, clearance)
        assert results, f"{nation} {clearance} reads the dataset's other chunks"
        assert not any(SECRET_TEXT in r["text"] or r["documentId"] == "log.jsonl:r2" for r in results)
        assert {r["documentId"] for r in results} <= {r["documentId"] for r in secret_reader}
    refused = search_as(serving, "POL", "NATO SECRET", "fuel reserves at the depot")
    assert refused.returncode == 3 and SECRET_TEXT not in refused.stdout + refused.stderr

    logs = [serving.operator.log_path, *(serving.ray.state_dir / "logs").rglob("*")]
    logs += list(Path(tempfile.gettempdir()).glob("rd*/session_latest/logs/*"))
    leaked = [p for p in logs if p.is_file() and SECRET_TEXT.encode() in p.read_bytes()]
    assert not leaked, leaked
    # The spans of those searches (the gateways' and the retriever's) arrived, and hold no chunk text.
    wait_until(
        lambda: any(s["name"].startswith("retriever search") for s in receiver.spans()), "retriever spans"
    )
    texts = [r["text"] for r in RECORDS] + ["The convoy reached the depot before dawn."]
    for body in receiver.raw_bodies():
        assert not any(text.encode() in body for text in texts), "chunk text in an exported span"


def dataset_of(serving: Serving, nation: str, name: str) -> dict[str, Any]:
    namespace = f"tenant-{nation}"
    return json.loads(
        kubectl(serving.platform.kube, "get", "dataset", name, "-n", namespace, "-o=json").stdout
    )


@pytest.mark.faults
def test_a_ready_dataset_answers_its_first_search_through_every_nations_gateway(
    serving: Serving, source_root: Path
) -> None:
    """Ready means it answers, tried as a new user does: each of three nations applies a DataSet (released
    to the others), waits for Ready, then searches it at once through its own gateway and another
    nation's. Twice (a retriever started, then one reconfigured): never a 503 `dataset_unavailable` nor a 403
    of a dataset a gateway does not know yet, the first time."""
    nations = sorted(CLEARANCES)
    try:
        for nation in ("fra", "pol"):
            unclassified = {"classification": "NATO UNCLASSIFIED"}
            serving.apply_model(
                f"{nation}-embedder", nation, "embedder", "minilm", task="embed", markings=unclassified
            )
        for nation in ("fra", "pol"):
            serving.wait_condition(nation, f"{nation}-embedder", "Ready", "True")
        tokens = {nation: serving.token(nation.upper(), CLEARANCES[nation]) for nation in nations}
        for round_ in (1, 2):
            name = f"ready-{round_}"
            started = time.monotonic()
            for nation in nations:
                source = source_root / nation / name
                source.mkdir(parents=True)
                (source / "notes.md").write_text(
                    f"# {nation} {round_}\nThe convoy reached the depot at dawn."
                )
                others = [other.upper() for other in nations if other != nation]
                manifest = {
                    "apiVersion": "sovereign.ai/v1alpha1",
                    "kind": "DataSet",
                    "metadata": {"name": name, "namespace": f"tenant-{nation}"},
                    "spec": {
                        "source": str(source),
                        "markings": {"classification": "NATO RESTRICTED", "releasableTo": others},
                        "embedding": {"modelDeployment": f"{nation}-embedder"},
                    },
                }
                kubectl(serving.platform.kube, "apply", "-f", "-", input=yaml.safe_dump(manifest))
            for nation in nations:
                wait_until(
                    lambda nation=nation, name=name: (
                        condition(dataset_of(serving, nation, name), "Ready").get("status") == "True"
                    ),
                    f"{nation}/{name} Ready",
                    timeout=180,
                    interval=0.2,
                )
            ready_after = time.monotonic() - started
            for index, owner in enumerate(nations):
                for caller in (owner, nations[(index + 1) % len(nations)]):
                    response = httpx.post(
                        f"{serving.endpoint(caller)}/sovereign/search",
                        headers={"Authorization": f"Bearer {tokens[caller]}"},
                        json={"datasets": [f"{owner}/{name}"], "query": "convoy at the depot", "top_k": 3},
                        timeout=60,
                    )
                    assert response.status_code == 200, (owner, caller, response.status_code, response.text)
                    assert response.json()["results"], (owner, caller)
            print(
                f"round {round_}: three DataSets Ready {ready_after:.1f} s after apply; first searches: 200"
            )
    finally:
        for nation in nations:
            for round_ in (1, 2):
                kubectl(
                    serving.platform.kube,
                    "delete",
                    "dataset",
                    f"ready-{round_}",
                    "-n",
                    f"tenant-{nation}",
                    "--ignore-not-found",
                    "--wait=false",
                )
        for nation in ("fra", "pol"):
            kubectl(
                serving.platform.kube,
                "delete",
                "modeldeployment",
                f"{nation}-embedder",
                "--ignore-not-found",
                "--wait=false",
                "-n",
                f"tenant-{nation}",
            )


def test_offboarding_the_nation_makes_its_dataset_unreadable(serving: Serving, dataset_dir: Path) -> None:
    """Crypto-shredding, as the platform does it: deleting DEU's Tenant shreds its transit key; the encrypted
    index stays on disk, and nobody, not even Vault's root, can read it any more."""
    store = DatasetStore(dataset_dir, "DEU", "field-reports")
    root = serving.platform.root_vault()
    assert store.current() is not None and store.load(root, "transit").chunks  # readable before
    delete_tenant(serving.platform.kube, "deu", timeout=90)
    assert store.current() is not None  # still there
    with pytest.raises(DatasetUnreadable):
        store.load(root, "transit")
