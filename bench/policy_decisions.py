"""Benchmark: policy decisions and the access matrix at NATO scale (issue 4, "Benchmark"; not a timed test).

A seeded catalogue: 32 NATO member nations, 100 models and 1,000 datasets they own, with realistic markings
(all five levels; releasable to the owner only, to NATO or to a small grouping; some ATOMAL; a few denied
nations), and four nations with their own rules (TenantPolicy-style, built with `nation_bundle_rules`; one of
them names a dataset, so its policy sets are evaluated without grouping). Measures, in one run:
- `decide()` uncached: every call on a new principal (distinct sub) and a catalogue resource, so the decision
  cache always misses; the resources' parsed entities are warm (each resource decided once beforehand);
- `decide()` cached: the same calls again;
- baseline for both: a bare `cedarpy.is_authorized` with the same pre-parsed policy set, entities as a list,
  no schema (the engine's floor: no validation, no cache, no input checks);
- the full access matrix (32 tenants x their levels x 1,100 resources) with `access_matrix`, and as baseline
  `exhaustive_matrix` (one `engine.decide` per cell), checked to give the same cells.
Writes the results into BENCHMARKS.md (its own section, replaced on each run) and prints them.

    .venv/bin/python bench/policy_decisions.py [--decisions 20000] [--baseline-tenants 32] [--output json]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cedarpy
from bench_support import machine_description, markdown_table, publish_results
from rich.console import Console
from rich.table import Table

from sovereign.domain.markings import Classification, Markings, Principal, Resource, ResourceKind
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.engine import PolicyEngine
from sovereign.policy.matrix import (
    ACTION_FOR_KIND,
    MatrixTenant,
    access_matrix,
    clearance_levels,
    exhaustive_matrix,
)
from sovereign.policy.nation_rules import nation_bundle_rules, problems_with_nation_rules
from sovereign.policy.schema import action_uid, principal_entity, principal_uid, resource_entity, resource_uid

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
SECTION = "Policy decisions and access matrix"
SEED = 4
EMBARGO_CHECK_TENANTS = 4
GOALS = {"uncached_p99_us": 150.0, "cached_p99_us": 5.0, "matrix_s": 1.0}

# The 32 NATO members (ISO 3166-1 alpha-3), with a rough weight for how much each owns.
NATIONS = {
    "ALB": 1, "BEL": 2, "BGR": 1, "CAN": 4, "HRV": 1, "CZE": 2, "DNK": 2, "EST": 1,
    "FIN": 2, "FRA": 6, "DEU": 6, "GRC": 2, "HUN": 1, "ISL": 1, "ITA": 4, "LVA": 1,
    "LTU": 1, "LUX": 1, "MNE": 1, "NLD": 3, "MKD": 1, "NOR": 3, "POL": 4, "PRT": 1,
    "ROU": 2, "SVK": 1, "SVN": 1, "ESP": 3, "SWE": 3, "TUR": 3, "GBR": 7, "USA": 10,
}  # fmt: skip
GROUPINGS = [
    ["CAN", "GBR", "USA"],
    ["DNK", "EST", "FIN", "ISL", "LVA", "LTU", "NOR", "SWE"],
    ["DEU", "FRA", "POL"],
    ["BEL", "LUX", "NLD"],
    ["CZE", "HUN", "POL", "SVK"],
    ["ESP", "GRC", "ITA", "PRT"],
    ["BGR", "ROU", "TUR"],
]
LEVELS = list(Classification)
LEVEL_WEIGHTS = [25, 25, 20, 20, 10]  # of resources, lowest first

NATION_RULES = {
    "FRA": [
        (
            "liaison",
            """
            @id("pol-liaison")
            permit (principal, action, resource)
            when { resource.owner == "FRA" && principal.nationality == "POL" &&
       principal.groups.contains("liaison") };
            """,
        ),
        (
            "caveats",
            """
            @id("no-tur-above-confidential")
            forbid (principal, action, resource)
            when { principal.nationality == "TUR" && resource.owner == "FRA" &&
       resource.classification >= 3 };
            """,
        ),
    ],
    "USA": [
        (
            "five-eyes",
            """
            @id("release-to-can-gbr")
            permit (principal, action, resource)
            when { resource.owner == "USA" && ["CAN", "GBR"].contains(principal.nationality) &&
                   principal.clearance >= resource.classification };
            """,
        )
    ],
    "EST": [
        (
            "models",
            """
            @id("no-foreign-models-above-restricted")
            forbid (principal, action, resource is Sovereign::Model)
            when { principal.nationality == "EST" && resource.owner != "EST" &&
       resource.classification >= 2 };
            """,
        )
    ],
    "NOR": [
        (
            "restricted",
            """
            @id("own-restricted-to-nordic-baltic")
            forbid (principal, action, resource)
            when { resource.owner == "NOR" && resource.releasableTo.contains("NATO") &&
                   resource.classification >= 3 &&
                   !["DNK", "EST", "FIN", "ISL", "LVA", "LTU", "NOR", "SWE"]
                      .contains(principal.nationality) };
            """,
        )
    ],
}
# Measured separately: a rule naming a resource entity, which keeps its policy sets from being grouped.
EMBARGO = (
    "embargo",
    """
    @id("embargoed-dataset")
    forbid (principal, action, resource == Sovereign::Dataset::"nor/embargoed")
    unless { principal.nationality == "NOR" };
    """,
)


def build_bundle(*, embargo: bool = False) -> PolicyBundle:
    rules = {}
    for nation, policies in NATION_RULES.items():
        if embargo and nation == "NOR":
            policies = [*policies, EMBARGO]
        for _, text in policies:
            problems = problems_with_nation_rules(nation, text)
            if problems:
                raise SystemExit(f"{nation}'s benchmark rules are refused: {problems}")
        rules[nation] = nation_bundle_rules(nation, policies)
    return PolicyBundle.load().with_nation_rules(rules)


def build_catalogue(rng: random.Random) -> list[Resource]:
    owners, weights = list(NATIONS), list(NATIONS.values())
    resources = []
    for kind, count in ((ResourceKind.model, 100), (ResourceKind.dataset, 999)):
        for index in range(count):
            owner = rng.choices(owners, weights)[0]
            level = rng.choices(LEVELS, LEVEL_WEIGHTS)[0]
            spread = rng.random()
            if spread < 0.25:
                releasable: list[str] = []  # owner only
            elif spread < 0.7:
                releasable = ["NATO"]
            else:
                releasable = [n for n in rng.choice(GROUPINGS) if n != owner]
            compartments = ["ATOMAL"] if level >= Classification.NATO_SECRET and rng.random() < 0.3 else []
            denied = [rng.choice([n for n in owners if n != owner])] if rng.random() < 0.03 else []
            markings = Markings(
                owner=owner,
                classification=level,
                releasableTo=releasable,
                compartments=compartments,
                deniedNations=denied,
            )
            name = f"{owner.lower()}/{kind.value.lower()}-{index:04d}"
            resources.append(Resource(kind=kind, name=name, markings=markings))
    # The 1,000th dataset: the one NOR's embargo rule names (measured separately).
    embargoed = Markings(owner="NOR", classification="NATO RESTRICTED", releasableTo=["NATO"])
    resources.append(Resource(kind=ResourceKind.dataset, name="nor/embargoed", markings=embargoed))
    return resources


def build_tenants(rng: random.Random) -> list[MatrixTenant]:
    clearances = rng.choices(
        [Classification.COSMIC_TOP_SECRET, Classification.NATO_SECRET, Classification.NATO_CONFIDENTIAL],
        [6, 3, 1],
        k=len(NATIONS),
    )
    return [
        MatrixTenant(nation, clearance, suspended=nation == "MNE")
        for nation, clearance in zip(NATIONS, clearances, strict=True)
    ]


def random_principal(rng: random.Random, index: int) -> Principal:
    nation = rng.choice(list(NATIONS))
    return Principal(
        sub=f"bench-user-{index}",
        nationality=nation,
        clearance=rng.choice(LEVELS),
        compartments=["ATOMAL"] if rng.random() < 0.3 else [],
        groups=["liaison"] if rng.random() < 0.1 else [],
        issuerNation=nation,
    )


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": ordered[len(ordered) // 2] * 1e6,
        "p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6,
        "mean_us": statistics.fmean(ordered) * 1e6,
    }


def measure_decisions(
    bundle: PolicyBundle, resources: list[Resource], count: int, rng: random.Random, console: Console
) -> dict[str, Any]:
    catalogue = {r.name: r for r in resources}
    engine = PolicyEngine(bundle, catalogue)
    warm = Principal(sub="warm-up", nationality="FRA", clearance="NATO SECRET", issuerNation="FRA")
    for resource in resources:  # every resource's entities parsed once; not measured
        engine.decide(warm, ACTION_FOR_KIND[resource.kind], [resource.name])
    calls = [(random_principal(rng, i), rng.choice(resources)) for i in range(count)]
    console.print(f"decide(): {count} uncached calls (a new principal each)…")
    uncached = []
    for user, resource in calls:
        start = time.perf_counter()
        engine.decide(user, ACTION_FOR_KIND[resource.kind], [resource.name])
        uncached.append(time.perf_counter() - start)
    console.print(f"decide(): the same {count} calls again, cached…")
    cached = []
    for user, resource in calls:
        start = time.perf_counter()
        engine.decide(user, ACTION_FOR_KIND[resource.kind], [resource.name])
        cached.append(time.perf_counter() - start)
    console.print(
        f"baseline: {count} bare cedarpy.is_authorized calls (same policies and entities, no schema)…"
    )
    prepared = []
    for user, resource in calls:
        policies, _ = engine.policy_set_for({user.nationality, resource.markings.owner})
        request = {
            "principal": principal_uid(user),
            "action": action_uid(ACTION_FOR_KIND[resource.kind]),
            "resource": resource_uid(resource),
            "context": {},
        }
        prepared.append((request, policies, [principal_entity(user), resource_entity(resource)]))
    bare = []
    for request, policies, entities in prepared:
        start = time.perf_counter()
        cedarpy.is_authorized(request, policies, entities)
        bare.append(time.perf_counter() - start)
    return {
        "calls": count,
        "uncached": percentiles(uncached),
        "cached": percentiles(cached),
        "baseline_bare_cedarpy": percentiles(bare),
    }


def measure_matrix(
    bundle: PolicyBundle,
    tenants: list[MatrixTenant],
    resources: list[Resource],
    baseline_tenants: int,
    runs: int,
    console: Console,
) -> dict[str, Any]:
    compartments = ["ATOMAL"]
    cells = sum(len(clearance_levels(t)) for t in tenants) * len(resources)
    times = []
    fast = []
    for run in range(runs):
        console.print(f"access matrix, run {run + 1}/{runs} ({cells} cells, a new engine each run)…")
        engine = PolicyEngine(bundle)
        start = time.perf_counter()
        fast = access_matrix(engine, tenants, resources, compartments)
        times.append(time.perf_counter() - start)
    requests = _count_cedar_requests(bundle, tenants, resources, compartments)
    sample = tenants[:baseline_tenants]
    sample_cells = sum(len(clearance_levels(t)) for t in sample) * len(resources)
    console.print(
        f"baseline: exhaustive matrix for {len(sample)} tenants ({sample_cells} cells, one decide each)…"
    )
    engine = PolicyEngine(bundle)
    start = time.perf_counter()
    slow = exhaustive_matrix(engine, sample, resources, compartments)
    slow_seconds = time.perf_counter() - start
    estimated = len(sample) < len(tenants)
    baseline_seconds = slow_seconds * cells / sample_cells if estimated else slow_seconds
    embargo = build_bundle(embargo=True)
    embargo_times = []
    for run in range(runs):
        console.print(f"access matrix with NOR's embargo rule (names a dataset), run {run + 1}/{runs}…")
        engine = PolicyEngine(embargo)
        start = time.perf_counter()
        with_embargo = access_matrix(engine, tenants, resources, compartments)
        embargo_times.append(time.perf_counter() - start)
    check = tenants[:EMBARGO_CHECK_TENANTS]
    check_cells = sum(len(clearance_levels(t)) for t in check) * len(resources)
    console.print(f"  checking it against the exhaustive matrix for {len(check)} tenants…")
    embargo_equal = with_embargo[:check_cells] == exhaustive_matrix(
        PolicyEngine(embargo), check, resources, compartments
    )
    return {
        "embargo_seconds": statistics.median(embargo_times),
        "embargo_cedar_requests": _count_cedar_requests(embargo, tenants, resources, compartments),
        "embargo_equals_exhaustive_for_tenants": len(check) if embargo_equal else 0,
        "tenants": len(tenants),
        "resources": len(resources),
        "cells": cells,
        "allowed_cells": sum(c.allowed for c in fast),
        "cedar_requests": requests,
        "seconds": statistics.median(times),
        "seconds_runs": times,
        "baseline_exhaustive_seconds": baseline_seconds,
        "baseline_estimated_from_cells": sample_cells if estimated else None,
        "equals_exhaustive": fast[:sample_cells] == slow,
    }


def _count_cedar_requests(
    bundle: PolicyBundle, tenants: list[MatrixTenant], resources: list[Resource], compartments: list[str]
) -> int:
    """Requests the matrix sends to Cedar (a separate, unmeasured run with a counting wrapper)."""
    real = cedarpy.is_authorized_batch
    count = 0

    def counting(requests: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        nonlocal count
        count += len(requests)
        return real(requests, *args, **kwargs)

    cedarpy.is_authorized_batch = counting
    try:
        access_matrix(PolicyEngine(bundle), tenants, resources, compartments)
    finally:
        cedarpy.is_authorized_batch = real
    return count


def run(decisions: int, baseline_tenants: int, matrix_runs: int, console: Console) -> dict[str, Any]:
    rng = random.Random(SEED)
    bundle = build_bundle()
    resources = build_catalogue(rng)
    tenants = build_tenants(rng)
    console.print(
        f"catalogue: {len(tenants)} nations, {sum(r.kind is ResourceKind.model for r in resources)} models, "
        f"{sum(r.kind is ResourceKind.dataset for r in resources)} datasets; rules of "
        f"{', '.join(sorted(NATION_RULES))}"
    )
    results: dict[str, Any] = {"machine": machine_description(), "seed": SEED, "goals": GOALS}
    results["decisions"] = measure_decisions(bundle, resources, decisions, rng, console)
    results["matrix"] = measure_matrix(bundle, tenants, resources, baseline_tenants, matrix_runs, console)
    d, m = results["decisions"], results["matrix"]
    bare = d["baseline_bare_cedarpy"]
    results["ratios"] = {
        "uncached_p50_to_bare_p50": d["uncached"]["p50_us"] / bare["p50_us"],
        "uncached_p99_to_bare_p99": d["uncached"]["p99_us"] / bare["p99_us"],
        "cached_p50_to_bare_p50": d["cached"]["p50_us"] / bare["p50_us"],
        "cached_p99_to_bare_p99": d["cached"]["p99_us"] / bare["p99_us"],
        "matrix_to_exhaustive": m["seconds"] / m["baseline_exhaustive_seconds"],
    }
    return results


def results_table(results: dict[str, Any]) -> Table:
    d, m, r = results["decisions"], results["matrix"], results["ratios"]
    bare = d["baseline_bare_cedarpy"]
    table = Table("measure", "value", "goal", "ratio to baseline", title="Policy decisions and access matrix")
    table.add_row(
        "baseline: bare cedarpy.is_authorized p50 / p99",
        f"{bare['p50_us']:.1f} / {bare['p99_us']:.1f} µs",
        "",
        "1",
    )
    table.add_row(
        f"decide() uncached p50 / p99 ({d['calls']} calls)",
        f"{d['uncached']['p50_us']:.1f} / {d['uncached']['p99_us']:.1f} µs",
        _goal(f"p99 <= {GOALS['uncached_p99_us']:g} µs", d["uncached"]["p99_us"] <= GOALS["uncached_p99_us"]),
        f"{r['uncached_p50_to_bare_p50']:.2f} / {r['uncached_p99_to_bare_p99']:.2f}",
    )
    table.add_row(
        "decide() cached p50 / p99",
        f"{d['cached']['p50_us']:.2f} / {d['cached']['p99_us']:.2f} µs",
        _goal(f"p99 <= {GOALS['cached_p99_us']:g} µs", d["cached"]["p99_us"] <= GOALS["cached_p99_us"]),
        f"{r['cached_p50_to_bare_p50']:.3f} / {r['cached_p99_to_bare_p99']:.3f}",
    )
    estimated = m["baseline_estimated_from_cells"]
    table.add_row(
        f"baseline: exhaustive matrix, one decide() per cell{' (estimated)' if estimated else ''}",
        f"{m['baseline_exhaustive_seconds']:.2f} s",
        "",
        "1",
    )
    table.add_row(
        f"access matrix ({m['tenants']} tenants, {m['resources']} resources, {m['cells']} cells)",
        f"{m['seconds']:.3f} s",
        _goal(f"<= {GOALS['matrix_s']:g} s", m["seconds"] <= GOALS["matrix_s"]),
        f"{r['matrix_to_exhaustive']:.3f}",
    )
    table.add_row("  Cedar requests evaluated for it", str(m["cedar_requests"]), "", "")
    table.add_row("  cells allowed", str(m["allowed_cells"]), "", "")
    table.add_row("  equals the exhaustive matrix", "yes" if m["equals_exhaustive"] else "NO", "", "")
    table.add_row(
        "access matrix, NOR's rules also naming a dataset",
        f"{m['embargo_seconds']:.3f} s",
        _goal(f"<= {GOALS['matrix_s']:g} s", m["embargo_seconds"] <= GOALS["matrix_s"]),
        f"{m['embargo_seconds'] / m['baseline_exhaustive_seconds']:.3f}",
    )
    table.add_row("  Cedar requests evaluated for it", str(m["embargo_cedar_requests"]), "", "")
    checked = m["embargo_equals_exhaustive_for_tenants"]
    table.add_row(
        f"  equals the exhaustive matrix (first {EMBARGO_CHECK_TENANTS} tenants)",
        "yes" if checked else "NO",
        "",
        "",
    )
    return table


def _goal(goal: str, met: bool) -> str:
    return f"{goal} ({'met' if met else 'not met'})"


def markdown_section(results: dict[str, Any]) -> str:
    machine, m = results["machine"], results["matrix"]
    lines = [
        f"Run on {machine['date']}: {machine['cpu_model']}, {machine['nproc']} CPUs, "
        f"{machine['memory_gib']:.1f} GiB memory, Python {machine['python']}, cedarpy {_cedarpy_version()}.",
        "Command: `make bench` (`.venv/bin/python bench/policy_decisions.py`).",
        "",
    ]
    lines += markdown_table(results_table(results))
    estimated = m["baseline_estimated_from_cells"]
    lines += [
        "",
        f"Seeded catalogue (seed {results['seed']}): 32 NATO nations, 100 models and 1,000 datasets "
        "(all five levels; releasable to the owner only, NATO or a grouping; some ATOMAL; a few denied "
        "nations); FRA, USA, EST and NOR have rules of their own, and the last matrix adds a NOR rule naming "
        "a dataset, so every policy set with NOR's rules is evaluated resource by resource. Uncached: a new "
        "principal on every call (decision cache misses; the resources' parsed entities are warm); cached: "
        "the same calls again. "
        "Baseline for decisions: a bare `cedarpy.is_authorized` with the same pre-parsed policies and the "
        "entities as a list, without schema validation (the engine validates requests and entities against "
        "the schema). Matrix: users holding ATOMAL, a new engine per run (median of "
        f"{len(m['seconds_runs'])}); baseline: `exhaustive_matrix` (one `decide()` per cell, new engine)"
        + (f", timed on {estimated} cells and scaled to all." if estimated else ", timed in full.")
        + " Ratios: measured value / baseline of the same run.",
    ]
    return "\n".join(lines)


def _cedarpy_version() -> str:
    from importlib.metadata import version

    return version("cedarpy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000, help="decide() calls measured, each way")
    parser.add_argument(
        "--baseline-tenants",
        type=int,
        default=len(NATIONS),
        help="tenants the exhaustive baseline matrix is timed on (fewer: estimated for all by cell count)",
    )
    parser.add_argument("--matrix-runs", type=int, default=3)
    parser.add_argument("--output", choices=["text", "json"], default="text")
    parser.add_argument("--benchmarks-file", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args(argv)
    console = Console(stderr=args.output == "json")
    results = run(args.decisions, args.baseline_tenants, args.matrix_runs, console)
    publish_results(
        args.benchmarks_file,
        SECTION,
        markdown_section(results),
        results,
        results_table(results),
        args.output,
        console,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
