"""Benchmark: does scaling the gateway out show in the numbers? (not a timed test).

The rig, load and summaries of `serving.py` (imported: its own Ray on 2 CPUs, Serve's HTTP proxy, the trivial
model, FRA's gateway and the bare ingress), and in one run:
- gateway replicas: FRA's gateway application with 1 and with `--replicas` (2) replicas, each deployed with
  the Serve options the operator's builder gives it (`build_gateway_application(replicas=)`: num_replicas,
  max_ongoing_requests, max_queued_requests, 0.1 CPU), and the bare ingress with the same options and replica
  counts as the baseline, alternating rounds at each `--concurrency` (8 and 16 connections): req/s, the ratio
  of N replicas to 1, the throughput each added replica brings, p50/p99, and where the CPU went (the
  machine's busy share, CPU ms per request by process, from /proc);
- nations: the gateways of FRA, DEU, POL and ITA (each at its own route prefix, each Tenant with its own dev
  issuer, every gateway with the same bundle and all four Tenants, as the operator configures them), the load
  spread evenly over the four vs the same connections on FRA's alone: total req/s, the ratio, p50/p99 per
  nation.
Writes its section of BENCHMARKS.md (replaced on each run) and prints the results.

    .venv/bin/python bench/serving_scale.py [--seconds 5] [--rounds 4] [--concurrency 8 16] [--replicas 2]
        [--output json] [--benchmarks-file PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from bench_support import machine_description, publish_results, stdout_kept_for_json
from cpu_meter import CpuMeter
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ray import serve
from rich.console import Console
from serving_apps import BareIngress
from serving_scale_report import GROUPS, SECTION, markdown_section, results_table
from sovereign_operator.builders.gateway_application import build_gateway_application
from sovereign_serving.gateway import Gateway

from serving import (
    BARE_APP,
    BARE_PREFIX,
    REQUESTS_PER_MINUTE,
    TOKENS_PER_MINUTE,
    TRIVIAL_APP,
    TRIVIAL_MODEL,
    USERS,
    Rig,
    Round,
    _check_answers,
    _load,
    _summary,
    _test_helpers,
    serving_rig,
)
from sovereign.domain.markings import Classification
from sovereign.domain.nations import gateway_application_name, gateway_route_prefix
from sovereign.policy.bundle import PolicyBundle

BENCH_DIR = Path(__file__).resolve().parent
BENCHMARKS_MD = BENCH_DIR.parent / "BENCHMARKS.md"
NATIONS = ("FRA", "DEU", "POL", "ITA")  # the first is the one-nation baseline; FRA owns the model
WARM_UP_SECONDS = 3.0


# SECTION deployments as the operator builds them


def operator_options(replicas: int) -> dict[str, Any]:
    """The Serve options of the operator's gateway deployment with `replicas` (its user_config aside): the
    same knob the product scales a nation's gateway with."""
    application = build_gateway_application(NATIONS[0], [], {}, {}, replicas=replicas)
    deployment = application["deployments"][0]
    return {key: value for key, value in deployment.items() if key not in ("name", "user_config")}


def deploy_gateway(name: str, prefix: str, config: dict[str, Any], replicas: int) -> None:
    gateway = Gateway.options(user_config=config, **operator_options(replicas))
    serve.run(gateway.bind(), name=name, route_prefix=prefix)


def deploy_bare(name: str, prefix: str, replicas: int) -> None:
    """The bare ingress with the gateway's Serve options, so only the code in the replica differs."""
    bare = BareIngress.options(**operator_options(replicas))
    serve.run(bare.bind(TRIVIAL_APP), name=name, route_prefix=prefix)


# SECTION CPU per request, by the report's groups


def _meter(ingress_apps: tuple[str, ...]) -> CpuMeter:
    return CpuMeter(ingress_apps, (TRIVIAL_APP,), tuple(GROUPS))


def _measured(rounds: list[Round], meter: CpuMeter) -> dict[str, Any]:
    summary = _summary(rounds)
    return {**summary, "cpu": meter.result(summary["requests"])}


# SECTION gateway replicas


def _headers(issuer: Any) -> list[dict[str, str]]:
    tokens = [
        issuer.token(subject=f"bench-analyst-{i}", clearance=Classification.NATO_SECRET) for i in range(USERS)
    ]
    return [{"Authorization": f"Bearer {token}"} for token in tokens]


