"""Benchmark: the gateway's overhead and tokens/s through the platform (issue "Benchmark"; not a timed test).

Starts a Ray of its own (`address="local"`, 2 CPUs, a fresh temp dir) with Serve's HTTP proxy on a free
loopback port, and measures, in one run:
- gateway overhead: `POST /fra/v1/chat/completions` through the real gateway (JWT validation of tokens made by
  `issue_token`, PolicyEngine decisions, markings, the Ray-actor rate limit with a quota far above the load)
  to a trivial model (`tests/serving/gateway/fake_model.py`: answers at once) vs the same POST through a bare
  FastAPI ingress (`bench/serving_apps.py`) that calls the same model application through a handle; same
  client (httpx, N concurrent connections), alternating rounds of fixed duration after a warm-up;
- observability (issue 6): that gateway (observability off: no OTEL endpoint, no `audit`) vs a second FRA
  gateway application at `/fra-observed` with the same config plus tracing and audit on: its replica exports
  spans over OTLP/HTTP to a real receiver (`OtlpReceiver`, in a process of its own, as a collector on
  another host would be) and records every decision, durably, through FRA's AuditWriter actor before
  answering, logged in to a real Vault as FRA. For that it starts a devstack (Kubernetes API emulator,
  OpenBao) and the real operator (SOVEREIGN_RUNTIME=none) in a temp state dir, applies an FRA Tenant, and
  builds FRA's AuditSink as the operator's local-ray serving pass does (`audit_sink_for_tenant`) and its
  ServiceAccount token file as the devstack's token projector does; same client, same alternating rounds;
  spans received, audit records written and Vault requests are counted, each observed request is split into
  phases by its spans (`serving_phases.py`), and each way's CPU per request is measured by part of the
  request path (`cpu_meter.py`, `observability_cpu.py`);
- tokens/s: the tiny Llama (`build_tiny_llama`) served by the real ModelServer (transformers engine) behind
  the real gateway, called with the `openai` client (sequential, temperature 0), vs the same prompts through
  `AutoModelForCausalLM.generate` in this process (same files, greedy, same max_new_tokens).
With `--profile`, py-spy samples the ingress replicas and the HTTP proxy during one more round each way and
writes a flame graph of each (speedscope files, paths printed at the end; `make profile-gateway`).
Writes the results into BENCHMARKS.md (its own section, replaced on each run) and prints them.

    .venv/bin/python bench/serving.py [--seconds 5] [--rounds 4] [--concurrency 8] [--profile]
        [--skip-observability] [--output json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import ray
from bench_support import (
    RequestLog,
    machine_description,
    markdown_table,
    platform_for_benchmark,
    publish_results,
    stdout_kept_for_json,
)
from cpu_meter import OTLP_RECEIVER_MODULE, CpuMeter
from observability_cpu import GROUPS as CPU_GROUPS
from observability_cpu import cpu_comparison, cpu_rows, cpu_text
from ray import serve
from rich.console import Console
from rich.table import Table
from serving_apps import BareIngress
from serving_goals import goal_rows, goal_text, over_bare
from serving_phases import (
    Sent,
    inclusive_ms,
    phase_section,
    phase_summary,
    request_phases,
    short_paths,
    trace_id_of,
    write_speedscope,
)
from sovereign_devstack.pki import ensure_ca
from sovereign_devstack.processes import free_loopback_port
from sovereign_devstack.stack import AUDIT_DIR, PKI_DIR, stop_devstack
from sovereign_devstack.tiny_model import build_tiny_llama
from sovereign_devstack.token_projector import TokenProjector, install_projector_identity
from sovereign_operator.config import OperatorConfig
from sovereign_operator.reconcile.serving import audit_sink_for_tenant
from sovereign_serving.audit_writer import AUDIT_NAMESPACE
from sovereign_serving.gateway import Gateway
from sovereign_serving.model_server import ModelServer
from tenants_at_scale import TenantDriver, all_ready

from sovereign.clients.kubernetes import load_api_client
from sovereign.domain.markings import Classification
from sovereign.domain.nations import audit_writer_name, gateway_application_name, gateway_route_prefix
from sovereign.policy.bundle import PolicyBundle
from sovereign.serving_contract import AIR_GAP_ENV, AuditSink
from sovereign.telemetry import OTLP_ENDPOINT_ENV

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
SECTION = "Serving: gateway overhead and tokens/s"
GOALS = {
    "throughput_ratio": 0.90,
    "tokens_per_second_ratio": 0.90,
    # Every safeguard on (spans exported, each decision durable before the answer) vs the same gateway with
    # them off, and vs the bare ingress, at `--concurrency` and at one connection.
    "observability_ratio": 0.95,
    "added_p50_ms_over_bare": 3.0,
    "added_p99_ms_over_bare": 10.0,
}
NATION = "FRA"
TRIVIAL_APP = "bench-trivial-model"  # the fake model of the gateway's tests, as its own application
TRIVIAL_MODEL = "fra/trivial"
TINY_APP = "fra-tiny"
TINY_MODEL = "fra/tiny"
BARE_PREFIX = "/bare"
BARE_APP = "bench-bare-ingress"
OBSERVED_PREFIX = "/fra-observed"  # FRA's gateway again, with tracing and audit on
OBSERVED_APP = "bench-fra-gateway-observed"
SPAN_SETTLE_SECONDS = 7.0  # the replica's BatchSpanProcessor exports every 5 s (OTEL_BSP_SCHEDULE_DELAY)
# Reservations as the operator's (sovereign_operator.builders.serve_config): a gateway's, a model's default
# `cpu: "1"` at cpu_scale 1.
GATEWAY_NUM_CPUS = 0.1
MODEL_NUM_CPUS = 1
USERS = 16  # distinct tokens, cycled over the requests (each validated once, then from the token cache)
# Far above anything this machine can send: admitted through the real QuotaKeeper, never refused.
REQUESTS_PER_MINUTE = 10_000_000
TOKENS_PER_MINUTE = 1_000_000_000
MAX_TOKENS = 64
TOKEN_ROUNDS = 2  # alternating rounds of all prompts, each way
SEQUENTIAL_SECONDS = 3.0  # one connection, requests back to back: the latency without queueing
PROMPTS = [
    "Summarise the logistics report in three sentences.",
    "What is the capital of France?",
    "Translate into German: the gateway authenticates the token.",
    "List the five classification levels.",
    "Hello, how can I help you today?",
    "Explain maritime surveillance to a new analyst.",
    "Which nations share the platform?",
    "Write a short note on cyber defence.",
    "The quick brown fox jumps over the lazy dog. Continue.",
    "Why are weights verified before a model is loaded?",
    "Describe air policing in one paragraph.",
    "What does a model released to another nation allow?",
]
OVERHEAD_BODY = {
    "model": TRIVIAL_MODEL,
    "messages": [{"role": "user", "content": "Summarise the logistics report."}],
    "max_tokens": 16,
}


def _test_helpers() -> tuple[Any, Any]:
    """The gateway tests' dev issuers (`nations.Issuer`) and fake model (`fake_model.FakeModel`)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    nations = importlib.import_module("tests.serving.gateway.nations")
    fake_model = importlib.import_module("tests.serving.gateway.fake_model")
    return nations, fake_model.FakeModel


