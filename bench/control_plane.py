"""Benchmark: what `sovereign up` costs, against a baseline revision of this repository, in one run.

`sovereign up --no-examples --no-ray --trace-viewer none` starts the control plane (the Kubernetes API and
the Vault), installs the CRDs, prepares Vault, applies the operator's identity and starts the operator. It
is timed from a new state dir ("first up": CA, Vault initialization), then after `sovereign down` on the
same state dir ("up again": reload and unseal), `--runs` times each, for the checkout (this tree) and for
`--baseline-rev` (default: the commit before identity was enforced: an in-memory Kubernetes API without
authentication, and the home-made in-memory Vault), run from a `git worktree` of that revision with the same
virtual environment. Writes its section of BENCHMARKS.md (replaced on each run) and prints the results.

    .venv/bin/python bench/control_plane.py [--runs 3] [--baseline-rev bc4b098] [--output json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_support import machine_description, machine_line, publish_results
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
SECTION = "Control plane start (`sovereign up`)"
# The last commit before the control plane enforced identity (TLS, authentication, RBAC, OpenBao): the
# baseline this benchmark compares `sovereign up` with.
DEFAULT_BASELINE = "bc4b098"
UP = ["up", "--no-examples", "--no-ray", "--trace-viewer", "none", "--output", "json"]

console = Console(stderr=True)


def _sovereign(tree: Path, state_dir: Path, *args: str) -> float:
    """Run the CLI of `tree` (its own packages first on the path) and return the seconds it took."""
    paths = [tree, tree / "operator", tree / "serving", tree / "devstack"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in paths)}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "sovereign.cli.main", *args, "--state-dir", str(state_dir)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"sovereign {' '.join(args)} failed in {tree}:\n{result.stderr[-3000:]}")
    return elapsed


def measure(tree: Path, runs: int, label: str) -> dict[str, list[float]]:
    first, again = [], []
    for run in range(runs):
        with tempfile.TemporaryDirectory(prefix="sovereign-bench-up-") as state:
            state_dir = Path(state)
            try:
                console.log(f"{label}: run {run + 1}/{runs}, first up")
                first.append(_sovereign(tree, state_dir, *UP))
                _sovereign(tree, state_dir, "down")
                console.log(f"{label}: run {run + 1}/{runs}, up again on the same state dir")
                again.append(_sovereign(tree, state_dir, *UP))
            finally:
                subprocess.run(
                    [sys.executable, "-m", "sovereign.cli.main", "down", "--state-dir", str(state_dir)],
                    cwd=ROOT,
                    capture_output=True,
                    timeout=120,
                    env={
                        **os.environ,
                        "PYTHONPATH": os.pathsep.join(
                            str(p) for p in (tree, tree / "operator", tree / "serving", tree / "devstack")
                        ),
                    },
                )
    return {"first": first, "again": again}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline-rev", default=DEFAULT_BASELINE)
    parser.add_argument("--output", choices=["table", "json"], default="table")
    args = parser.parse_args()

    machine = machine_description()
    with tempfile.TemporaryDirectory(prefix="sovereign-baseline-") as scratch:
        baseline_tree = Path(scratch) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(baseline_tree), args.baseline_rev],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            baseline = measure(baseline_tree, args.runs, f"baseline {args.baseline_rev}")
            current = measure(ROOT, args.runs, "this tree")
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(baseline_tree)], cwd=ROOT, capture_output=True
            )

    def median(values: list[float]) -> float:
        return statistics.median(values)

    results: dict[str, Any] = {
        "machine": machine,
        "runs": args.runs,
        "baselineRev": args.baseline_rev,
        "baseline": {key: median(values) for key, values in baseline.items()},
        "current": {key: median(values) for key, values in current.items()},
    }
    ratio = {key: results["current"][key] / results["baseline"][key] for key in ("first", "again")}
    results["ratio"] = ratio
    rows = [
        (
            "first up (new state dir)",
            results["baseline"]["first"],
            results["current"]["first"],
            ratio["first"],
        ),
        ("up again after down", results["baseline"]["again"], results["current"]["again"], ratio["again"]),
    ]
    markdown = "\n".join(
        [
            machine_line(machine, f"median of {args.runs} runs each"),
            "Command: `make bench-control-plane` (`.venv/bin/python bench/control_plane.py`).",
            "",
            f"| `sovereign up --no-examples --no-ray --trace-viewer none` | baseline ({args.baseline_rev}) "
            "| this tree | ratio |",
            "|---|---|---|---|",
            *[f"| {name} | {base:.2f} s | {now:.2f} s | {r:.2f} |" for name, base, now, r in rows],
            "",
            f"The baseline is revision {args.baseline_rev}, run from a git worktree with the same virtual "
            "environment: an in-memory Kubernetes API over HTTP that authenticated nobody and the home-made "
            "in-memory Vault. This tree: the API server over TLS with authentication, RBAC and its objects "
            "fsynced to disk, the real OpenBao (raft storage, TLS, initialized and unsealed by `up`), the "
            "token reviewer and the operator's chart identity applied before the operator starts.",
        ]
    )
    table = Table("measure", f"baseline ({args.baseline_rev})", "this tree", "ratio")
    for name, base, now, r in rows:
        table.add_row(name, f"{base:.2f} s", f"{now:.2f} s", f"{r:.2f}")
    publish_results(BENCHMARKS_MD, SECTION, markdown, results, table, args.output, console)


if __name__ == "__main__":
    main()
