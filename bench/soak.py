"""Soak at load: mixed traffic at 80 % of the capacity measured in the same run, for `--minutes` (10), on the
local platform as `sovereign up` starts it; checks what a user of a platform that runs for days depends on.

One run: `sovereign up --no-examples --trace-viewer none` (devstack Kubernetes API, OpenBao, operator, token
projector, Ray), with every component's spans sent to a counting OTLP receiver in this process; FRA and DEU
Tenants (quotas far above the load), FRA's tiny Llama `fra/analyst` (released to DEU), its MiniLM
`fra/embedder` and its example DataSet `fra/intel-summaries`, all waited for until Ready. Then:

1. warm-up (10 s, one connection each kind), not measured;
2. capacity: `--connections` clients sending the mix back to back for `--capacity-seconds`;
3. soak: the same mix, open loop, at `--load` × capacity for `--minutes`; RSS of every platform process
   sampled every 10 s;
4. checks, each pass/fail with its numbers (exit 1 if one fails): no unexpected error (everything but the
   denials' 403; 429 and 503 included), every process's RSS growing by less than 5 % from the end of the first
   minute to the end, the last minute's p99 within 20 % of the first minute's (per kind and overall), exactly
   one audit record per decision in each nation's log (matched by the gateway's trace id, from
   `traceresponse`) and `sovereign audit verify` passing on every chain.

Writes the section "Soak" of RELIABILITY.md. Progress on stderr; `--output json`: the results on stdout.

    .venv/bin/python bench/soak.py [--minutes 10] [--connections 8] [--output json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import soak_checks as checks
from bench_support import machine_description
from rich.console import Console
from soak_processes import MemorySampler, SpanCounter
from soak_report import publish
from soak_traffic import KINDS, Progress, closed_loop, mix, open_loop
from sovereign_devstack.cli.demo_check import dev_token, wait_for_datasets_ready
from sovereign_devstack.stack import SOURCES_DIR
from sovereign_devstack.tiny_model import build_tiny_llama, copy_minilm

from sovereign.cli.envfile import read_env_file
from sovereign.clients.kubernetes import apply_object, load_api_client
from sovereign.domain.nations import nation_folder
from sovereign.tenant_readiness import wait_for_models_ready, wait_for_tenants_ready

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "examples" / "datasets" / "fra" / "intel-summaries"
WARMUP_SECONDS = 10.0
SAMPLE_SECONDS = 10.0
MINUTE = 60.0
LOAD_QUOTAS = {  # far above what two cores can serve: a 429 in the soak is a failure, never the plan
    "requestsPerMinute": 1_000_000,
    "tokensPerMinute": 100_000_000,
    "userRequestsPerMinute": 1_000_000,
    "userTokensPerMinute": 100_000_000,
}
CALLERS = {  # token key → (nation, clearance)
    "fra": ("FRA", "NATO SECRET"),
    "fra-unclassified": ("FRA", "NATO UNCLASSIFIED"),
    "deu": ("DEU", "NATO CONFIDENTIAL"),
}

console = Console(stderr=True)


def _sovereign(
    state_dir: Path, env: dict[str, str], *args: str, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sovereign.cli.main", *args],
        env={**env, "SOVEREIGN_STATE_DIR": str(state_dir)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _tenant(name: str, clearance: str) -> dict[str, Any]:
    return {
        "apiVersion": "sovereign.ai/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": name},
        "spec": {
            "nation": name.upper(),
            "displayName": name.upper(),
            "clearance": clearance,
            "quotas": {"cpu": "4", "memory": "8Gi", "maxModels": 4, **LOAD_QUOTAS},
        },
    }


def _model(name: str, model: str, source: Path, digests: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sovereign.ai/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "tenant-fra"},
        "spec": {
            "model": model,
            "source": str(source),
            "sha256": digests,
            "engine": "transformers",
            "replicas": 1,
            "resources": {"cpu": "1", "memory": "1Gi"},
            **spec,
        },
    }


def start_platform(scratch: Path, spans: SpanCounter) -> tuple[Path, dict[str, str], dict[str, str]]:
    """`sovereign up` in `scratch`/state, the nations, models and dataset Ready; (state dir, env, tokens)."""
    state_dir = scratch / "state"
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": spans.endpoint,
    }  # Ray's workers and the operator inherit it
    console.log(f"sovereign up in {state_dir} (spans to {spans.endpoint})")
    up = _sovereign(
        state_dir,
        env,
        "up",
        "--no-examples",
        "--trace-viewer",
        "none",
        "--output",
        "json",
        "--state-dir",
        str(state_dir),
    )
    if up.returncode != 0:
        raise RuntimeError(f"sovereign up failed:\n{up.stderr[-3000:]}")
    env = {**env, **read_env_file(state_dir / "env")}
    api = load_api_client(env["KUBECONFIG"])
    for manifest in (_tenant("fra", "NATO SECRET"), _tenant("deu", "NATO CONFIDENTIAL")):
        apply_object(api, manifest)
    wait_for_tenants_ready(api, ["fra", "deu"], 180, console.log)
    models = scratch / "models"
    llama, minilm = build_tiny_llama(models / "tiny-llama"), copy_minilm(models / "minilm")
    restricted = {"classification": "NATO RESTRICTED", "releasableTo": ["DEU"]}
    apply_object(
        api, _model("fra-analyst", "analyst", models / "tiny-llama", llama, maxTokens=64, markings=restricted)
    )
    apply_object(
        api,
        _model(
            "fra-embedder",
            "embedder",
            models / "minilm",
            minilm,
            task="embed",
            maxTokens=256,
            markings={"classification": "NATO UNCLASSIFIED"},
        ),
    )
    wait_for_models_ready(
        api, [("tenant-fra", "fra-analyst"), ("tenant-fra", "fra-embedder")], 600, console.log
    )
    shutil.copytree(CORPUS, state_dir / SOURCES_DIR / nation_folder("FRA") / CORPUS.name, dirs_exist_ok=True)
    apply_object(
        api,
        {
            "apiVersion": "sovereign.ai/v1alpha1",
            "kind": "DataSet",
            "metadata": {"name": "intel-summaries", "namespace": "tenant-fra"},
            "spec": {
                "source": CORPUS.name,
                "markings": {"classification": "NATO CONFIDENTIAL", "releasableTo": ["DEU"]},
                "embedding": {"modelDeployment": "fra-embedder", "chunkSize": 800, "chunkOverlap": 100},
            },
        },
    )
    still = wait_for_datasets_ready(api, [("tenant-fra", "intel-summaries")], 600, console.log)
    if still:
        raise RuntimeError(f"the DataSet is not Ready: {still}")
    tokens = {
        key: dev_token(
            api,
            env["VAULT_ADDR"],
            nation,
            clearance,
            ttl_seconds=6 * 3600,
            vault_cacert=env.get("VAULT_CACERT"),
        )
        for key, (nation, clearance) in CALLERS.items()
    }
    return state_dir, env, tokens


def audit_records(state_dir: Path, env: dict[str, str], nation: str) -> tuple[list[str | None], bool, str]:
    """The trace ids of `nation`'s decision records, whether `sovereign audit verify` passed, what it said."""
    verify = _sovereign(state_dir, env, "audit", "verify", "--nation", nation)
    shown = _sovereign(
        state_dir, env, "audit", "show", "--nation", nation, "--since", "24h", "--output", "json"
    )
    if shown.returncode != 0:
        raise RuntimeError(f"sovereign audit show --nation {nation} failed: {shown.stderr[-2000:]}")
    records = json.loads(shown.stdout)
    traces = [(r.get("details") or {}).get("traceId") for r in records if r.get("kind") == "decision"]
    return traces, verify.returncode == 0, (verify.stdout + verify.stderr).strip()[-500:]


