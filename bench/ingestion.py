"""Benchmark: dataset ingestion through the real job path vs the embedding model's raw throughput (issue 8).

One devstack Vault (transit key `tenant-fra`, a token under FRA's own ACL policy, as the operator writes it),
a local Ray with FRA's MiniLM embedding application on Ray Serve (one replica), and a synthetic corpus.
Measures, in one run:
- ingestion: `sovereign_serving.ingest.ingest` (what the operator's Ray job runs): read and check the
  documents, chunk, embed through the embedding application's Serve handle in batches, encrypt and write
  the index (envelope encryption under the nation's transit key, fsync'd) — chunks per second, end to end;
- raw: the same chunk texts embedded directly by the engine in this process, in the same batches, nothing
  else — the model's own chunks per second on this machine.
Goal: ingestion >= 0.8 x raw. Writes its section of BENCHMARKS.md (replaced on each run) and prints results.

    .venv/bin/python bench/ingestion.py [--documents 400] [--output json]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hvac
import ray
from bench_support import machine_description, machine_line, publish_results
from ray import serve
from rich.console import Console
from rich.table import Table
from sovereign_devstack.openbao import VAULT_SERVICE, start_standalone
from sovereign_devstack.processes import free_loopback_port, stop_service
from sovereign_devstack.tiny_model import copy_minilm
from sovereign_serving.engines import load_engine
from sovereign_serving.ingest import ingest
from sovereign_serving.model_server import build_app

from sovereign.clients.vault import create_transit_key, ensure_secrets_engine, write_acl_policy
from sovereign.dataplane.documents import chunk_documents, read_documents
from sovereign.domain.markings import Markings
from sovereign.platform_setup import nation_policy_for_namespace
from sovereign.serving_contract import AIR_GAP_ENV, IngestConfig, ModelServerConfig, VaultSink

BENCHMARKS_MD = Path(__file__).parents[1] / "BENCHMARKS.md"
SECTION = "Dataset ingestion"
APPLICATION = "fra-embedder"
BATCH = 64
CHUNK_SIZE, CHUNK_OVERLAP = 400, 50
WORDS = [
    "convoy",
    "depot",
    "bridge",
    "river",
    "engineers",
    "fuel",
    "reserve",
    "northern",
    "eastern",
    "border",
    "patrol",
    "weather",
    "snow",
    "road",
    "supply",
    "logistics",
    "signal",
    "report",
    "unit",
    "battalion",
    "liaison",
    "allied",
    "sector",
    "checkpoint",
    "observation",
]


def corpus(directory: Path, documents: int) -> None:
    """Synthetic reports (seeded: every run ingests the same text), about 3 chunks each."""
    generator = random.Random(8)
    directory.mkdir(parents=True)
    for index in range(documents):
        sentences = [" ".join(generator.choices(WORDS, k=12)).capitalize() + "." for _ in range(12)]
        (directory / f"report-{index:05d}.txt").write_text(" ".join(sentences))


def raw_throughput(model: ModelServerConfig, texts: list[str]) -> float:
    """Seconds for the engine, in this process, to embed `texts` in batches of BATCH."""
    engine = load_engine(model)

    async def embed_all() -> None:
        await engine.embed(texts[:BATCH])  # warm-up, as the replica is warm
        started = time.perf_counter()
        for start in range(0, len(texts), BATCH):
            await engine.embed(texts[start : start + BATCH])
        timings.append(time.perf_counter() - started)

    timings: list[float] = []
    asyncio.run(embed_all())
    return timings[0]


def run(documents: int, console: Console) -> dict[str, Any]:
    state_dir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    server, keys = start_standalone(state_dir)
    ray_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    try:
        root = hvac.Client(url=server.url, token=keys.root_token, verify=str(server.ca_file))
        ensure_secrets_engine(root, "transit", "transit")
        create_transit_key(root, "transit", "tenant-fra", "aes256-gcm96")
        write_acl_policy(root, "tenant-fra", nation_policy_for_namespace("tenant-fra"))
        token = root.auth.token.create(policies=["tenant-fra"], ttl="1h")["auth"]["client_token"]
        fra = hvac.Client(url=server.url, token=token, verify=str(server.ca_file))

        source = state_dir / "sources" / "fra" / "reports"  # under FRA's data root, `<state_dir>/sources/fra`
        corpus(source, documents)
        markings = Markings(owner="FRA", classification="NATO RESTRICTED")
        chunks = chunk_documents(read_documents(source, "fra/reports", markings), CHUNK_SIZE, CHUNK_OVERLAP)
        texts = [chunk.text for chunk in chunks]
        models = state_dir / "minilm"
        model = ModelServerConfig(
            name="fra/embedder",
            nation="FRA",
            source=str(models),
            sha256=copy_minilm(models),
            task="embed",
            engine="transformers",
            max_tokens=256,
        )
        results: dict[str, Any] = {
            "machine": machine_description(),
            "documents": documents,
            "chunks": len(texts),
        }
        console.print(f"raw: {len(texts)} chunks embedded by the engine in-process …")
        results["raw_s"] = raw_throughput(model, texts)

        ray.init(
            address="local", include_dashboard=False, runtime_env={"env_vars": AIR_GAP_ENV}, _temp_dir=ray_dir
        )
        serve.start(http_options={"host": "127.0.0.1", "port": free_loopback_port()})
        serve.run(build_app(model.model_dump(by_alias=True)), name=APPLICATION, route_prefix=None)
        serve.get_app_handle(APPLICATION).embed.remote({"input": texts[:BATCH]}).result()  # warm-up
        config = IngestConfig(
            dataset="reports",
            nation="FRA",
            source=str(source),
            data_root=str(state_dir / "sources"),
            markings=markings,
            chunk_size=CHUNK_SIZE,
            chunk_overlap=CHUNK_OVERLAP,
            embedding_application=APPLICATION,
            embedding_model="fra/embedder",
            store_root=str(state_dir / "datasets"),
            vault=VaultSink(
                vault_addr=server.url,
                role="tenant-fra",
                token_file="/nonexistent",
                ca_cert=server.ca_file.read_text(),
            ),
            batch_size=BATCH,
        )
        console.print(f"ingestion: {documents} documents through the job path …")
        started = time.perf_counter()
        result = ingest(config, vault=lambda: fra)
        results["ingest_s"] = time.perf_counter() - started
        if result["chunks"] != len(texts):
            raise RuntimeError(f"ingested {result['chunks']} chunks, expected {len(texts)}")
        results["raw_per_s"] = len(texts) / results["raw_s"]
        results["ingest_per_s"] = len(texts) / results["ingest_s"]
        results["ratio"] = results["ingest_per_s"] / results["raw_per_s"]
        return results
    finally:
        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()
        stop_service(state_dir, VAULT_SERVICE)
        shutil.rmtree(ray_dir, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)


def results_table(results: dict[str, Any]) -> Table:
    table = Table("measure", "chunks/s", "seconds", "ratio to raw")
    table.add_row(
        "raw embedding (engine in-process)", f"{results['raw_per_s']:.0f}", f"{results['raw_s']:.2f}", "1.00"
    )
    table.add_row(
        "ingestion (job path)",
        f"{results['ingest_per_s']:.0f}",
        f"{results['ingest_s']:.2f}",
        f"{results['ratio']:.2f} (goal >= 0.8)",
    )
    return table


def markdown_section(results: dict[str, Any], command: str) -> str:
    machine = results["machine"]
    lines = [
        f"{machine_line(machine)} Command: `{command}`.",
        "",
        "| measure | chunks/s | seconds | ratio to raw |",
        "|---|---|---|---|",
        f"| raw embedding (MiniLM engine in-process, batches of {BATCH}) | {results['raw_per_s']:.0f} | "
        f"{results['raw_s']:.2f} | 1.00 |",
        "| ingestion (read, check, chunk, embed through Serve, encrypt, write) | "
        f"{results['ingest_per_s']:.0f} | {results['ingest_s']:.2f} | {results['ratio']:.2f} (goal >= 0.8) |",
        "",
        f"{results['documents']} synthetic documents, {results['chunks']} chunks of {CHUNK_SIZE} characters. "
        "Raw: the same chunk texts embedded by the transformers engine in the benchmark's process, nothing "
        "else. Ingestion: `sovereign_serving.ingest.ingest`, what the operator's Ray job runs, against one "
        "MiniLM replica on a local Ray Serve and a devstack Vault. Ratio: ingestion / raw of the same run.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=400)
    parser.add_argument("--output", choices=["text", "json"], default="text")
    parser.add_argument("--benchmarks-file", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args(argv)
    console = Console(stderr=args.output == "json")
    results = run(args.documents, console)
    command = f".venv/bin/python bench/ingestion.py --documents {args.documents}"
    publish_results(
        args.benchmarks_file,
        SECTION,
        markdown_section(results, command),
        results,
        results_table(results),
        args.output,
        console,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
