"""Benchmark: retrieval latency with markings filtering vs without (issue 8, "Benchmarks"; not a timed test).

An index of `--chunks` chunks (default 100,000) x `--dimensions` (default 384, MiniLM's) in memory, as the
retriever holds it after `DatasetStore.load` (`LoadedIndex`: faiss `IndexFlatIP`, exact cosine). The vectors
and queries are seeded random unit vectors, not embeddings of text: exact flat search costs the same for any
vectors of that shape. The chunks carry 5 distinct markings of an EST dataset (all levels from UNCLASSIFIED
to SECRET, releasable to NATO / to FRA and DEU / to FRA, one ATOMAL), in realistic proportions. Measures, in
one run, per query (top 5), unfiltered and filtered queries interleaved so both see the same machine load:
- unfiltered: `LoadedIndex.search(query, 5, None)`;
- filtered, for each principal: `allowed_chunks(index, principal, engine, "EST")` with the real PolicyEngine
  and the base bundle (each distinct marking decided once; the engine's decision cache is warm, as in a
  running retriever) plus `LoadedIndex.search(query, 5, allowed)` (the index is sharded by marking: only
  the allowed shards are searched, so only allowed chunks are scored) — decision time included;
- the alternatives sharding was chosen over, for the first principal: one flat index of all chunks with an
  `IDSelectorBitmap` of the allowed ones, the same with `IDSelectorBatch` built per query, and a flat index
  of the allowed subset alone (search time; its build time reported apart).
Goal: filtered p99 <= 1.2x unfiltered p99. Writes its section of BENCHMARKS.md and prints the results.

faiss searches with `--threads` OpenMP threads (default 1, as a retriever replica serving concurrent requests
should: one query per core). With more threads than free cores, faiss's unfiltered single-query path suffers
OpenMP contention (measured: p50 27 ms instead of 0.6 ms at 10,000 chunks on a busy 2-CPU machine), while
the selector path is sequential anyway, which would flatter the filtered/unfiltered ratio.

    .venv/bin/python bench/retrieval.py [--chunks 100000] [--dimensions 384] [--queries 1000] [--threads 1]
        [--output json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from bench_support import machine_description, publish_results
from rich.console import Console
from rich.table import Table

from sovereign.dataplane import Chunk, IndexManifest, LoadedIndex, allowed_chunks
from sovereign.domain.markings import Markings, Principal
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.engine import PolicyEngine

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
SECTION = "Retrieval with markings filtering"
DATASET = "est/field-reports"
TOP_K = 5
WARMUP = 50
# (share of chunks, markings): an EST corpus, mostly releasable, some national or compartmented.
MARKINGS: list[tuple[float, dict[str, Any]]] = [
    (0.30, {"classification": "NATO UNCLASSIFIED", "releasableTo": ["NATO"]}),
    (0.25, {"classification": "NATO RESTRICTED", "releasableTo": ["FRA", "DEU"]}),
    (0.20, {"classification": "NATO CONFIDENTIAL", "releasableTo": ["NATO"]}),
    (0.15, {"classification": "NATO SECRET", "releasableTo": ["FRA"]}),
    (0.10, {"classification": "NATO SECRET", "releasableTo": ["FRA"], "compartments": ["ATOMAL"]}),
]
PRINCIPALS = {
    "FRA, NATO CONFIDENTIAL": ("FRA", "NATO CONFIDENTIAL"),  # 75 % of the chunks
    "DEU, NATO RESTRICTED": ("DEU", "NATO RESTRICTED"),  # 55 %
    "POL, NATO SECRET": ("POL", "NATO SECRET"),  # 50 %
    "USA, NATO UNCLASSIFIED": ("USA", "NATO UNCLASSIFIED"),  # 30 %
}


def build_index(chunks: int, dimensions: int, rng: np.random.Generator) -> LoadedIndex:
    shares = np.array([share for share, _ in MARKINGS])
    which = rng.choice(len(MARKINGS), size=chunks, p=shares / shares.sum())
    markings = [Markings.model_validate({"owner": "EST", **fields}) for _, fields in MARKINGS]
    items = [
        Chunk(DATASET, f"doc-{i // 8}", f"doc-{i // 8}#{i % 8}", f"text {i}", markings[m])
        for i, m in enumerate(which)
    ]
    vectors = unit_vectors(rng, chunks, dimensions)
    manifest = IndexManifest(1, "random", chunks // 8, chunks, dimensions, "random-unit-vectors", "now")
    return LoadedIndex(manifest, items, vectors)


def unit_vectors(rng: np.random.Generator, count: int, dimensions: int) -> np.ndarray:
    vectors = rng.standard_normal((count, dimensions), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def principal(nation: str, clearance: str) -> Principal:
    return Principal(sub="analyst", nationality=nation, issuer_nation=nation, clearance=clearance)


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def run(chunks: int, dimensions: int, queries: int, threads: int, console: Console) -> dict[str, Any]:
    faiss.omp_set_num_threads(threads)
    load_before = os.getloadavg()[0]
    rng = np.random.default_rng(8)
    console.print(f"building an index of {chunks:,} x {dimensions} …")
    index = build_index(chunks, dimensions, rng)
    engine = PolicyEngine(PolicyBundle.load())
    users = {label: principal(*args) for label, args in PRINCIPALS.items()}
    query_vectors = unit_vectors(rng, queries + WARMUP, dimensions)
    results: dict[str, Any] = {
        "machine": machine_description(),
        "chunks": chunks,
        "dimensions": dimensions,
        "queries": queries,
        "top_k": TOP_K,
        "faiss": faiss.__version__,
        "faiss_threads": faiss.omp_get_max_threads(),
        "distinct_markings": len(index.distinct_markings),
    }
    first = next(iter(users.values()))
    mask = allowed_chunks(index, first, engine, "EST")
    ids = np.flatnonzero(mask).astype(np.int64)
    vectors = index.vectors  # assembled from the shards once, outside the timings
    subset_started = time.perf_counter()
    subset = faiss.IndexFlatIP(dimensions)
    subset.add(np.ascontiguousarray(vectors[mask]))
    results["subset_build_ms"] = (time.perf_counter() - subset_started) * 1000

    full = faiss.IndexFlatIP(dimensions)  # the same vectors in one unsharded index, for the selectors
    full.add(vectors)
    bits = np.packbits(mask, bitorder="little")

    def bitmap_selector(query: np.ndarray) -> None:
        selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
        full.search(query.reshape(1, -1), TOP_K, params=faiss.SearchParameters(sel=selector))

    def batch_selector(query: np.ndarray) -> None:
        selector = faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids))
        full.search(query.reshape(1, -1), TOP_K, params=faiss.SearchParameters(sel=selector))

    measures: dict[str, Callable[[np.ndarray], Any]] = {"unfiltered": lambda q: index.search(q, TOP_K, None)}
    for label, user in users.items():
        measures[f"filtered: {label}"] = lambda q, user=user: index.search(
            q, TOP_K, allowed_chunks(index, user, engine, "EST")
        )
    measures["alternative: one index, IDSelectorBitmap"] = bitmap_selector
    measures["alternative: one index, IDSelectorBatch per query"] = batch_selector
    measures["alternative: flat index of the allowed subset"] = lambda q: subset.search(
        q.reshape(1, -1), TOP_K
    )
    console.print(f"{queries:,} queries per measure, interleaved ({WARMUP} warm-up each) …")
    samples: dict[str, list[float]] = {name: [] for name in measures}
    for n, query in enumerate(query_vectors):
        for name, work in measures.items():
            elapsed = timed(lambda work=work, query=query: work(query))
            if n >= WARMUP:
                samples[name].append(elapsed)
    decision = [timed(lambda: allowed_chunks(index, first, engine, "EST")) for _ in range(200)]
    results["allowed_chunks"] = percentiles(decision)
    results["allowed_fraction"] = {
        label: float(allowed_chunks(index, user, engine, "EST").mean()) for label, user in users.items()
    }
    results["measures"] = {name: percentiles(values) for name, values in samples.items()}
    results["load_before"], results["load_after"] = load_before, os.getloadavg()[0]
    base = results["measures"]["unfiltered"]["p99_ms"]
    results["worst_filtered_p99_ratio"] = max(
        m["p99_ms"] / base for name, m in results["measures"].items() if name.startswith("filtered")
    )
    return results


def results_table(results: dict[str, Any]) -> Table:
    table = Table("search (top 5)", "allowed", "p50 ms", "p99 ms", "p99 / unfiltered p99")
    base = results["measures"]["unfiltered"]["p99_ms"]
    first = next(iter(PRINCIPALS))
    for name, m in results["measures"].items():
        label = name.removeprefix("filtered: ")
        share = results["allowed_fraction"].get(label, results["allowed_fraction"][first])
        allowed = "100 %" if name == "unfiltered" else f"{share:.0%}".replace("%", " %")
        table.add_row(name, allowed, f"{m['p50_ms']:.2f}", f"{m['p99_ms']:.2f}", f"{m['p99_ms'] / base:.2f}x")
    return table


def markdown_section(results: dict[str, Any], command: str) -> str:
    machine = results["machine"]
    lines = [
        f"Run on {machine['date']}: {machine['cpu_model']}, {machine['nproc']} CPUs, "
        f"{machine['memory_gib']:.1f} GiB memory, Python {machine['python']}, faiss-cpu {results['faiss']} "
        f"({results['faiss_threads']} OpenMP threads).",
        f"Command: `make bench-retrieval` (`{command}`).",
        "",
        "| search (top 5) | allowed | p50 ms | p99 ms | p99 / unfiltered p99 |",
        "|---|---|---|---|---|",
    ]
    table = results_table(results)
    for row in zip(*[column.cells for column in table.columns], strict=True):
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    decision = results["allowed_chunks"]
    ratio = results["worst_filtered_p99_ratio"]
    lines += [
        "",
        f"Goal: filtered p99 <= 1.2x unfiltered p99 — worst filtered ratio **{ratio:.2f}x** "
        f"({'met' if ratio <= 1.2 else 'NOT met'}).",
        "",
        f"{results['chunks']:,} chunks x {results['dimensions']} dimensions, seeded random unit vectors (not "
        f"embeddings of text: exact flat search costs the same for any vectors of that shape), "
        f"{results['queries']:,} random unit queries per measure, measures interleaved query by query. "
        f"Index: `LoadedIndex` (faiss `IndexFlatIP` over L2-normalised vectors, exact cosine). Chunks carry "
        f"{results['distinct_markings']} distinct EST markings (UNCLASSIFIED REL NATO 30 %, RESTRICTED REL "
        "FRA, DEU 25 %, CONFIDENTIAL REL NATO 20 %, SECRET REL FRA 15 %, SECRET ATOMAL REL FRA 10 %). "
        "Filtered = `allowed_chunks` with the real PolicyEngine and base bundle (each distinct marking "
        "decided once, the engine's decision cache warm as in a running retriever; p50 "
        f"{decision['p50_ms']:.2f} ms, p99 {decision['p99_ms']:.2f} ms of it) + `search`: the index is "
        "sharded by marking (one flat index per distinct marking), only the allowed shards are searched and "
        "their top 5 merged, so forbidden chunks are never scored and a filtered search costs at most what "
        "an unfiltered one does. Alternatives, for the first principal: one unsharded flat index with an "
        "`IDSelectorBitmap` of the allowed chunks (every id tested, vectors scored one at a time), the same "
        "with `IDSelectorBatch` built per query (a hash set of the allowed ids), and a flat index of the "
        f"allowed subset alone (search only; building it took {results['subset_build_ms']:.0f} ms and a copy "
        "of the allowed vectors, per principal and version).",
        "",
        f"Load average during the run: {results['load_before']:.1f} before, {results['load_after']:.1f} "
        "after (1 minute; other processes share the machine, which shows in the p99s).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--dimensions", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="faiss OpenMP threads")
    parser.add_argument("--output", choices=["text", "json"], default="text")
    parser.add_argument("--benchmarks-file", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args(argv)
    console = Console(stderr=args.output == "json")
    results = run(args.chunks, args.dimensions, args.queries, args.threads, console)
    command = (
        f".venv/bin/python bench/retrieval.py --chunks {args.chunks} --dimensions {args.dimensions} "
        f"--queries {args.queries} --threads {args.threads}"
    )
    table = results_table(results)
    publish_results(
        args.benchmarks_file,
        SECTION,
        markdown_section(results, command),
        results,
        table,
        args.output,
        console,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
