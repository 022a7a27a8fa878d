"""Benchmark: many Tenants applied at once on the devstack (issue 3, "Benchmark"; not a timed test).

Starts its own devstack and operator in a temporary state dir, then measures:
- baseline: one Tenant alone, seconds until Ready and until offboarded;
- N Tenants (default 32, distinct real ISO 3166-1 alpha-3 codes) created at once: seconds until all Ready,
  ratio to N x the baseline, Kubernetes API and Vault requests per Tenant (from the servers' request logs);
- steady state: write requests (not GET/LIST/WATCH/HEAD) in --steady-seconds afterwards (goal 0), by path;
- offboarding: seconds until all N are gone.
Writes the results into BENCHMARKS.md (its own section, replaced on each run) and prints them.

    .venv/bin/python bench/tenants_at_scale.py [--tenants 32] [--steady-seconds 60] [--output json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_support import (
    OperatorWatch,
    RequestLog,
    machine_description,
    markdown_table,
    platform_for_benchmark,
    publish_results,
)
from kubernetes.client import ApiClient, CustomObjectsApi
from rich.console import Console
from rich.table import Table
from sovereign_devstack.stack import stop_devstack

from sovereign.domain.markings import Classification
from sovereign.domain.nations import ISO_3166_ALPHA3

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
GROUP, VERSION, PLURAL = "sovereign.ai", "v1alpha1", "tenants"
WARM_UP_NATION = "ATA"  # Antarctica: never part of a measured set
BASELINE_NATION = "BVT"  # Bouvet Island
POLL_SECONDS = 0.05  # the resolution of the Ready times; these polls are subtracted from the counts
TIMEOUT_SECONDS = 600.0
OFFBOARD_TIMEOUT_SECONDS = 300.0  # past this, report how many are left instead of failing the run


class TenantDriver:
    """Creates, polls and deletes Tenants, counting its own API requests so they can be subtracted."""

    def __init__(self, api: ApiClient) -> None:
        self.custom = CustomObjectsApi(api)
        self.requests = 0

    def create(self, nation: str, index: int) -> None:
        clearance = list(Classification)[index % len(Classification)].value
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Tenant",
            "metadata": {"name": nation.lower()},
            "spec": {"nation": nation, "displayName": f"Benchmark {nation}", "clearance": clearance},
        }
        self.requests += 1
        self.custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)

    def delete(self, nation: str) -> None:
        self.requests += 1
        self.custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, nation.lower())

    def tenants(self) -> list[dict[str, Any]]:
        self.requests += 1
        return list(self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"])

    def wait(self, done: Any, what: str, timeout: float = TIMEOUT_SECONDS) -> float:
        """Seconds until `done(tenants)` holds (polling the list), or raise after `timeout`."""
        started = time.monotonic()
        while not done(self.tenants()):
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"not {what} after {timeout:.0f}s")
            time.sleep(POLL_SECONDS)
        return time.monotonic() - started


def _ready(tenant: dict[str, Any]) -> bool:
    conditions = (tenant.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def all_ready(nations: list[str]) -> Any:
    wanted = {n.lower() for n in nations}
    return lambda tenants: wanted <= {t["metadata"]["name"] for t in tenants if _ready(t)}


def all_gone(nations: list[str]) -> Any:
    wanted = {n.lower() for n in nations}
    return lambda tenants: not wanted & {t["metadata"]["name"] for t in tenants}


def measured_nations(count: int) -> list[str]:
    codes = [c for c in ISO_3166_ALPHA3 if c not in (WARM_UP_NATION, BASELINE_NATION)]
    if count > len(codes):
        raise SystemExit(f"--tenants {count}: only {len(codes)} nation codes exist")
    step = len(codes) // count  # spread over the alphabet rather than the first N
    return [codes[i * step] for i in range(count)]


def provision(driver: TenantDriver, logs: RequestLog, nations: list[str]) -> dict[str, Any]:
    mark = logs.mark()
    own = driver.requests
    started = time.monotonic()
    for index, nation in enumerate(nations):
        driver.create(nation, index)
    seconds = time.monotonic() - started + driver.wait(all_ready(nations), "all Ready")
    counts = logs.since(mark)
    kube = counts.kube_total - (driver.requests - own)  # the benchmark's own creates and polls
    return {
        "seconds": seconds,
        "kube_requests_per_tenant": kube / len(nations),
        "vault_requests_per_tenant": counts.vault_total / len(nations),
    }


def offboard(driver: TenantDriver, nations: list[str]) -> dict[str, Any]:
    """Seconds until all are gone; past OFFBOARD_TIMEOUT_SECONDS, how many are still there instead."""
    started = time.monotonic()
    for nation in nations:
        driver.delete(nation)
    try:
        driver.wait(all_gone(nations), "all offboarded", OFFBOARD_TIMEOUT_SECONDS)
    except TimeoutError:
        left = {t["metadata"]["name"] for t in driver.tenants()} & {n.lower() for n in nations}
        return {"seconds": None, "left_after_timeout": len(left)}
    return {"seconds": time.monotonic() - started, "left_after_timeout": 0}


def run(tenants: int, steady_seconds: float, console: Console) -> dict[str, Any]:
    state_dir = Path(tempfile.mkdtemp(prefix="sovereign-bench-"))
    nations = measured_nations(tenants)
    console.log(f"state dir and logs (kept): {state_dir}")
    try:
        platform = platform_for_benchmark(state_dir, console.log)
        logs = RequestLog(state_dir)
        operator = OperatorWatch(platform)
        driver = TenantDriver(platform.api)
        console.log("warm-up Tenant (not measured)")
        provision(driver, logs, [WARM_UP_NATION])
        offboard(driver, [WARM_UP_NATION])
        console.log("baseline: one Tenant alone")
        baseline = provision(driver, logs, [BASELINE_NATION])
        baseline["offboard"] = offboard(driver, [BASELINE_NATION])
        console.log(f"{tenants} Tenants at once")
        at_scale = provision(driver, logs, nations)
        console.log(f"steady state: {steady_seconds:.0f}s without changes")
        mark = logs.mark()
        time.sleep(steady_seconds)  # a benchmark observing idle time, not a test waiting for a result
        steady = logs.since(mark)
        at_scale["offboard"] = offboard(driver, nations)
        operator.check_alive()
        handler_failures = operator.handler_failures()
    finally:
        stop_devstack(state_dir)
    return {
        "machine": machine_description(),
        "tenants": tenants,
        "nations": nations,
        "baseline": baseline,
        "at_scale": at_scale,
        "ratio_to_serial_baseline": at_scale["seconds"] / (tenants * baseline["seconds"]),
        "operator_handler_failures": handler_failures,
        "steady_state": {
            "seconds": steady_seconds,
            "kube_writes": steady.kube_writes,
            "vault_writes": steady.vault_writes,
        },
    }


def results_table(results: dict[str, Any]) -> Table:
    n, base, scale = results["tenants"], results["baseline"], results["at_scale"]
    steady = results["steady_state"]
    table = Table("measure", "value", title=f"{n} Tenants at once on the devstack")
    table.add_row("baseline: 1 Tenant until Ready", f"{base['seconds']:.2f} s")
    table.add_row(f"{n} Tenants until all Ready", f"{scale['seconds']:.2f} s")
    table.add_row(f"ratio to {n} x baseline", f"{results['ratio_to_serial_baseline']:.2f}")
    table.add_row("Kubernetes API requests per Tenant", f"{scale['kube_requests_per_tenant']:.1f}")
    table.add_row("  (baseline, 1 Tenant)", f"{base['kube_requests_per_tenant']:.1f}")
    table.add_row("Vault requests per Tenant", f"{scale['vault_requests_per_tenant']:.1f}")
    table.add_row("  (baseline, 1 Tenant)", f"{base['vault_requests_per_tenant']:.1f}")
    for system in ("kube", "vault"):
        writes = steady[f"{system}_writes"]
        label = "Kubernetes API" if system == "kube" else "Vault"
        table.add_row(f"{label} writes in {steady['seconds']:.0f} s steady state", str(sum(writes.values())))
        if system == "kube":
            # Renewing the leader Lease is the HA design (every third of its duration), not a hot loop.
            other = sum(count for request, count in writes.items() if "/leases/" not in request)
            table.add_row("  other than leader Lease renewals (goal 0)", str(other))
        for request, count in sorted(writes.items(), key=lambda item: -item[1]):
            table.add_row(f"  {request}", str(count))
    table.add_row("baseline: 1 Tenant offboarded", _offboard_text(base["offboard"]))
    table.add_row(f"{n} Tenants offboarded", _offboard_text(scale["offboard"]))
    failures = results["operator_handler_failures"]
    table.add_row("operator handler failures (whole run)", str(sum(failures.values())))
    for failure, count in sorted(failures.items(), key=lambda item: -item[1]):
        table.add_row(f"  {failure}", str(count))
    return table


def _offboard_text(offboard: dict[str, Any]) -> str:
    if offboard["seconds"] is None:
        return f"{offboard['left_after_timeout']} left after {OFFBOARD_TIMEOUT_SECONDS:.0f} s"
    return f"{offboard['seconds']:.2f} s"


def markdown_section(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        f"Run on {machine['date']}: {machine['cpu_model']}, {machine['nproc']} CPUs, "
        f"{machine['memory_gib']:.1f} GiB memory, Python {machine['python']}.",
        "Command: `make bench` (`.venv/bin/python bench/tenants_at_scale.py`).",
        "",
    ]
    lines += markdown_table(results_table(results))
    lines += [
        "",
        "Requests are counted from the devstack servers' request logs between marks, minus the "
        "benchmark's own; steady-state writes are requests other than GET/LIST/WATCH/HEAD. Handler failures "
        "are the operator's kopf `failed with an exception` records (each retried after kopf's backoff). "
        "The operator runs as `sovereign up` starts it (drift check every 10 s, Lease of 15 s).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=32)
    parser.add_argument("--steady-seconds", type=float, default=60.0)
    parser.add_argument("--output", choices=["text", "json"], default="text")
    parser.add_argument("--benchmarks-file", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args(argv)
    console = Console(stderr=args.output == "json")
    results = run(args.tenants, args.steady_seconds, console)
    publish_results(
        args.benchmarks_file,
        "Tenants at scale",
        markdown_section(results),
        results,
        results_table(results),
        args.output,
        console,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
