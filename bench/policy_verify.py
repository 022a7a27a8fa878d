"""Benchmark: proving the policy bundle's invariants at NATO scale (`sovereign policy verify`; not a test).

The catalogue, tenants and bundle of bench/policy_decisions.py (seeded: 32 NATO nations, 100 models and
1,000 datasets, rules of FRA, USA, EST and NOR). Measures, in one run, each a median of `--runs`, a new
engine each run:
- `verify_bundle` on the whole catalogue: every principal class against every resource, the four
  invariants (what `sovereign policy verify` and the operator's publication run);
- `verify_bundle(nation=FRA)`: only the cells FRA's rules can change (a change of one nation's rules);
- the same two with NOR's embargo rule (it names a dataset, so its policy sets are not grouped);
- baseline for each bundle: one `access_matrix` of the same catalogue (every tenant and level, users
  holding ATOMAL), the work of one class per row; the ratio says what enumerating the classes costs.
Writes the results into BENCHMARKS.md (its own section, replaced on each run) and prints them.

    .venv/bin/python bench/policy_verify.py [--runs 3] [--output json]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_support import machine_description, machine_line, markdown_table, publish_results
from policy_decisions import BENCHMARKS_MD, NATION_RULES, SEED, build_bundle, build_catalogue, build_tenants
from rich.console import Console
from rich.table import Table

from sovereign.domain.markings import Resource, ResourceKind
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.engine import PolicyEngine
from sovereign.policy.matrix import MatrixTenant, access_matrix, clearance_levels
from sovereign.policy.verify import Verification, verify_bundle

SECTION = "Policy verification"
GOALS = {"verify_s": 5.0}  # "a few seconds" for the whole catalogue
REGION_NATION = "FRA"


def timed(runs: int, label: str, console: Console, work: Callable[[], Any]) -> tuple[list[float], Any]:
    times, result = [], None
    for run in range(runs):
        console.print(f"{label}, run {run + 1}/{runs}…")
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return times, result


def summary(verification: Verification) -> dict[str, Any]:
    return {
        "ok": verification.ok,
        "first_problem": verification.first_problem(),
        "principal_classes": verification.classes,
        "cells": verification.cells,
        "weakened": list(verification.weakened),
        "invariants": {
            r.invariant.value: {"checked": r.checked, "violations": r.violations}
            for r in verification.results
        },
    }


def measure_bundle(
    name: str,
    bundle: PolicyBundle,
    tenants: list[MatrixTenant],
    resources: list[Resource],
    runs: int,
    console: Console,
) -> dict[str, Any]:
    verify_times, whole = timed(
        runs, f"{name}: verify, every class", console, lambda: verify_bundle(bundle, tenants, resources)
    )
    region_times, region = timed(
        runs,
        f"{name}: verify, {REGION_NATION}'s region",
        console,
        lambda: verify_bundle(bundle, tenants, resources, nation=REGION_NATION),
    )
    matrix_times, cells = timed(
        runs,
        f"{name}: baseline, one access matrix",
        console,
        lambda: access_matrix(PolicyEngine(bundle), tenants, resources, ["ATOMAL"]),
    )
    verify_s, region_s, matrix_s = (statistics.median(t) for t in (verify_times, region_times, matrix_times))
    return {
        "verify_seconds": verify_s,
        "verify_seconds_runs": verify_times,
        "region_seconds": region_s,
        "region_seconds_runs": region_times,
        "baseline_matrix_seconds": matrix_s,
        "baseline_matrix_seconds_runs": matrix_times,
        "baseline_matrix_cells": len(cells),
        "verify_to_matrix": verify_s / matrix_s,
        "region_to_matrix": region_s / matrix_s,
        "verification": summary(whole),
        "region": summary(region),
    }


def run(runs: int, tenant_count: int, resource_count: int, console: Console) -> dict[str, Any]:
    rng = random.Random(SEED)
    resources = build_catalogue(rng)
    tenants = build_tenants(rng)
    if tenant_count < len(tenants):  # a smaller run keeps the nations with rules, and both kinds
        tenants = sorted(tenants, key=lambda t: t.nation not in NATION_RULES)[:tenant_count]
    if resource_count < len(resources):  # every k-th resource, and the dataset NOR's embargo names
        embargoed = resources[-1]
        resources = resources[:: max(1, len(resources) // resource_count)][: resource_count - 1] + [embargoed]
    console.print(
        f"catalogue: {len(tenants)} nations, {sum(r.kind is ResourceKind.model for r in resources)} models, "
        f"{sum(r.kind is ResourceKind.dataset for r in resources)} datasets; rules of "
        f"{', '.join(sorted(NATION_RULES))}"
    )
    results: dict[str, Any] = {
        "machine": machine_description(),
        "seed": SEED,
        "goals": GOALS,
        "tenants": len(tenants),
        "resources": len(resources),
        "rows": sum(len(clearance_levels(t)) for t in tenants),
    }
    results["bundle"] = measure_bundle("bundle", build_bundle(), tenants, resources, runs, console)
    results["embargo"] = measure_bundle(
        "with NOR's embargo", build_bundle(embargo=True), tenants, resources, runs, console
    )
    return results


def results_table(results: dict[str, Any]) -> Table:
    table = Table("measure", "value", "goal", "ratio to baseline", title="Policy verification")
    for key, label in (("bundle", "bundle"), ("embargo", "bundle with NOR's embargo rule, naming a dataset")):
        b = results[key]
        v, region = b["verification"], b["region"]
        table.add_row(
            f"baseline: one access matrix, {label} ({b['baseline_matrix_cells']} cells)",
            f"{b['baseline_matrix_seconds']:.3f} s",
            "",
            "1",
        )
        table.add_row(
            f"verify, every class ({v['principal_classes']} classes, {v['cells']} cells)",
            f"{b['verify_seconds']:.3f} s",
            _goal(f"<= {GOALS['verify_s']:g} s", b["verify_seconds"] <= GOALS["verify_s"]),
            f"{b['verify_to_matrix']:.2f}",
        )
        table.add_row("  every invariant proven", _proven(v), "", "")
        table.add_row(
            f"verify, {REGION_NATION}'s region only ({region['cells']} cells)",
            f"{b['region_seconds']:.3f} s",
            "",
            f"{b['region_to_matrix']:.2f}",
        )
        table.add_row("  every invariant proven", _proven(region), "", "")
    return table


def _proven(verification: dict[str, Any]) -> str:
    return "yes" if verification["ok"] else f"NO: {verification['first_problem']}"


def _goal(goal: str, met: bool) -> str:
    return f"{goal} ({'met' if met else 'not met'})"


def markdown_section(results: dict[str, Any]) -> str:
    from importlib.metadata import version

    lines = [
        machine_line(results["machine"], f"cedarpy {version('cedarpy')}"),
        "Command: `make bench-policy-verify` (`.venv/bin/python bench/policy_verify.py`).",
        "",
    ]
    lines += markdown_table(results_table(results))
    runs = len(results["bundle"]["verify_seconds_runs"])
    lines += [
        "",
        f"The catalogue of `bench/policy_decisions.py` (seed {results['seed']}): {results['tenants']} "
        f"nations ({results['rows']} tenant × clearance rows), {results['resources']} resources; FRA, USA, "
        "EST and NOR have rules of their own (FRA's name the group `liaison`), and the second bundle adds a "
        "NOR rule naming a dataset. Verify: `verify_bundle`, every principal class (nation × level × the "
        "compartment and group sets that can change a decision) against every resource, the four "
        "invariants; the region: `verify_bundle(nation=FRA)`, the cells FRA's rules can change. Baseline: "
        "one `access_matrix` of the same catalogue and bundle (one class per row: users holding ATOMAL). "
        f"Medians of {runs} runs, a new engine each run. Ratios: measured value / baseline of the same run.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each measure (the median is kept)")
    parser.add_argument(
        "--tenants", type=int, default=32, help="fewer: a smaller run (nations with rules first)"
    )
    parser.add_argument(
        "--resources", type=int, default=1100, help="fewer: every k-th resource of the catalogue"
    )
    parser.add_argument("--output", choices=["text", "json"], default="text")
    parser.add_argument("--benchmarks-file", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args(argv)
    console = Console(stderr=args.output == "json")
    results = run(args.runs, args.tenants, args.resources, console)
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