# SECTION Ray, Serve and the applications


@dataclass
class Rig:
    base_url: str
    issuer: Any
    temp_dir: Path
    gateway_config: dict[str, Any]


def gateway_config(issuer: Any) -> dict[str, Any]:
    def model(name: str, application: str, max_tokens: int) -> dict[str, Any]:
        markings = {"owner": NATION, "classification": "NATO RESTRICTED", "releasableTo": []}
        return {
            "name": name,
            "application": application,
            "task": "generate",
            "maxTokens": max_tokens,
            "markings": markings,
        }

    return {
        "nation": NATION,
        "tenants": [issuer.tenant(REQUESTS_PER_MINUTE, TOKENS_PER_MINUTE)],
        "models": [model(TRIVIAL_MODEL, TRIVIAL_APP, 16), model(TINY_MODEL, TINY_APP, MAX_TOKENS)],
        "bundle": PolicyBundle.load().to_configmap_data(),
    }


@contextlib.contextmanager
def serving_rig(console: Console) -> Iterator[Rig]:
    """Our own Ray and Serve with the trivial model, the gateway and the bare ingress; all stopped after."""
    nations, fake_model = _test_helpers()
    issuer = nations.ISSUERS[NATION]
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-bench-", dir="/tmp"))
    saved = {key: os.environ.get(key) for key in (*AIR_GAP_ENV, "PYTHONPATH")}
    os.environ.update(AIR_GAP_ENV)
    # The replicas import `serving_apps` (bench/) and the fake model (tests/) by reference.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), str(BENCH_DIR), saved["PYTHONPATH"]) if p
    )
    port = free_loopback_port()
    started = time.monotonic()
    console.print(f"starting Ray (address=local, 2 CPUs, temp dir {temp_dir}) and Serve on port {port}…")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": dict(AIR_GAP_ENV)},
        _temp_dir=str(temp_dir),
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        config = gateway_config(issuer)
        trivial = fake_model.options(ray_actor_options={"num_cpus": 0}).bind()
        serve.run(trivial, name=TRIVIAL_APP, route_prefix=None)
        gateway = Gateway.options(user_config=config, ray_actor_options={"num_cpus": GATEWAY_NUM_CPUS})
        serve.run(
            gateway.bind(), name=gateway_application_name(NATION), route_prefix=gateway_route_prefix(NATION)
        )
        bare = BareIngress.options(ray_actor_options={"num_cpus": GATEWAY_NUM_CPUS})
        serve.run(bare.bind(TRIVIAL_APP), name=BARE_APP, route_prefix=BARE_PREFIX)
        console.print(f"  Ray, Serve and 3 applications up in {time.monotonic() - started:.1f} s")
        yield Rig(f"http://127.0.0.1:{port}", issuer, temp_dir, config)
    finally:
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class AuditedNation:
    sink: AuditSink  # FRA's, as the operator's local-ray serving pass builds it
    vault_log: RequestLog  # the devstack servers' request logs
    state_dir: Path