def measure_replicas(
    rig: Rig, replicas: int, seconds: float, rounds: int, concurrencies: list[int], console: Console
) -> list[dict[str, Any]]:
    fra = NATIONS[0]
    scaled_gateway, scaled_bare = f"bench-fra-gateway-{replicas}-replicas", f"{BARE_APP}-{replicas}-replicas"
    ways = {  # name: (application, route prefix, replicas)
        "bare-1": (BARE_APP, BARE_PREFIX, 1),
        "gateway-1": (gateway_application_name(fra), gateway_route_prefix(fra), 1),
        f"bare-{replicas}": (scaled_bare, f"/bare-{replicas}-replicas", replicas),
        f"gateway-{replicas}": (scaled_gateway, f"/fra-{replicas}-replicas", replicas),
    }
    for name, (application, prefix, count) in ways.items():
        console.print(
            f"deploying {application} at {prefix}: {count} replica(s), the operator's Serve options…"
        )
        if name.startswith("gateway"):
            deploy_gateway(application, prefix, rig.gateway_config, count)
        else:
            deploy_bare(application, prefix, count)
    bare_headers: list[dict[str, str]] = [{}]
    headers = {name: _headers(rig.issuer) if name.startswith("gateway") else bare_headers for name in ways}
    urls = {name: f"{rig.base_url}{prefix}/v1/chat/completions" for name, (_, prefix, _) in ways.items()}
    for name in ways:
        if name.startswith("gateway"):
            _check_answers(urls[name], headers[name][0])
    results = []
    for concurrency in concurrencies:
        console.print(
            f"warm-up: {WARM_UP_SECONDS:g} s through each of {len(ways)} ({concurrency} connections)"
        )
        for name in ways:
            asyncio.run(_load(urls[name], headers[name], WARM_UP_SECONDS, concurrency))
        measured: dict[str, list[Round]] = {name: [] for name in ways}
        meters = {name: _meter((application,)) for name, (application, _, _) in ways.items()}
        for index in range(rounds):
            for name in ways:
                console.print(
                    f"round {index + 1}/{rounds}, {concurrency} connections: {seconds:g} s, {name}…"
                )
                with meters[name]:
                    measured[name].append(asyncio.run(_load(urls[name], headers[name], seconds, concurrency)))
        summaries = {name: _measured(measured[name], meters[name]) for name in ways}
        results.append(_replica_results(concurrency, replicas, seconds, measured, summaries))
    for application, _, _ in (ways[f"bare-{replicas}"], ways[f"gateway-{replicas}"]):
        serve.delete(application)  # their idle replicas would only add noise to what follows
    return results


