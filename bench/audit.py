"""Benchmark: appending to a nation's audit log (issue 6, "audit"; not a timed test).

One devstack Vault (transit key `tenant-fra`, a token under FRA's own ACL policy, as the operator writes it)
and a local directory. Measures, in one run:
- AuditLog appends (encrypted, hash-chained, durable when `append` returns): one writer appending one record
  at a time, and N threads appending at once (group commit: they share fsyncs) — the gateway's AuditWriter
  actor runs the same AuditLog with that many appends in flight;
- baseline for both: the same number of plain JSON lines appended to a file with one fsync per line (one
  thread; N threads behind one lock), no encryption, no chain, no group commit;
- Vault calls per 1,000 records, counted from OpenBao's audit log (data keys are cached: 10,000 records
  per key, two calls each).
Writes its section of BENCHMARKS.md (replaced on each run) and prints the results.

    .venv/bin/python bench/audit.py [--records 2000] [--threads 8] [--output json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hvac
from bench_support import machine_description, machine_line, publish_results, vault_audit_requests
from rich.console import Console
from rich.table import Table
from sovereign_devstack.openbao import VAULT_SERVICE, start_standalone
from sovereign_devstack.processes import stop_service

from sovereign.audit import AuditActor, AuditDecision, AuditLog, AuditRecord
from sovereign.clients.vault import create_transit_key, ensure_secrets_engine, write_acl_policy
from sovereign.platform_setup import nation_policy_for_namespace

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
SECTION = "Audit log appends"


def record(index: int) -> AuditRecord:
    return AuditRecord(
        time=datetime.now(UTC),
        nation="FRA",
        kind="decision",
        event="policy-decision",
        actor=AuditActor(sub=f"analyst-{index % 7}", nation="FRA"),
        resources=["fra/analyst"],
        decision=AuditDecision(
            outcome="allowed" if index % 2 else "denied",
            policy_ids=["base/clearance"],
            bundle_version="b" * 16,
        ),
        details={"traceId": f"{index:032x}", "gateway": "FRA", "federated": False},
    )


def in_threads(threads: int, per_thread: int, work: Callable[[int], None]) -> float:
    """Seconds for `threads` threads each calling work(i) `per_thread` times."""
    pool = [
        threading.Thread(target=lambda t=t: [work(t * per_thread + i) for i in range(per_thread)])
        for t in range(threads)
    ]
    started = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return time.perf_counter() - started


def plain_lines(path: Path, threads: int, per_thread: int) -> float:
    """Baseline: one JSON line per record, fsync'd each, behind one lock (no crypto, chain or batching)."""
    lock = threading.Lock()
    with path.open("ab") as file:

        def append(index: int) -> None:
            line = json.dumps(record(index).model_dump(mode="json", by_alias=True)).encode() + b"\n"
            with lock:
                file.write(line)
                file.flush()
                os.fsync(file.fileno())

        return in_threads(threads, per_thread, append)


def audit_appends(directory: Path, vault: hvac.Client, threads: int, per_thread: int) -> float:
    with AuditLog(directory, "FRA", vault) as log:
        return in_threads(threads, per_thread, lambda index: log.append(record(index)) and None)


def vault_calls(path: Path, since: int) -> int:
    """Requests to transit/ in OpenBao's audit log after its first `since` lines."""
    lines = path.read_text().splitlines()[since:]
    return sum(route.startswith("/v1/transit/") for _, route, _ in vault_audit_requests(lines))


def run(records: int, threads: int, console: Console) -> dict[str, Any]:
    state_dir = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    server, keys = start_standalone(state_dir)
    try:
        root = hvac.Client(url=server.url, token=keys.root_token, verify=str(server.ca_file))
        ensure_secrets_engine(root, "transit", "transit")
        create_transit_key(root, "transit", "tenant-fra", "aes256-gcm96")
        write_acl_policy(root, "tenant-fra", nation_policy_for_namespace("tenant-fra"))
        token = root.auth.token.create(policies=["tenant-fra"], ttl="1h")["auth"]["client_token"]
        fra = hvac.Client(url=server.url, token=token, verify=str(server.ca_file))
        access_log = server.audit_log
        per_thread = max(1, records // threads)
        results: dict[str, Any] = {"machine": machine_description(), "records": records, "threads": threads}
        console.print(f"baseline: {records} fsync'd plain lines, 1 and {threads} threads …")
        results["baseline_single_s"] = plain_lines(state_dir / "plain-1.jsonl", 1, records)
        results["baseline_concurrent_s"] = plain_lines(state_dir / "plain-n.jsonl", threads, per_thread)
        console.print(f"audit log: {records} appends, 1 and {threads} threads …")
        mark = len(access_log.read_text().splitlines())
        results["audit_single_s"] = audit_appends(state_dir / "single", fra, 1, records)
        results["vault_calls_per_1000"] = vault_calls(access_log, mark) * 1000 / records
        results["audit_concurrent_s"] = audit_appends(state_dir / "concurrent", fra, threads, per_thread)
        for name in ("baseline_single", "baseline_concurrent", "audit_single", "audit_concurrent"):
            count = records if name.endswith("single") else per_thread * threads
            results[f"{name}_per_s"] = count / results[f"{name}_s"]
        return results
    finally:
        stop_service(state_dir, VAULT_SERVICE)


def results_table(results: dict[str, Any]) -> Table:
    table = Table("measure", "value", "baseline (plain fsync'd lines)", "ratio to baseline")
    for label, name in (("1 writer", "single"), (f"{results['threads']} threads", "concurrent")):
        audit, base = results[f"audit_{name}_per_s"], results[f"baseline_{name}_per_s"]
        table.add_row(f"appends/s, {label}", f"{audit:,.0f}", f"{base:,.0f}", f"{audit / base:.2f}x")
    table.add_row("Vault calls per 1,000 records", f"{results['vault_calls_per_1000']:.1f}", "goal ≤ 2", "")
    return table


def markdown_section(results: dict[str, Any], command: str) -> str:
    machine = results["machine"]
    lines = [
        machine_line(machine),
        f"Command: `make bench-audit` (`{command}`).",
        "",
        "| measure | value | baseline | ratio to baseline |",
        "|---|---|---|---|",
    ]
    table = results_table(results)
    for row in zip(*[column.cells for column in table.columns], strict=True):
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    lines += [
        "",
        f"{results['records']:,} records per run. Audit log: `AuditLog.append` (AES-256-GCM under a cached "
        "data key, hash chain, durable when it returns: the segment is fsync'd, then head.json is replaced "
        "and fsync'd, two syncs per batch) on a devstack Vault; with several threads the appends waiting "
        "together share one batch (group commit). Baseline: the same records as plain JSON lines, one fsync "
        "each (threads behind one lock), no encryption, no chain. Ratio: audit / baseline of the same run.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--output", choices=["text", "json"], default="text")
    parser.add_argument("--benchmarks-file", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args(argv)
    console = Console(stderr=args.output == "json")
    results = run(args.records, args.threads, console)
    command = f".venv/bin/python bench/audit.py --records {args.records} --threads {args.threads}"
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