@contextlib.contextmanager
def audited_nation(console: Console) -> Iterator[AuditedNation]:
    """A devstack (Kubernetes API emulator, OpenBao) with the real operator (SOVEREIGN_RUNTIME=none:
    Tenants are provisioned, nothing is served), FRA's Tenant Ready, and FRA's AuditSink with its serving
    ServiceAccount's token file, made by the operator's own functions as its local-ray serving pass makes
    them. Everything it started is stopped and its state dir removed after, also on failure."""
    state_dir = Path(tempfile.mkdtemp(prefix="bench-serving-devstack-"))
    started = time.monotonic()
    console.print(f"starting a devstack and the operator (state dir {state_dir})…")
    saved = os.environ.get("SOVEREIGN_RUNTIME")
    try:
        os.environ["SOVEREIGN_RUNTIME"] = "none"  # the operator's process inherits this environment
        try:
            platform = platform_for_benchmark(state_dir, lambda message: console.print(f"  {message}"))
        finally:
            if saved is None:
                os.environ.pop("SOVEREIGN_RUNTIME", None)
            else:
                os.environ["SOVEREIGN_RUNTIME"] = saved
        tenants = TenantDriver(platform.api)
        tenants.create(NATION, list(Classification).index(Classification.NATO_SECRET))
        tenants.wait(all_ready([NATION]), f"{NATION} Ready", timeout=120)
        body = next(t for t in tenants.tenants() if t["spec"]["nation"] == NATION)
        config = OperatorConfig(
            vault_addr=platform.devstack.vault_addr,
            vault_cacert=platform.devstack.vault_cacert,
            runtime="local-ray",
            audit_dir=str(state_dir / AUDIT_DIR),
            service_account_token_dir=str(state_dir / "serviceaccount-tokens"),
        )
        # The devstack's token projector (its own identity, as on local-ray) writes the nation's token file.
        projector = install_projector_identity(
            Path(platform.devstack.kubeconfig),
            platform.devstack.kube_url,
            ensure_ca(state_dir.resolve() / PKI_DIR),
            state_dir / "token-projector",
        )
        TokenProjector(load_api_client(str(projector)), state_dir / "serviceaccount-tokens").project()
        sink = audit_sink_for_tenant(config, body, platform.api)
        if sink is None or not Path(sink.token_file).is_file():
            raise RuntimeError(f"no audit sink or token file for {NATION} (see the operator's log)")
        console.print(f"  devstack, operator and {NATION} Ready in {time.monotonic() - started:.1f} s")
        yield AuditedNation(sink, RequestLog(state_dir), state_dir)
    finally:
        stop_devstack(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


# SECTION gateway overhead over HTTP


@dataclass
class Round:
    requests: int
    seconds: float
    latencies: list[float]
    failures: Counter[str]


async def _load(
    url: str,
    headers: list[dict[str, str]],
    seconds: float,
    concurrency: int,
    timed: list[Sent] | None = None,
) -> Round:
    """`concurrency` workers posting OVERHEAD_BODY back to back for `seconds`, one connection each; with
    `timed`, each answer's trace id (`traceresponse`) and latency are appended to it."""
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def worker(index: int) -> None:
            sent = index
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                response = await client.post(url, json=OVERHEAD_BODY, headers=headers[sent % len(headers)])
                latency = time.perf_counter() - began
                latencies.append(latency)
                trace_id = trace_id_of(response.headers.get("traceresponse"))
                if timed is not None and trace_id is not None:
                    timed.append(Sent(trace_id, latency))
                if response.status_code != 200:
                    failures[f"{response.status_code} {response.text[:120]}"] += 1
                sent += concurrency

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - start
    return Round(len(latencies), elapsed, latencies, failures)


def _summary(rounds: list[Round]) -> dict[str, Any]:
    latencies = sorted(latency for r in rounds for latency in r.latencies)
    requests, seconds = sum(r.requests for r in rounds), sum(r.seconds for r in rounds)
    failures: Counter[str] = Counter()
    for r in rounds:
        failures.update(r.failures)
    return {
        "requests": requests,
        "seconds": seconds,
        "requests_per_second": requests / seconds,
        "rounds_requests_per_second": [r.requests / r.seconds for r in rounds],
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
        "mean_ms": statistics.fmean(latencies) * 1e3,
        "failures": dict(failures),
    }


def measure_overhead(
    rig: Rig, seconds: float, rounds: int, concurrency: int, profile: bool, console: Console
) -> dict[str, Any]:
    gateway_url = f"{rig.base_url}{gateway_route_prefix(NATION)}/v1/chat/completions"
    bare_url = f"{rig.base_url}{BARE_PREFIX}/v1/chat/completions"
    gateway_headers = _gateway_headers(rig)
    bare_headers = [{}]
    _check_answers(gateway_url, gateway_headers[0])
    console.print(f"warm-up: 3 s through each ({concurrency} concurrent connections, {USERS} users' tokens)…")
    asyncio.run(_load(gateway_url, gateway_headers, 3.0, concurrency))
    asyncio.run(_load(bare_url, bare_headers, 3.0, concurrency))
    measured: dict[str, list[Round]] = {"gateway": [], "bare": []}
    for index in range(rounds):
        for name, url, headers in (
            ("bare", bare_url, bare_headers),
            ("gateway", gateway_url, gateway_headers),
        ):
            console.print(f"round {index + 1}/{rounds}: {seconds:g} s through the {name} ingress…")
            measured[name].append(asyncio.run(_load(url, headers, seconds, concurrency)))
    console.print(f"one connection: {SEQUENTIAL_SECONDS:g} s through each, sequential requests…")
    single = {
        name: _summary([asyncio.run(_load(url, headers, SEQUENTIAL_SECONDS, 1))])
        for name, url, headers in (
            ("bare", bare_url, bare_headers),
            ("gateway", gateway_url, gateway_headers),
        )
    }
    gateway, bare = _summary(measured["gateway"]), _summary(measured["bare"])
    result: dict[str, Any] = {
        "concurrency": concurrency,
        "round_seconds": seconds,
        "rounds": rounds,
        "users": USERS,
        "gateway": gateway,
        "baseline_bare_ingress": bare,
        "throughput_ratio": gateway["requests_per_second"] / bare["requests_per_second"],
        "round_ratios": [
            (g.requests / g.seconds) / (b.requests / b.seconds)
            for g, b in zip(measured["gateway"], measured["bare"], strict=True)
        ],
        "added_p50_ms": gateway["p50_ms"] - bare["p50_ms"],
        "added_p99_ms": gateway["p99_ms"] - bare["p99_ms"],
        "one_connection": {"gateway": single["gateway"], "baseline_bare_ingress": single["bare"]},
    }
    if profile:
        result["profile"] = profile_ingresses(
            rig,
            [("gateway", gateway_url, gateway_headers), ("bare", bare_url, bare_headers)],
            seconds,
            concurrency,
            console,
        )
    return result


def _gateway_headers(rig: Rig) -> list[dict[str, str]]:
    tokens = [
        rig.issuer.token(subject=f"bench-analyst-{i}", clearance=Classification.NATO_SECRET)
        for i in range(USERS)
    ]
    return [{"Authorization": f"Bearer {token}"} for token in tokens]


def _check_answers(url: str, headers: dict[str, str]) -> None:
    first = httpx.post(url, json=OVERHEAD_BODY, headers=headers, timeout=30)
    if first.status_code != 200 or first.headers.get("X-Sovereign-Classification") != "NATO RESTRICTED":
        raise RuntimeError(f"the gateway does not answer as expected: {first.status_code} {first.text[:300]}")


# SECTION observability on vs off


def _deploy_observed_gateway(rig: Rig, sink: AuditSink, otlp_endpoint: str) -> None:
    """FRA's gateway config plus `audit`, as a second application whose replica (a Ray worker of its own:
    tracing is configured once per process) has OTEL_EXPORTER_OTLP_ENDPOINT. The trivial model it calls is
    the shared one, without an OTLP endpoint: only the gateway differs."""
    config = {**rig.gateway_config, "audit": sink.model_dump(mode="json", by_alias=True, exclude_none=True)}
    options = {"num_cpus": GATEWAY_NUM_CPUS, "runtime_env": {"env_vars": {OTLP_ENDPOINT_ENV: otlp_endpoint}}}
    gateway = Gateway.options(user_config=config, ray_actor_options=options)
    serve.run(gateway.bind(), name=OBSERVED_APP, route_prefix=OBSERVED_PREFIX)


class ReceiverProcess:
    """`OtlpReceiver` in a process of its own (`python -m sovereign_devstack.otlp_receiver`), as a collector
    on another host would be, so its CPU is measured apart from the client's; the spans read back over GET
    /spans. Stopped on leaving, also on error."""

    def __init__(self, log: Path) -> None:
        self.endpoint = f"http://127.0.0.1:{free_loopback_port()}"
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ReceiverProcess:
        port = self.endpoint.rsplit(":", 1)[1]
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", OTLP_RECEIVER_MODULE, "--port", port],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready(self._process)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = self._log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the OTLP receiver exited with {process.returncode}:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.endpoint}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)  # the process importing protobuf and binding its port
        raise RuntimeError(f"the OTLP receiver did not answer at {self.endpoint} within 30 s")

    def spans(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.endpoint}/spans", timeout=120)
        response.raise_for_status()
        spans: list[dict[str, Any]] = response.json()
        return spans

    def __exit__(self, *_: object) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _settled_span_count(receiver: ReceiverProcess) -> int:
    """The spans received once no more arrive for one export interval (or after 60 s)."""
    count, deadline = len(receiver.spans()), time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(SPAN_SETTLE_SECONDS)  # a benchmark waiting out the exporter's schedule, not a test
        now = len(receiver.spans())
        if now == count:
            break
        count = now
    return count


def measure_observability(
    rig: Rig,
    audited: AuditedNation,
    seconds: float,
    rounds: int,
    concurrency: int,
    profile: bool,
    console: Console,
) -> dict[str, Any]:
    bare_url = f"{rig.base_url}{BARE_PREFIX}/v1/chat/completions"
    off_url = f"{rig.base_url}{gateway_route_prefix(NATION)}/v1/chat/completions"
    on_url = f"{rig.base_url}{OBSERVED_PREFIX}/v1/chat/completions"
    headers = _gateway_headers(rig)
    with ReceiverProcess(rig.temp_dir / "otlp-receiver.log") as receiver:
        mark = audited.vault_log.mark()
        started = time.monotonic()
        _deploy_observed_gateway(rig, audited.sink, receiver.endpoint)
        console.print(
            f"observed gateway at {OBSERVED_PREFIX} (spans to {receiver.endpoint}, audit to "
            f"{audited.sink.directory}) up in {time.monotonic() - started:.1f} s"
        )
        _check_answers(on_url, headers[0])
        on_requests = 1
        console.print(
            f"warm-up: 3 s through the bare ingress and each gateway, observability off and on ({concurrency}"
            " connections)"
        )
        asyncio.run(_load(bare_url, [{}], 3.0, concurrency))
        asyncio.run(_load(off_url, headers, 3.0, concurrency))
        on_requests += asyncio.run(_load(on_url, headers, 3.0, concurrency)).requests
        # The bare ingress alternates with both gateways, so the goals over it are measured in these rounds.
        ways = (("bare", bare_url), ("off", off_url), ("on", on_url))
        way_headers = {"bare": [{}], "off": headers, "on": headers}
        measured: dict[str, list[Round]] = {"bare": [], "off": [], "on": []}
        # The measured rounds' CPU, each way with its own ingress replica.
        apps = {"bare": (BARE_APP,), "off": (gateway_application_name(NATION),), "on": (OBSERVED_APP,)}
        meters = {
            way: {name: CpuMeter(apps[name], (TRIVIAL_APP,), tuple(CPU_GROUPS)) for name, _ in ways}
            for way in ("concurrency", "one_connection")
        }
        # The observed gateway's requests as its client timed them, by trace id: its spans split them.
        sent: dict[str, list[Sent]] = {"concurrency": [], "one_connection": []}
        for index in range(rounds):
            for name, url in ways:
                console.print(f"round {index + 1}/{rounds}: {seconds:g} s, {WAY_NAMES[name]}…")
                timed = sent["concurrency"] if name == "on" else None
                with meters["concurrency"][name]:
                    load = _load(url, way_headers[name], seconds, concurrency, timed)
                    measured[name].append(asyncio.run(load))
        console.print(f"one connection: {SEQUENTIAL_SECONDS:g} s each way, sequential requests…")
        single: dict[str, Round] = {}
        for name, url in ways:
            timed = sent["one_connection"] if name == "on" else None
            with meters["one_connection"][name]:
                single[name] = asyncio.run(_load(url, way_headers[name], SEQUENTIAL_SECONDS, 1, timed))
        on_requests += sum(r.requests for r in measured["on"]) + single["on"].requests
        profiled = (
            profile_ingresses(rig, [("observed", on_url, headers)], seconds, concurrency, console)
            if profile
            else None
        )
        if profiled is not None and "observed" in profiled:
            on_requests += profiled["observed"]["requests"]
        console.print("waiting for the last spans to be exported…")
        spans = _settled_span_count(receiver)
        received = receiver.spans()
        span_names = Counter(span["name"] for span in received)
        phases = {}
        for way, timed in sent.items():
            per_request, incomplete = request_phases(received, timed)
            phases[way] = {**phase_summary(per_request), "incomplete_traces": incomplete}
    writer = ray.get_actor(audit_writer_name(NATION), namespace=AUDIT_NAMESPACE)
    records = int(ray.get(writer.last_seq.remote(), timeout=30))
    writer_stats = ray.get(writer.stats.remote(), timeout=30)  # records per call: the client's batching
    vault = audited.vault_log.since(mark)
    off, on = _summary(measured["off"]), _summary(measured["on"])
    off["cpu"] = meters["concurrency"]["off"].result(off["requests"])
    on["cpu"] = meters["concurrency"]["on"].result(on["requests"])
    off1, on1 = _summary([single["off"]]), _summary([single["on"]])
    off1["cpu"] = meters["one_connection"]["off"].result(off1["requests"])
    on1["cpu"] = meters["one_connection"]["on"].result(on1["requests"])
    bare, bare1 = _summary(measured["bare"]), _summary([single["bare"]])
    bare["cpu"] = meters["concurrency"]["bare"].result(bare["requests"])
    bare1["cpu"] = meters["one_connection"]["bare"].result(bare1["requests"])
    ratio = on["requests_per_second"] / off["requests_per_second"]
    return {
        "concurrency": concurrency,
        "round_seconds": seconds,
        "rounds": rounds,
        "users": USERS,
        "bare_ingress": bare,
        "observability_off": off,
        "observability_on": on,
        "observability_ratio": ratio,
        "safeguards_over_bare": {
            "concurrency": over_bare(on, bare, concurrency),
            "one_connection": over_bare(on1, bare1, 1),
        },
        "round_ratios": [
            (n.requests / n.seconds) / (f.requests / f.seconds)
            for n, f in zip(measured["on"], measured["off"], strict=True)
        ],
        "added_p50_ms": on["p50_ms"] - off["p50_ms"],
        "added_p99_ms": on["p99_ms"] - off["p99_ms"],
        "one_connection": {
            "bare_ingress": bare1,
            "observability_off": off1,
            "observability_on": on1,
            "cpu": cpu_comparison(
                off1["cpu"], on1["cpu"], on1["requests_per_second"] / off1["requests_per_second"]
            ),
        },
        "cpu": cpu_comparison(off["cpu"], on["cpu"], ratio),
        "requests_on": on_requests,  # every request sent to the observed gateway, warm-up included
        "spans_received": spans,
        "spans_by_name": dict(span_names.most_common()),
        "audit_records_written": records,
        "vault_requests": vault.vault_total,
        "vault_writes": vault.vault_writes,
        "phases": phases,
        "audit_writer_calls": writer_stats["calls"],
        **({"profile": profiled} if profiled is not None else {}),
    }


WAY_NAMES = {"bare": "bare ingress", "off": "gateway, observability off", "on": "gateway, observability on"}


# SECTION profiling the gateway replica (py-spy)


def _replica_pids(application: str) -> dict[str, int]:
    """Our Serve processes by title (descendants of this process only: never another Ray's), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    ours = {os.getpid()}
    grew = True
    while grew:
        found_now = {pid for pid, parent in parents.items() if parent in ours} - ours
        ours |= found_now
        grew = bool(found_now)
    found = {}
    for pid in ours - {os.getpid()}:
        with contextlib.suppress(OSError):
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            for marker in (f"ServeReplica:{application}:", "ProxyActor"):
                if marker in title:
                    found[marker.rstrip(":")] = pid
    return found


def _py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


PROFILE_RATE = 200  # samples per second
PROFILE_DIR = Path(tempfile.gettempdir()) / "sovereign-bench-serving-profiles"  # raw stacks, kept
# Inclusive: samples whose stack holds a frame of this function (name, file), i.e. the gateway's steps.
GATEWAY_STEPS = {
    "token (Access.authenticate)": ("authenticate", "sovereign_serving/gateway/_access.py"),
    "rate limit (QuotaClient.admit)": ("admit", "sovereign_serving/gateway/_ratelimit.py"),
    "token reservation (QuotaClient.reserve)": ("reserve", "sovereign_serving/gateway/_ratelimit.py"),
    "policy decision (Access.permit)": ("permit", "sovereign_serving/gateway/_access.py"),
    "audit record (record_decision; its wait is not sampled)": (
        "record_decision",
        "sovereign_serving/gateway/_decisions.py",
    ),
    "body checks (_openai)": ("", "sovereign_serving/gateway/_openai.py"),
    "markings headers, JSON answer": ("JSONResponse", "starlette/responses.py"),
    "Serve application states (serve.status, in a thread)": ("status", "ray/serve/api.py"),
}
SPAN_FRAMES = ("opentelemetry/",)
SPAN_EXPORT_FRAMES = ("opentelemetry/exporter/",)
# Exclusive: where the sampled leaf frame is (first match wins).
LEAF_KINDS = {
    "sovereign code": ("sovereign", "bench/serving_apps.py", "tests/serving"),
    "cedarpy": ("cedarpy",),
    "FastAPI, Starlette, pydantic": ("fastapi/", "starlette/", "pydantic"),
    "Ray Serve": ("ray/serve/",),
    "Ray core and metrics": ("ray/",),
    "asyncio, threads, other stdlib": ("asyncio/", "threading.py", "concurrent/", "json/", "python3"),
}


def profile_ingresses(
    rig: Rig,
    runs: list[tuple[str, str, list[dict[str, str]]]],
    seconds: float,
    concurrency: int,
    console: Console,
) -> dict[str, Any]:
    """One more (unmeasured) round through each ingress while py-spy samples its replica and the HTTP proxy:
    active ms per request in each process, by kind of code and, for the gateway, by step; each process's
    samples also as a flame graph (speedscope), kept with the raw stacks."""
    py_spy = _py_spy()
    if py_spy is None:
        return {"error": "py-spy not found"}
    profiles: dict[str, Any] = {}
    applications = {"gateway": gateway_application_name(NATION), "bare": BARE_APP, "observed": OBSERVED_APP}
    for name, url, headers in runs:
        application = applications[name]
        pids = _replica_pids(application)
        replica = f"ServeReplica:{application}"
        if replica not in pids or "ProxyActor" not in pids:
            return {"error": f"the processes of {application} or the proxy were not found"}
        console.print(f"profiling the {name} replica (pid {pids[replica]}) and the proxy, {seconds:g} s…")
        outputs = {process: rig.temp_dir / f"{name}-{process.split(':')[0]}.txt" for process in pids}
        spies = [
            subprocess.Popen(
                [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds))]
                + ["--rate", str(PROFILE_RATE), "--format", "raw", "--output", str(outputs[process])]
                + ["--nonblocking", "--full-filenames"],  # see serving_phases.short_paths
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for process, pid in pids.items()
        ]
        time.sleep(0.5)  # py-spy attached
        began = time.perf_counter()
        load = asyncio.run(_load(url, headers, seconds, concurrency))
        for spy in spies:
            spy.wait(timeout=60)
        sampled = min(seconds, time.perf_counter() - began)
        requests = load.requests * sampled / load.seconds  # served while py-spy sampled (about)
        kept = PROFILE_DIR / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}"
        kept.mkdir(parents=True, exist_ok=True)
        flame_graphs = []
        for process, output in outputs.items():
            if output.exists():
                shutil.copy(output, kept / output.name)
                graph = kept / f"{output.stem}.speedscope.json"
                stacks = short_paths(output.read_text(errors="replace"), ROOT)
                write_speedscope(stacks, f"{name} {process}", PROFILE_RATE, graph)
                flame_graphs.append(str(graph))
        profiles[name] = {
            "raw_stacks": str(kept),
            "flame_graphs": flame_graphs,
            "requests": load.requests,
            "requests_per_second": load.requests / load.seconds,
            "replica": _collapsed(outputs[replica], requests),
            "http_proxy": _collapsed(outputs["ProxyActor"], requests),
        }
    status_ms = []
    for _ in range(5):
        began = time.perf_counter()
        serve.status()
        status_ms.append((time.perf_counter() - began) * 1e3)
    profiles["serve_status_ms_in_driver"] = statistics.median(status_ms)
    return profiles


def _collapsed(path: Path, requests: float) -> dict[str, Any]:
    """py-spy's raw (collapsed) stacks of one process, in active ms per request (non-idle samples only)."""
    samples = 0
    kinds: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    text = short_paths(path.read_text(errors="replace"), ROOT) if path.exists() else ""
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [_frame(frame) for frame in stack.split(";")]
        leaf = frames[-1]
        kinds[next((k for k, marks in LEAF_KINDS.items() if any(m in leaf[1] for m in marks)), "other")] += (
            count
        )
        leaves[f"{leaf[0]} ({leaf[1]})"] += count
        for step, (function, file) in GATEWAY_STEPS.items():
            if any(function in name and file in where for name, where in frames):
                steps[step] += count

    def ms(n: int) -> float:
        return round(n / PROFILE_RATE / requests * 1e3, 3) if requests else 0.0

    return {
        "samples": samples,
        "cpu_ms_per_request": ms(samples),
        # The spans' cost: every stack through OpenTelemetry (span start and end on the request's path,
        # and the BatchSpanProcessor's thread), and of it the exporter (encoding, the HTTP POST).
        "spans_ms": inclusive_ms(text, SPAN_FRAMES, PROFILE_RATE, requests),
        "span_export_ms": inclusive_ms(text, SPAN_EXPORT_FRAMES, PROFILE_RATE, requests),
        "by_kind_ms": {kind: ms(kinds[kind]) for kind in [*LEAF_KINDS, "other"]},
        "gateway_steps_ms": {step: ms(steps[step]) for step in GATEWAY_STEPS},
        "top_leaves_ms": {leaf: ms(n) for leaf, n in leaves.most_common(10)},
    }


def _frame(frame: str) -> tuple[str, str]:
    """py-spy's `function (path/mod.py:12)` → (function, path/mod.py)."""
    name, _, where = frame.partition(" (")
    return name, where.rstrip(")").rsplit(":", 1)[0]


# SECTION tokens/s


def _tiny_model_application(source: Path, digests: dict[str, str]) -> Any:
    """The ModelServer as the operator deploys it: 1 CPU reserved, no engineArgs (so torch in the replica
    runs on the threads Ray gives a 1-CPU actor: OMP_NUM_THREADS=1)."""
    from sovereign.serving_contract import ModelServerConfig

    config = ModelServerConfig.model_validate(
        {
            "name": TINY_MODEL,
            "nation": NATION,
            "source": str(source),
            "sha256": digests,
            "task": "generate",
            "engine": "transformers",
            "maxTokens": MAX_TOKENS,
        }
    )
    return ModelServer.options(ray_actor_options={"num_cpus": MODEL_NUM_CPUS}).bind(config)


def measure_tokens(rig: Rig, console: Console) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    source = rig.temp_dir / "tiny-llama"
    started = time.monotonic()
    digests = build_tiny_llama(source)
    serve.run(_tiny_model_application(source, digests), name=TINY_APP, route_prefix=None)
    default_threads = torch.get_num_threads()
    torch.set_num_threads(MODEL_NUM_CPUS)  # the direct baseline on the replica's threads
    threads = torch.get_num_threads()
    console.print(
        f"tiny Llama built and its ModelServer deployed in {time.monotonic() - started:.1f} s "
        f"(torch threads: {threads} here, as in the replica; {default_threads} by default)"
    )
    messages = [[{"role": "user", "content": prompt}] for prompt in PROMPTS]

    token = rig.issuer.token(subject="bench-tokens", clearance=Classification.NATO_SECRET)
    client = openai.OpenAI(
        base_url=f"{rig.base_url}{gateway_route_prefix(NATION)}/v1", api_key=token, max_retries=0
    )

    def through_platform(chat: list[dict[str, str]]) -> tuple[int, str]:
        answer = client.chat.completions.create(
            model=TINY_MODEL, messages=chat, temperature=0, max_tokens=MAX_TOKENS
        )
        assert answer.usage is not None
        return answer.usage.completion_tokens, answer.choices[0].message.content or ""

    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(source, local_files_only=True, dtype=torch.float32).eval()
    generation = GenerationConfig(
        max_new_tokens=MAX_TOKENS,
        do_sample=False,
        bos_token_id=model.generation_config.bos_token_id,
        eos_token_id=model.generation_config.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )

    def direct(chat: list[dict[str, str]]) -> tuple[int, str]:
        text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        output = model.generate(**inputs, generation_config=generation)
        new_ids = output[0, inputs["input_ids"].shape[1] :].tolist()
        return len(new_ids), tokenizer.decode(new_ids, skip_special_tokens=True)

    handle = serve.get_app_handle(TINY_APP)

    def through_handle(chat: list[dict[str, str]]) -> tuple[int, str]:
        body = {"model": TINY_MODEL, "messages": chat, "temperature": 0, "max_tokens": MAX_TOKENS}
        answer = handle.chat.remote(body).result(timeout_s=60)
        return answer["usage"]["completion_tokens"], answer["choices"][0]["message"]["content"]

    ways = {"platform": through_platform, "handle": through_handle, "direct": direct}
    console.print("warm-up: one request each way…")
    for call in ways.values():
        call(messages[0])
    counted: Counter[str] = Counter()
    elapsed: Counter[str] = Counter()
    texts: dict[str, list[str]] = {name: [] for name in ways}
    for index in range(TOKEN_ROUNDS):
        for name, call in ways.items():
            console.print(
                f"round {index + 1}/{TOKEN_ROUNDS}: {len(messages)} chat requests, sequential, "
                f"max_tokens {MAX_TOKENS}: {name}…"
            )
            started_at = time.perf_counter()
            for chat in messages:
                tokens, text = call(chat)
                counted[name] += tokens
                texts[name].append(text)
            elapsed[name] += time.perf_counter() - started_at
    results = {
        name: {
            "requests": TOKEN_ROUNDS * len(messages),
            "completion_tokens": counted[name],
            "seconds": elapsed[name],
            "tokens_per_second": counted[name] / elapsed[name],
            "ms_per_request": elapsed[name] / (TOKEN_ROUNDS * len(messages)) * 1e3,
        }
        for name in ways
    }
    direct_rate = results["direct"]["tokens_per_second"]
    return {
        "prompts": len(messages),
        "rounds": TOKEN_ROUNDS,
        "max_tokens": MAX_TOKENS,
        "torch_threads": threads,
        "torch_threads_default_here": default_threads,
        "platform": results["platform"],
        "model_server_handle": results["handle"],
        "baseline_direct_generate": results["direct"],
        "same_texts": texts["platform"] == texts["direct"] == texts["handle"],
        "tokens_per_second_ratio": results["platform"]["tokens_per_second"] / direct_rate,
        "handle_tokens_per_second_ratio": results["handle"]["tokens_per_second"] / direct_rate,
    }


# SECTION results


def run(
    seconds: float, rounds: int, concurrency: int, profile: bool, observability: bool, console: Console
) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_description(), "goals": GOALS}
    results["versions"] = _versions()
    with contextlib.ExitStack() as stack:  # unwound in reverse: Ray and Serve first, then the devstack
        audited = stack.enter_context(audited_nation(console)) if observability else None
        rig = stack.enter_context(serving_rig(console))
        results["overhead"] = measure_overhead(rig, seconds, rounds, concurrency, profile, console)
        if audited is not None:
            results["observability"] = measure_observability(
                rig, audited, seconds, rounds, concurrency, profile, console
            )
        results["tokens"] = measure_tokens(rig, console)
    return results


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {package: version(package) for package in ("ray", "torch", "transformers", "httpx", "openai")}