def rss_by_process(sampler: MemorySampler, first_end: float) -> tuple[dict[str, int], dict[str, int]]:
    """RSS (KiB) at the first minute's end and at the end, by "label [pid]"; idle Ray workers left out (Ray
    starts and stops them as it likes)."""
    first, last = sampler.at(first_end), sampler.samples[-1][1]
    names = {pid: name for pid, (name, _) in {**first, **last}.items()}

    def named(taken: dict[int, tuple[str, int]]) -> dict[str, int]:
        return {f"{names[pid]} [{pid}]": rss for pid, (_, rss) in taken.items() if names[pid] != "ray::IDLE"}

    return named(first), named(last)


async def drive(
    base: str, tokens: dict[str, str], args: argparse.Namespace, sampler_start: Any
) -> dict[str, Any]:
    warm = Progress()
    console.log(f"warm-up: {WARMUP_SECONDS:.0f} s")
    await closed_loop(base, tokens, len(KINDS), WARMUP_SECONDS, mix(), warm)
    capacity_report = Progress()
    console.log(f"capacity: {args.connections} connections, closed loop, {args.capacity_seconds:.0f} s")
    capacity = await closed_loop(
        base, tokens, args.connections, args.capacity_seconds, mix(seed=18), capacity_report
    )
    rate = args.load * capacity
    console.log(f"capacity {capacity:.1f} req/s; soak at {rate:.1f} req/s for {args.minutes:g} min")
    soak = Progress()
    seconds = args.minutes * MINUTE
    started = time.monotonic()
    last_line = [0.0]

    def tick(elapsed: float) -> None:
        if elapsed - last_line[0] >= 10:
            last_line[0] = elapsed
            console.log(
                f"soak {elapsed:5.0f}/{seconds:.0f} s: sent {soak.sent}, answered {soak.done}, "
                f"in flight {soak.sent - soak.done}, unexpected {soak.unexpected}"
            )

    sampler_start()
    await open_loop(base, tokens, rate, seconds, mix(seed=19), soak, tick)
    return {
        "warm": warm,
        "capacityReport": capacity_report,
        "capacity": capacity,
        "rate": rate,
        "soak": soak,
        "seconds": seconds,
        "wall": time.monotonic() - started,
    }


