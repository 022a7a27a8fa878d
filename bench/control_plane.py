"""Benchmark: what `sovereign up` costs, against a baseline revision of this repository, in one run.

`sovereign up --no-examples --no-ray --trace-viewer none` starts the control plane (the Kubernetes API and
the Vault), installs the CRDs, prepares Vault, applies the operator's identity and starts the operator. It
is timed from a new state dir ("first up": CA, Vault initialization), then after `sovereign down` on the
same state dir ("up again": reload and unseal), `--runs` times each, for the checkout (this tree) and for
`--baseline-rev` (default: the commit before identity was enforced: an in-memory Kubernetes API without
authentication, and the home-made in-memory Vault), run from a `git worktree` of that revision with the same
virtual environment. Writes its section of BENCHMARKS.md (replaced on each run) and prints the results.

`--suspension` measures instead how long suspending a nation takes to refuse its users: `sovereign up
--no-examples` (with Ray: the `local-ray` runtime), a Tenant LUX made Ready by the operator, the tiny Llama
applied as `lux/analyst` and answering its analyst; then, `--runs` times, `kubectl patch` sets
`spec.suspended: true` and the analyst's chat completion is repeated until it is refused (403), then
`suspended: false` until it is answered again. The path: the API server's watch event → the operator (a Tenant
event wakes its serving pass) → the gateways' configuration PUT to Ray Serve → each gateway replica's
`reconfigure` → the policy's `markings/limit-suspended-tenant`. Its own section of BENCHMARKS.md.

    .venv/bin/python bench/control_plane.py [--runs 3] [--baseline-rev bc4b098] [--output json]
    .venv/bin/python bench/control_plane.py --suspension [--runs 3] [--output json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from bench_support import machine_description, machine_line, publish_results
from rich.console import Console
from rich.table import Table
from sovereign_devstack.tiny_model import build_tiny_llama

from sovereign.cli.envfile import read_env_file

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
SECTION = "Control plane start (`sovereign up`)"
# The last commit before the control plane enforced identity (TLS, authentication, RBAC, OpenBao): the
# baseline this benchmark compares `sovereign up` with.
DEFAULT_BASELINE = "bc4b098"
UP = ["up", "--no-examples", "--no-ray", "--trace-viewer", "none", "--output", "json"]
SUSPENSION_SECTION = "Suspension to refusal"
UP_WITH_RAY = ["up", "--no-examples", "--trace-viewer", "none", "--output", "json"]
SUSPENSION_LIMIT = 5.0  # seconds: issue 15's bound on every endpoint

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


def _kubectl(env: dict[str, str], *args: str, input: str | None = None) -> str:
    result = subprocess.run(
        ["kubectl", *args], input=input, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr[-2000:]}")
    return result.stdout


def _until(probe: Any, what: str, timeout: float, interval: float = 0.05) -> float:
    """Seconds until `probe()` is true (raises after `timeout`)."""
    started = time.monotonic()
    while not probe():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)
    return time.monotonic() - started


def _condition(env: dict[str, str], kind: str, name: str, condition: str, namespace: str = "") -> bool:
    scope = ["-n", namespace] if namespace else []
    body = json.loads(_kubectl(env, "get", kind, name, *scope, "-o", "json"))
    found = [c for c in (body.get("status") or {}).get("conditions") or [] if c.get("type") == condition]
    return bool(found) and found[0].get("status") == "True"


def measure_suspension(runs: int) -> dict[str, list[float]]:
    """Seconds from `kubectl patch ... suspended: true` to the analyst's first 403, and back to a 200."""
    with tempfile.TemporaryDirectory(prefix="sovereign-bench-suspension-") as scratch:
        state_dir, models = Path(scratch) / "state", Path(scratch) / "tiny-llama"
        try:
            console.log("sovereign up (with Ray)")
            _sovereign(ROOT, state_dir, *UP_WITH_RAY)
            env = {**os.environ, **read_env_file(state_dir / "env")}
            tenant = {
                "apiVersion": "sovereign.ai/v1alpha1",
                "kind": "Tenant",
                "metadata": {"name": "lux"},
                "spec": {"nation": "LUX", "displayName": "Luxembourg", "clearance": "NATO SECRET"},
            }
            _kubectl(env, "apply", "-f", "-", input=yaml.safe_dump(tenant))
            _until(lambda: _condition(env, "tenant", "lux", "Ready"), "Tenant lux Ready", 120)
            model = {
                "apiVersion": "sovereign.ai/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": "lux-analyst", "namespace": "tenant-lux"},
                "spec": {
                    "model": "analyst",
                    "source": str(models),
                    "sha256": build_tiny_llama(models),
                    "engine": "transformers",
                    "replicas": 1,
                    "resources": {"cpu": "1", "memory": "1Gi"},
                    "maxTokens": 1,
                    "markings": {"classification": "NATO UNCLASSIFIED"},
                },
            }
            _kubectl(env, "apply", "-f", "-", input=yaml.safe_dump(model))
            _until(
                lambda: _condition(env, "modeldeployment", "lux-analyst", "Ready", "tenant-lux"), "model", 300
            )
            issued = subprocess.run(
                [sys.executable, "-m", "sovereign.cli.main", "token", "issue", "--nation", "LUX"]
                + ["--clearance", "NATO SECRET"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            url = f"{env['SOVEREIGN_GATEWAY_URL']}/lux/v1/chat/completions"
            ask = {"model": "lux/analyst", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
            headers = {"Authorization": f"Bearer {issued.stdout.strip()}"}
            with httpx.Client(timeout=30) as client:

                def status() -> int:
                    return client.post(url, json=ask, headers=headers).status_code

                _until(lambda: status() == 200, "the analyst answered", 120)
                refused, answered = [], []
                for run in range(runs):
                    console.log(f"suspension: run {run + 1}/{runs}")
                    for suspended, seconds in ((True, refused), (False, answered)):
                        patch = json.dumps({"spec": {"suspended": suspended}})
                        started = time.monotonic()
                        _kubectl(env, "patch", "tenant", "lux", "--type", "merge", "-p", patch)
                        wanted = 403 if suspended else 200
                        _until(lambda wanted=wanted: status() == wanted, f"HTTP {wanted}", 60)
                        seconds.append(time.monotonic() - started)
        finally:
            subprocess.run(
                [sys.executable, "-m", "sovereign.cli.main", "down", "--state-dir", str(state_dir)],
                cwd=ROOT,
                capture_output=True,
                timeout=180,
            )
    return {"refused": refused, "answered": answered}


def suspension_main(runs: int, output: str) -> None:
    machine = machine_description()
    measured = measure_suspension(runs)
    results: dict[str, Any] = {"machine": machine, "runs": runs, "limitSeconds": SUSPENSION_LIMIT, **measured}
    rows = [
        ("suspended: true → the analyst's first 403", measured["refused"]),
        ("suspended: false → its first 200 again", measured["answered"]),
    ]
    markdown = "\n".join(
        [
            machine_line(machine, f"{runs} runs"),
            "Command: `make bench-suspension` (`.venv/bin/python bench/control_plane.py --suspension`: "
            "`sovereign up` with Ray, the devstack's operator settings).",
            "",
            "| from `kubectl patch tenant lux` | median | max | each run |",
            "|---|---|---|---|",
            *[
                f"| {name} | {statistics.median(v):.2f} s | {max(v):.2f} s | "
                f"{', '.join(f'{x:.2f}' for x in v)} |"
                for name, v in rows
            ],
            "",
            f"Issue 15 asks for at most {SUSPENSION_LIMIT:g} s on every endpoint. The path: the API server's "
            "watch event, the operator (a Tenant event wakes its serving pass at once), the gateways' "
            "configuration PUT to Ray Serve, `reconfigure` on each gateway replica (a new `Access`: no token "
            "cached from before), then `markings/limit-suspended-tenant` denies every request of the nation.",
        ]
    )
    table = Table("from kubectl patch", "median", "max")
    for name, values in rows:
        table.add_row(name, f"{statistics.median(values):.2f} s", f"{max(values):.2f} s")
    publish_results(BENCHMARKS_MD, SUSPENSION_SECTION, markdown, results, table, output, console)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline-rev", default=DEFAULT_BASELINE)
    parser.add_argument("--output", choices=["table", "json"], default="table")
    parser.add_argument("--suspension", action="store_true", help="measure suspension to refusal instead")
    args = parser.parse_args()
    if args.suspension:
        suspension_main(args.runs, args.output)
        return

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