def results_table(results: dict[str, Any]) -> Table:
    o, t = results["overhead"], results["tokens"]
    g, b = o["gateway"], o["baseline_bare_ingress"]
    g1, b1 = o["one_connection"]["gateway"], o["one_connection"]["baseline_bare_ingress"]
    table = Table("measure", "value", "goal", "ratio to baseline", title=SECTION)
    table.add_row(
        f"baseline: bare FastAPI ingress → trivial model ({o['concurrency']} connections)",
        f"{b['requests_per_second']:.0f} req/s",
        "",
        "1",
    )
    table.add_row("  p50 / p99 latency", f"{b['p50_ms']:.2f} / {b['p99_ms']:.2f} ms", "", "1 / 1")
    table.add_row(
        "gateway (token, policy, markings, rate limit) → trivial model",
        f"{g['requests_per_second']:.0f} req/s",
        _goal(
            f">= {GOALS['throughput_ratio']:.2f} of baseline",
            o["throughput_ratio"] >= GOALS["throughput_ratio"],
        ),
        f"{o['throughput_ratio']:.2f} (rounds {min(o['round_ratios']):.2f}–{max(o['round_ratios']):.2f})",
    )
    table.add_row(
        "  p50 / p99 latency",
        f"{g['p50_ms']:.2f} / {g['p99_ms']:.2f} ms",
        "",
        f"{g['p50_ms'] / b['p50_ms']:.2f} / {g['p99_ms'] / b['p99_ms']:.2f}",
    )
    table.add_row(
        "  added p50 / p99 latency", f"{o['added_p50_ms']:+.2f} / {o['added_p99_ms']:+.2f} ms", "", ""
    )
    table.add_row(
        "  one connection, p50 / p99: bare",
        f"{b1['p50_ms']:.2f} / {b1['p99_ms']:.2f} ms ({b1['requests_per_second']:.0f} req/s)",
        "",
        "1 / 1",
    )
    table.add_row(
        "  one connection, p50 / p99: gateway",
        f"{g1['p50_ms']:.2f} / {g1['p99_ms']:.2f} ms ({g1['requests_per_second']:.0f} req/s)",
        "",
        f"{g1['p50_ms'] / b1['p50_ms']:.2f} / {g1['p99_ms'] / b1['p99_ms']:.2f}",
    )
    table.add_row("  failed requests (all of the above)", str(_failed(g, b, g1, b1)), "", "")
    if "observability" in results:
        _observability_rows(table, results["observability"])
    d, p, h = t["baseline_direct_generate"], t["platform"], t["model_server_handle"]
    requests = d["requests"]
    table.add_row(
        f"baseline: transformers generate in process ({requests} requests, max {t['max_tokens']} tokens)",
        f"{d['tokens_per_second']:.0f} tokens/s",
        "",
        "1",
    )
    table.add_row(
        "openai client → gateway → ModelServer (transformers)",
        f"{p['tokens_per_second']:.0f} tokens/s",
        _goal(
            f">= {GOALS['tokens_per_second_ratio']:.2f} of baseline",
            t["tokens_per_second_ratio"] >= GOALS["tokens_per_second_ratio"],
        ),
        f"{t['tokens_per_second_ratio']:.2f}",
    )
    table.add_row(
        "  ModelServer through a Ray Serve handle (no HTTP, no gateway)",
        f"{h['tokens_per_second']:.0f} tokens/s",
        "",
        f"{t['handle_tokens_per_second_ratio']:.2f}",
    )
    table.add_row(
        "  time per request: direct / handle / platform",
        f"{d['ms_per_request']:.1f} / {h['ms_per_request']:.1f} / {p['ms_per_request']:.1f} ms",
        "",
        "",
    )
    table.add_row(
        "  completion tokens: direct / handle / platform",
        f"{d['completion_tokens']} / {h['completion_tokens']} / {p['completion_tokens']}",
        "",
        "",
    )
    table.add_row("  same texts all three ways", "yes" if t["same_texts"] else "NO", "", "")
    return table