def evaluate(driven: dict[str, Any], sampler: MemorySampler, audit: dict[str, Any]) -> dict[str, Any]:
    soak: Progress = driven["soak"]
    seconds = driven["seconds"]
    window = min(MINUTE, seconds / 2)
    first, last = checks.windows(soak.outcomes, seconds, window)
    drifts = checks.latency_drift(first, last)
    rss_first, rss_last = rss_by_process(sampler, window)
    every = [*driven["warm"].outcomes, *driven["capacityReport"].outcomes, *soak.outcomes]
    records_by_kind = {kind.name: kind.records for kind in KINDS}
    expected, untraced = checks.expected_records(every, records_by_kind)
    match = checks.audit_one_to_one(expected, audit["traces"])
    results = [
        checks.errors_check(every),
        checks.memory_check(rss_first, rss_last),
        checks.drift_check(drifts),
        checks.audit_check(match, untraced, audit["verified"]),
    ]
    return {
        "window": window,
        "drifts": drifts,
        "rssFirst": rss_first,
        "rssLast": rss_last,
        "growth": checks.memory_growth(rss_first, rss_last),
        "match": match,
        "checks": results,
        "counts": Counter(o.kind for o in soak.outcomes),
        "timeline": checks.timeline(soak.outcomes, 10.0),
        "minutes": checks.timeline(soak.outcomes, MINUTE),
        "gcs": [  # the GCS's RSS (KiB) at each sample: Ray keeps task events there, up to a bound
            (round(when), rss)
            for when, taken in sampler.samples
            for name, rss in taken.values()
            if name == "gcs_server"
        ],
        "unexpected": Counter(f"{o.kind} {o.status} {o.error}".strip() for o in every if not o.expected),
    }


def run(args: argparse.Namespace) -> int:
    machine = {**machine_description(), "loadavg": f"{os.getloadavg()[0]:.1f}"}
    spans = SpanCounter().start()
    with tempfile.TemporaryDirectory(prefix="sovereign-soak-") as scratch:
        state_dir = Path(scratch) / "state"
        env = dict(os.environ)
        try:
            state_dir, env, tokens = start_platform(Path(scratch), spans)
            sampler = MemorySampler(state_dir, SAMPLE_SECONDS)
            driven = asyncio.run(drive(env["SOVEREIGN_GATEWAY_URL"], tokens, args, sampler.start))
            sampler.stop()
            time.sleep(2)  # the last spans leave in their batch
            audit: dict[str, Any] = {"traces": {}, "verified": {}, "verify": {}}
            for nation in ("FRA", "DEU"):
                traces, verified, said = audit_records(state_dir, env, nation)
                audit["traces"][nation], audit["verified"][nation], audit["verify"][nation] = (
                    traces,
                    verified,
                    said,
                )
            evaluated = evaluate(driven, sampler, audit)
        finally:
            console.log("sovereign down")
            _sovereign(state_dir, env, "down", "--state-dir", str(state_dir), timeout=300)
            spans.stop()
    evaluated["spans"] = spans.spans
    machine["loadavgEnd"] = f"{os.getloadavg()[0]:.1f}"
    publish(machine, args, driven, evaluated, console)
    return 0 if all(check.passed for check in evaluated["checks"]) else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the soak drives its rate")
    parser.add_argument("--connections", type=int, default=8, help="closed-loop clients measuring capacity")
    parser.add_argument("--capacity-seconds", type=float, default=45.0)
    parser.add_argument("--load", type=float, default=0.8, help="the soak's rate, as a share of capacity")
    parser.add_argument("--output", choices=["table", "json"], default="table")
    sys.exit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