def _replica_results(
    concurrency: int,
    replicas: int,
    seconds: float,
    measured: dict[str, list[Round]],
    summaries: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    def rate(name: str) -> float:
        return float(summaries[name]["requests_per_second"])

    def round_ratios(scaled: str, base: str) -> list[float]:
        return [
            (s.requests / s.seconds) / (b.requests / b.seconds)
            for s, b in zip(measured[scaled], measured[base], strict=True)
        ]

    n = replicas
    return {
        "concurrency": concurrency,
        "replicas": n,
        "rounds": len(measured["gateway-1"]),
        "round_seconds": seconds,
        "ways": summaries,
        "gateway_scaling": rate(f"gateway-{n}") / rate("gateway-1"),
        "gateway_round_scaling": round_ratios(f"gateway-{n}", "gateway-1"),
        "bare_scaling": rate(f"bare-{n}") / rate("bare-1"),
        "bare_round_scaling": round_ratios(f"bare-{n}", "bare-1"),
        "gateway_rps_per_added_replica": (rate(f"gateway-{n}") - rate("gateway-1")) / (n - 1),
        "bare_rps_per_added_replica": (rate(f"bare-{n}") - rate("bare-1")) / (n - 1),
        "gateway_to_bare": {
            "1": rate("gateway-1") / rate("bare-1"),
            str(n): rate(f"gateway-{n}") / rate(f"bare-{n}"),
        },
    }


# SECTION nations served at once


def nation_config(nation: str, issuers: dict[str, Any], bundle: dict[str, str]) -> dict[str, Any]:
    """A nation's gateway config as the operator gives it on one Ray cluster: every Tenant (each with its own
    issuer, quotas far above the load), every model (FRA's trivial model, released to the other three)."""
    others = [other for other in NATIONS if other != NATIONS[0]]
    markings = {"owner": NATIONS[0], "classification": "NATO RESTRICTED", "releasableTo": others}
    model = {"name": TRIVIAL_MODEL, "application": TRIVIAL_APP, "task": "generate", "maxTokens": 16}
    return {
        "nation": nation,
        "tenants": [issuers[n].tenant(REQUESTS_PER_MINUTE, TOKENS_PER_MINUTE) for n in NATIONS],
        "models": [{**model, "markings": markings}],
        "bundle": bundle,
    }


def merged_round(rounds: list[Round]) -> Round:
    """Rounds run at the same time (one per nation) as one: all requests over the longest duration."""
    failures = rounds[0].failures.copy()
    for r in rounds[1:]:
        failures.update(r.failures)
    latencies = [latency for r in rounds for latency in r.latencies]
    return Round(sum(r.requests for r in rounds), max(r.seconds for r in rounds), latencies, failures)


async def _spread(
    urls: dict[str, str], headers: dict[str, list[dict[str, str]]], seconds: float, per: int
) -> dict[str, Round]:
    loads = await asyncio.gather(*(_load(urls[n], headers[n], seconds, per) for n in NATIONS))
    return dict(zip(NATIONS, loads, strict=True))


def measure_nations(
    rig: Rig, seconds: float, rounds: int, concurrencies: list[int], console: Console
) -> list[dict[str, Any]]:
    nations_module, _ = _test_helpers()
    issuers = {
        n: nations_module.ISSUERS.get(n) or nations_module.Issuer(n, Ed25519PrivateKey.generate())
        for n in NATIONS
    }
    issuers[NATIONS[0]] = rig.issuer
    bundle = PolicyBundle.load().to_configmap_data()
    for nation in NATIONS:  # FRA's gateway is reconfigured in place (all four Tenants), the others deployed
        console.print(f"deploying {gateway_application_name(nation)} at {gateway_route_prefix(nation)}…")
        deploy_gateway(
            gateway_application_name(nation),
            gateway_route_prefix(nation),
            nation_config(nation, issuers, bundle),
            1,
        )
    urls = {n: f"{rig.base_url}{gateway_route_prefix(n)}/v1/chat/completions" for n in NATIONS}
    headers = {n: _headers(issuers[n]) for n in NATIONS}
    for nation in NATIONS:
        _check_answers(urls[nation], headers[nation][0])
    apps = tuple(gateway_application_name(n) for n in NATIONS)
    fra = NATIONS[0]
    results = []
    for concurrency in concurrencies:
        per = max(1, concurrency // len(NATIONS))
        console.print(f"warm-up: {WARM_UP_SECONDS:g} s one nation, then four ({concurrency} connections)…")
        asyncio.run(_load(urls[fra], headers[fra], WARM_UP_SECONDS, concurrency))
        asyncio.run(_spread(urls, headers, WARM_UP_SECONDS, per))
        one: list[Round] = []
        four: dict[str, list[Round]] = {n: [] for n in NATIONS}
        one_meter, four_meter = _meter(apps[:1]), _meter(apps)
        for index in range(rounds):
            console.print(
                f"round {index + 1}/{rounds}, {concurrency} connections: {seconds:g} s, {fra} alone…"
            )
            with one_meter:
                one.append(asyncio.run(_load(urls[fra], headers[fra], seconds, concurrency)))
            console.print(
                f"round {index + 1}/{rounds}: {seconds:g} s, {per} connections on each of {len(NATIONS)}…"
            )
            with four_meter:
                spread = asyncio.run(_spread(urls, headers, seconds, per))
            for nation, r in spread.items():
                four[nation].append(r)
        merged = [merged_round([four[n][i] for n in NATIONS]) for i in range(rounds)]
        one_summary, total = _measured(one, one_meter), _measured(merged, four_meter)
        results.append(
            {
                "concurrency": concurrency,
                "connections_per_nation": per,
                "rounds": rounds,
                "round_seconds": seconds,
                "one_nation": one_summary,
                "four_nations": total,
                "by_nation": {n: _summary(four[n]) for n in NATIONS},
                "throughput_ratio": total["requests_per_second"] / one_summary["requests_per_second"],
                "round_ratios": [
                    (m.requests / m.seconds) / (o.requests / o.seconds)
                    for m, o in zip(merged, one, strict=True)
                ],
            }
        )
    return results


# SECTION run


def run(
    seconds: float, rounds: int, concurrencies: list[int], replicas: int, console: Console
) -> dict[str, Any]:
    from importlib.metadata import version

    results: dict[str, Any] = {"machine": machine_description(), "versions": {"ray": version("ray")}}
    with serving_rig(console) as rig:
        results["replicas"] = measure_replicas(rig, replicas, seconds, rounds, concurrencies, console)
        results["nations"] = measure_nations(rig, seconds, rounds, concurrencies, console)
    return results


def _command(args: argparse.Namespace) -> str:
    """The options of this run that change what is measured, as typed."""
    changed = []
    if args.seconds != 5.0:
        changed.append(f"--seconds {args.seconds:g}")
    if args.rounds != 4:
        changed.append(f"--rounds {args.rounds}")
    if args.concurrency != [8, 16]:
        changed.append("--concurrency " + " ".join(str(c) for c in args.concurrency))
    if args.replicas != 2:
        changed.append(f"--replicas {args.replicas}")
    return "".join(f" {option}" for option in changed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measured round")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds each way")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 16], help="concurrent connections")
    parser.add_argument("--replicas", type=int, default=2, help="gateway replicas compared with one (>= 2)")
    parser.add_argument("--output", choices=["text", "json"], default="text")
    parser.add_argument("--benchmarks-file", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args(argv)
    if args.replicas < 2:
        parser.error("--replicas must be at least 2")
    console = Console(stderr=args.output == "json")
    with stdout_kept_for_json(args.output):
        results = run(args.seconds, args.rounds, args.concurrency, args.replicas, console)
    command = _command(args)
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