def _failed(*summaries: dict[str, Any]) -> int:
    return sum(sum(summary["failures"].values()) for summary in summaries)


def _observability_rows(table: Table, o: dict[str, Any]) -> None:
    off, on = o["observability_off"], o["observability_on"]
    off1, on1 = o["one_connection"]["observability_off"], o["one_connection"]["observability_on"]
    table.add_row(
        f"baseline: gateway, observability off ({o['concurrency']} connections)",
        f"{off['requests_per_second']:.0f} req/s",
        "",
        "1",
    )
    table.add_row("  p50 / p99 latency", f"{off['p50_ms']:.2f} / {off['p99_ms']:.2f} ms", "", "1 / 1")
    table.add_row(
        "gateway, observability on (spans over OTLP/HTTP, each decision durable in the audit log)",
        f"{on['requests_per_second']:.0f} req/s",
        _goal(
            f">= {GOALS['observability_ratio']:.2f} of baseline",
            o["observability_ratio"] >= GOALS["observability_ratio"],
        ),
        f"{o['observability_ratio']:.2f} (rounds {min(o['round_ratios']):.2f}–{max(o['round_ratios']):.2f})",
    )
    table.add_row(
        "  p50 / p99 latency",
        f"{on['p50_ms']:.2f} / {on['p99_ms']:.2f} ms",
        "",
        f"{on['p50_ms'] / off['p50_ms']:.2f} / {on['p99_ms'] / off['p99_ms']:.2f}",
    )
    table.add_row(
        "  added p50 / p99 latency", f"{o['added_p50_ms']:+.2f} / {o['added_p99_ms']:+.2f} ms", "", ""
    )
    table.add_row(
        "  one connection, p50 / p99: observability off",
        f"{off1['p50_ms']:.2f} / {off1['p99_ms']:.2f} ms ({off1['requests_per_second']:.0f} req/s)",
        "",
        "1 / 1",
    )
    table.add_row(
        "  one connection, p50 / p99: observability on",
        f"{on1['p50_ms']:.2f} / {on1['p99_ms']:.2f} ms ({on1['requests_per_second']:.0f} req/s)",
        "",
        f"{on1['p50_ms'] / off1['p50_ms']:.2f} / {on1['p99_ms'] / off1['p99_ms']:.2f}",
    )
    requests = o["requests_on"]
    table.add_row("  requests to the observed gateway (warm-up included)", str(requests), "", "")
    table.add_row(
        "  spans received by the OTLP receiver",
        f"{o['spans_received']} ({o['spans_received'] / requests:.2f} per request)",
        "",
        "",
    )
    table.add_row(
        "  audit records written (FRA's decisions log, last seq)",
        f"{o['audit_records_written']} ({o['audit_records_written'] / requests:.2f} per request)",
        "",
        "",
    )
    writes = sum(o["vault_writes"].values())
    table.add_row(
        "  Vault requests while observed (writes: data keys, logins)",
        f"{o['vault_requests']} ({writes} writes)",
        "",
        "",
    )
    table.add_row("  failed requests (all of the above)", str(_failed(off, on, off1, on1)), "", "")
    if "cpu" in o:
        cpu_rows(table, o)
    if "safeguards_over_bare" in o:
        goal_rows(table, o, GOALS)


