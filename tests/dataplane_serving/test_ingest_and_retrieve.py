"""The Ray side of the data plane, for real: FRA's Tenant made Ready by the real operator (transit key and
Kubernetes auth role in the devstack Vault), the ServiceAccount token file the token projector keeps, a real
MiniLM embedding application on a local Ray Serve, the ingest job's entrypoint (`sovereign_serving.ingest`)
run in a Ray driver, and FRA's retriever application answering `search` for principals of different
clearances and nations: each sees only the chunks it may read (every document carries a canary)."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray import serve
from sovereign_devstack.processes import free_loopback_port
from sovereign_devstack.tiny_model import copy_minilm
from sovereign_operator.builders.dataset import build_ingest_config, build_vault_sink_for_nation
from sovereign_operator.builders.retriever_application import build_retriever_application
from sovereign_operator.config import OperatorConfig
from sovereign_serving.ingest import main as ingest_main
from sovereign_serving.model_server import build_app as build_model_app
from sovereign_serving.retriever import RETRIEVER_DEPLOYMENT, Retriever

from sovereign.domain.nations import retriever_application_name
from sovereign.policy.bundle import PolicyBundle
from sovereign.serving_contract import (
    AIR_GAP_ENV,
    IngestConfig,
    ModelServerConfig,
    RetrieverConfig,
    RetrieverDataset,
)
from sovereign.specs.dataset import DataSetSpec
from sovereign.specs.model_deployment import ModelDeploymentSpec
from sovereign.specs.tenant import TenantSpec
from tests.operator.harness import (
    OperatorProcess,
    Platform,
    operator_with_nations,
)
from tests.operator.tenants import tenant

NATIONS = ("fra", "deu")
EMBEDDER_APP = "fra-embedder"
RESTRICTED = {"classification": "NATO RESTRICTED", "releasableTo": ["DEU"]}
# Every document has a canary: a principal must never see the canary of a chunk it may not read.
DOCUMENTS = {
    "convoy.txt": "CANARY-CONVOY. The supply convoy reached the northern depot before dawn without losses.",
    "weather.md": "# Weather\nCANARY-WEATHER. Heavy snow is expected on the eastern border roads this week.",
}
RECORDS = [
    {
        "id": "depot-secret",
        "text": "CANARY-SECRET. The northern depot holds the reserve fuel for the convoy.",
        "markings": {"classification": "NATO SECRET", "releasableTo": []},
    },
    {
        "id": "depot-public",
        "text": "CANARY-DEU. The depot road is shared with the allied engineers.",
        "markings": {"classification": "NATO RESTRICTED", "releasableTo": ["DEU"]},
    },
]


@pytest.fixture(scope="module")
def operator(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    nations = {name: {"clearance": "NATO SECRET"} for name in NATIONS}
    with operator_with_nations(platform, tmp_path_factory.mktemp("operator"), nations) as process:
        yield process


@pytest.fixture(scope="module")
def vault_sink(
    platform: Platform,
    operator: OperatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    """FRA's Vault login as its ingest job and retriever get it, with the token file the devstack's token
    projector keeps; and the store root."""
    config = OperatorConfig(
        vault_addr=platform.vault_url,
        runtime="local-ray",
        ray_dashboard_url="http://127.0.0.1:9",
        serve_http_port=9,
        dataset_dir=str(tmp_path_factory.mktemp("datasets")),
        service_account_token_dir=str(tmp_path_factory.mktemp("tokens")),
    )
    fra = tenant(platform.kube, "fra")
    platform.project_tokens(config.service_account_token_dir or "")
    token_file = str(Path(config.service_account_token_dir or "") / "fra" / "token")
    return build_vault_sink_for_nation(
        TenantSpec.model_validate(fra["spec"]),
        platform_vault_addr=platform.vault_url,
        token_file=token_file,
        vault_ca_cert=platform.vault_cacert.read_text(),  # the platform Vault's CA, as the operator passes it
    ), config.dataset_dir


@pytest.fixture(scope="module")
def ray_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # A short temp dir of our own: Ray's socket paths must stay under the OS limit (107 bytes).
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": AIR_GAP_ENV},
        _temp_dir=temp_dir,
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": free_loopback_port()})
        models = tmp_path_factory.mktemp("minilm")
        digests = copy_minilm(models)
        embedder = ModelServerConfig(
            name="fra/embedder",
            nation="FRA",
            source=str(models),
            sha256=digests,
            task="embed",
            engine="transformers",
            max_tokens=256,
        )
        serve.run(build_model_app(embedder.model_dump(by_alias=True)), name=EMBEDDER_APP, route_prefix=None)
        yield
    finally:
        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def corpus(directory: Path, records: list[dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in DOCUMENTS.items():
        (directory / name).write_text(text)
    (directory / "depot.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    return directory


def ingest_config(name: str, source: Path, sink: Any, store_root: str) -> IngestConfig:
    """`source`: `<data root>/fra/<name>`, under FRA's data root."""
    assert source.parent.name == "fra"
    spec = DataSetSpec.model_validate(
        {
            "source": str(source),
            "markings": RESTRICTED,
            "embedding": {"modelDeployment": "fra-embedder", "chunkSize": 120, "chunkOverlap": 20},
        }
    )
    embedder = ModelDeploymentSpec.model_validate(
        {
            "model": "embedder",
            "source": "/m",
            "sha256": {"a": "ab" * 32},
            "task": "embed",
            "resources": {"cpu": "1", "memory": "1Gi"},
            "maxTokens": 256,
            "markings": {"classification": "NATO UNCLASSIFIED"},
        }
    )
    return build_ingest_config(
        "FRA", name, spec, embedder, store_root=store_root, source_root=str(source.parents[1]), vault=sink
    )