def _goal(goal: str, met: bool) -> str:
    return f"{goal} ({'met' if met else 'not met'})"


def markdown_section(results: dict[str, Any], command: str) -> str:
    machine, versions, o, t = results["machine"], results["versions"], results["overhead"], results["tokens"]
    lines = [
        f"Run on {machine['date']}: {machine['cpu_model']}, {machine['nproc']} CPUs, "
        f"{machine['memory_gib']:.1f} GiB memory, Python {machine['python']}, Ray {versions['ray']}, "
        f"torch {versions['torch']}, transformers {versions['transformers']}.",
        f"Command: `make bench-serving{_make_args(command)}` (`.venv/bin/python bench/serving.py{command}`).",
        "",
    ]
    lines += markdown_table(results_table(results))
    lines += [
        "",
        "One local Ray (2 CPUs) and Serve on this machine, the client in the benchmark's process. Overhead: "
        "`POST /fra/v1/chat/completions` through the real gateway (Ed25519 JWTs from `issue_token`, "
        f"{o['users']} users cycled, so each token is validated once and then served from the token cache, "
        "and each decision from the PolicyEngine's cache; quotas far above the load, so each user's request "
        "permits are leased from the gateway's QuotaKeeper actor 64 at a time and its tokens reserved ahead "
        "in pools (`_ratelimit.py`: the keeper is called once per lease or pool, not per request; at the "
        "default quotas it is called once per admission and once per reservation) vs the same POST through a "
        "bare FastAPI ingress on the same Serve proxy calling the same model application through a handle; "
        "the model is the gateway tests' fake model (answers at once). Both ingresses reserve 0.1 CPU, as "
        f"the operator's gateway does. Same httpx client, {o['concurrency']} concurrent connections, 3 s "
        f"warm-up each, then {o['rounds']} alternating rounds of {o['round_seconds']:g} s each way "
        f"(req/s per round: bare {_rates(o['baseline_bare_ingress'])}, gateway {_rates(o['gateway'])}), "
        f"then {SEQUENTIAL_SECONDS:g} s each on one connection. "
        f"Tokens/s: {t['prompts']} fixed chat prompts, {t['rounds']} alternating rounds, sequential, "
        f"temperature 0, max_tokens {t['max_tokens']}, through the `openai` client, the gateway and the "
        f"ModelServer (deployed as the operator does: 1 CPU reserved, no engineArgs, so Ray gives torch "
        f"{t['torch_threads']} thread) vs `AutoModelForCausalLM.generate` on the same files in the benchmark "
        f"process on as many torch threads ({t['torch_threads_default_here']} by default; chat template, "
        "tokenising and decoding included); completion tokens from `usage` vs generated ids. "
        "Ratios: measured value / baseline of the same run.",
    ]
    if "observability" in results:
        lines += ["", _observability_text(results["observability"])]
        if "cpu" in results["observability"]:
            lines += ["", cpu_text(results["observability"])]
        if "safeguards_over_bare" in results["observability"]:
            lines += ["", goal_text(results["observability"], GOALS)]
    profile = o.get("profile") or {}
    if "gateway" in profile and "bare" in profile:
        lines += ["", _profile_text(profile)]
    if "observability" in results and results["observability"].get("phases"):
        lines += ["", *phase_section(results)]
    return "\n".join(lines)


def _observability_text(o: dict[str, Any]) -> str:
    names = ", ".join(f"`{name}` {count}" for name, count in o["spans_by_name"].items())
    writes = ", ".join(f"{request} {count}" for request, count in o["vault_writes"].items()) or "none"
    return (
        "Observability: the same gateway (observability off: no OTLP endpoint, no `audit` in its config) vs "
        f"a second FRA gateway application at `{OBSERVED_PREFIX}` with the same config plus `audit`, its "
        "replica (0.1 CPU, a worker process of its own) started with OTEL_EXPORTER_OTLP_ENDPOINT, so it "
        "exports its spans (BatchSpanProcessor, OTLP/HTTP protobuf) to a real receiver "
        "(`sovereign_devstack.otlp_receiver.OtlpReceiver`, in a process of its own), and records each "
        "decision through FRA's AuditWriter actor (encrypted with a data key from FRA's transit key, "
        "hash-chained, fsync'd; concurrent appends share fsyncs) before answering. Its Vault is a devstack "
        "Vault prepared by the real operator (SOVEREIGN_RUNTIME=none) for an FRA Tenant; the writer logs in "
        "as FRA with the `tenant-fra/model-serving` ServiceAccount token the devstack's token projector "
        "writes (sink from `audit_sink_for_tenant`). Both gateways call the same trivial model "
        "application (no OTLP endpoint) and take permits from the same QuotaKeeper. Same client and tokens, "
        f"3 s warm-up each, {o['rounds']} alternating rounds of {o['round_seconds']:g} s each way (req/s per "
        f"round: {_bare_rates(o)}off {_rates(o['observability_off'])}, "
        f"on {_rates(o['observability_on'])}), then "
        f"{SEQUENTIAL_SECONDS:g} s each on one connection. Spans received by name: {names}. "
        f"Vault writes while the observed gateway ran: {writes}."
    )