def run_job(config: IngestConfig, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = ingest_main(["--config", config.model_dump_json(by_alias=True)])
    out = capsys.readouterr().out
    return code, json.loads(out.strip().splitlines()[-1])


def principal(nation: str, clearance: str) -> dict[str, Any]:
    return {
        "sub": f"{nation.lower()}-analyst",
        "nationality": nation,
        "clearance": clearance,
        "issuerNation": nation,
    }


def test_ingest_then_search_filters_by_clearance_and_nation(
    ray_serve: None, vault_sink: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink, store_root = vault_sink
    source = corpus(tmp_path / "fra" / "reports", RECORDS)
    config = ingest_config("reports", source, sink, store_root)
    started = time.monotonic()
    code, result = run_job(config, capsys)
    assert code == 0, result
    assert result["dataset"] == "fra/reports" and result["documents"] == 4 and result["chunks"] >= 4
    assert result["skipped"] is False and result["version"] == 1
    print(f"ingested {result['chunks']} chunks in {time.monotonic() - started:.1f} s")
    # Nothing at rest is plaintext: no canary in any stored file.
    for path in Path(store_root).rglob("*"):
        if path.is_file():
            assert b"CANARY" not in path.read_bytes(), path

    code, again = run_job(config, capsys)
    assert code == 0 and again["skipped"] is True and again["version"] == 1

    application = build_retriever_application(
        "FRA",
        [RetrieverDataset(name="reports", markings=config.markings, embedding_application=EMBEDDER_APP)],
        PolicyBundle.load().to_configmap_data(),
        store_root=store_root,
        vault=sink,
    )
    user_config = RetrieverConfig.model_validate(application["deployments"][0]["user_config"])
    deployment = serve.deployment(
        name=RETRIEVER_DEPLOYMENT, user_config=user_config.model_dump(by_alias=True)
    )
    serve.run(deployment(Retriever).bind(), name=retriever_application_name("FRA"), route_prefix=None)
    retriever = serve.get_app_handle(retriever_application_name("FRA"))

    def texts(who: dict[str, Any], query: str = "northern depot convoy fuel", version: int = 1) -> list[str]:
        answer = retriever.search.remote(who, "fra/reports", query, 10).result(timeout_s=60)
        assert answer["dataset"] == "fra/reports" and answer["version"] == version
        return [chunk["text"] for chunk in answer["chunks"]]

    fra_secret = " ".join(texts(principal("FRA", "NATO SECRET")))
    assert all(canary in fra_secret for canary in ("CANARY-SECRET", "CANARY-CONVOY", "CANARY-DEU"))
    deu_secret = " ".join(texts(principal("DEU", "NATO SECRET")))
    assert "CANARY-SECRET" not in deu_secret  # FRA only
    assert "CANARY-CONVOY" in deu_secret and "CANARY-DEU" in deu_secret
    fra_restricted = " ".join(texts(principal("FRA", "NATO RESTRICTED")))
    assert "CANARY-SECRET" not in fra_restricted and "CANARY-CONVOY" in fra_restricted
    assert texts(principal("POL", "COSMIC TOP SECRET")) == []  # not releasable to POL at all

    first = retriever.search.remote(
        principal("FRA", "NATO SECRET"), "reports", "snow on the roads", 1
    ).result()
    assert [c["documentId"] for c in first["chunks"]] == ["weather.md"]
    assert first["chunks"][0]["markings"]["owner"] == "FRA"
    with pytest.raises(LookupError, match="not a dataset this retriever serves"):
        retriever.search.remote(principal("FRA", "NATO SECRET"), "fra/other", "x", 3).result()

    # A new version (a changed source) is picked up by the running retriever.
    (source / "extra.txt").write_text("CANARY-EXTRA. A bridge on the eastern road was repaired.")
    code, second = run_job(config, capsys)
    assert code == 0 and second["version"] == 2 and second["documents"] == 5
    assert "CANARY-EXTRA" in " ".join(texts(principal("DEU", "NATO SECRET"), "bridge repaired", 2))


def test_a_looser_document_fails_the_job_naming_file_and_line(
    ray_serve: None, vault_sink: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink, store_root = vault_sink
    looser = {"id": "leak", "text": "CANARY-LEAK.", "markings": {"classification": "NATO UNCLASSIFIED"}}
    source = corpus(tmp_path / "fra" / "bad", [RECORDS[1], looser])
    code, result = run_job(ingest_config("bad", source, sink, store_root), capsys)
    assert code == 1
    assert result["dataset"] == "fra/bad" and result["error"].startswith("depot.jsonl:2: ")
    assert "CANARY" not in json.dumps(result)


def test_a_symlink_out_of_the_nations_data_root_fails_the_job(
    vault_sink: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Links planted after admission, under FRA's data root, towards Estonia's documents beside it: a
    symlink as the source itself or as a file inside it, a hard link. The job refuses before reading a byte
    (no Ray, no Vault)."""
    sink, store_root = vault_sink
    estonian = corpus(tmp_path / "est" / "field-reports", [RECORDS[1]])
    (tmp_path / "fra").mkdir()
    (tmp_path / "fra" / "reports").symlink_to(estonian)
    code, result = run_job(ingest_config("reports", tmp_path / "fra" / "reports", sink, store_root), capsys)
    assert code == 1, result
    assert result["error"] == (
        f"spec.source: '{tmp_path}/fra/reports' resolves outside FRA's data root (a symlink?)"
    )
    notes = corpus(tmp_path / "fra" / "notes", [])
    (notes / "inside.txt").symlink_to(notes / "convoy.txt")  # a symlink within the root is fine
    (notes / "leak.txt").symlink_to(estonian / "convoy.txt")
    code, result = run_job(ingest_config("notes", notes, sink, store_root), capsys)
    assert code == 1, result
    assert result["error"] == "spec.source: 'leak.txt' resolves outside FRA's data root (a symlink?)"
    (notes / "leak.txt").unlink()
    (notes / "leak.txt").hardlink_to(estonian / "convoy.txt")  # a second name of Estonia's file
    code, result = run_job(ingest_config("notes", notes, sink, store_root), capsys)
    assert code == 1, result
    assert result["error"] == (
        "spec.source: 'leak.txt' is a hard link (its other names may be outside the root)"
    )
    assert "CANARY" not in json.dumps(result)