def _bare_rates(o: dict[str, Any]) -> str:
    """The bare ingress's rates, when it alternated with both gateways (the goals over it)."""
    return f"bare ingress {_rates(o['bare_ingress'])}, " if "bare_ingress" in o else ""


def _profile_text(profile: dict[str, Any]) -> str:
    gateway, bare = profile["gateway"], profile["bare"]
    replica, proxy = gateway["replica"]["cpu_ms_per_request"], gateway["http_proxy"]["cpu_ms_per_request"]
    bare_replica, bare_proxy = bare["replica"]["cpu_ms_per_request"], bare["http_proxy"]["cpu_ms_per_request"]
    kinds = ", ".join(
        f"{kind} {gateway['replica']['by_kind_ms'][kind]:.2f} vs {bare['replica']['by_kind_ms'][kind]:.2f}"
        for kind in [*LEAF_KINDS, "other"]
    )
    steps = ", ".join(f"{step} {ms:.2f}" for step, ms in gateway["replica"]["gateway_steps_ms"].items())
    return (
        f"Where the time goes (`--profile`: py-spy at {PROFILE_RATE} Hz on the ingress replica and the HTTP "
        "proxy during one more round each way; active ms per request, from non-idle samples, which include "
        f"waiting for a CPU): gateway replica {replica:.2f} vs bare ingress replica {bare_replica:.2f}; "
        f"HTTP proxy {proxy:.2f} vs {bare_proxy:.2f}. By the code the replica was in "
        f"(gateway vs bare): {kinds}. The gateway's steps (inclusive): {steps}. One `serve.status()` call "
        f"from the benchmark's process, median of 5: {profile['serve_status_ms_in_driver']:.0f} ms."
    )


def _make_args(command: str) -> str:
    return f' SERVING_BENCH_ARGS="{command.strip()}"' if command else ""


def _rates(summary: dict[str, Any]) -> str:
    return ", ".join(f"{rate:.0f}" for rate in summary["rounds_requests_per_second"])


def _command(args: argparse.Namespace) -> str:
    """The options of this run that change what is measured, as typed."""
    options = {"seconds": 5.0, "rounds": 4, "concurrency": 8, "profile": False, "skip_observability": False}
    changed = [
        f"--{name.replace('_', '-')}" if value is True else f"--{name} {value:g}"
        for name, default in options.items()
        if (value := getattr(args, name)) != default
    ]
    return "".join(f" {option}" for option in changed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measured round")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds each way")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent HTTP connections")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample both ingress replicas and the proxy with py-spy in one more round each way",
    )
    parser.add_argument(
        "--skip-observability",
        action="store_true",
        help="leave out observability on vs off (it starts a devstack and the operator), if they cannot run",
    )
    parser.add_argument("--output", choices=["text", "json"], default="text")
    parser.add_argument("--benchmarks-file", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args(argv)
    console = Console(stderr=args.output == "json")
    with stdout_kept_for_json(args.output):
        results = run(
            args.seconds, args.rounds, args.concurrency, args.profile, not args.skip_observability, console
        )
    publish_results(
        args.benchmarks_file,
        SECTION,
        markdown_section(results, _command(args)),
        results,
        results_table(results),
        args.output,
        console,
    )
    graphs = [
        graph
        for part in (results["overhead"], results.get("observability", {}))
        for profiled in (part.get("profile") or {}).values()
        if isinstance(profiled, dict)
        for graph in profiled.get("flame_graphs", [])
    ]
    if graphs:  # on stderr with --output json: stdout holds the JSON alone
        Console(stderr=True).print(
            "flame graphs (speedscope: open at https://www.speedscope.app or with `speedscope FILE`):\n  "
            + "\n  ".join(graphs)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
