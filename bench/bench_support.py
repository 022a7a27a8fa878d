"""What the benchmarks share: a devstack with the platform and the operator, as `sovereign up` starts them,
request counts from the devstack servers' logs, the machine's description, and BENCHMARKS.md sections."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes.client import ApiClient
from sovereign_devstack.openbao import AUDIT_LOG
from sovereign_devstack.processes import log_file
from sovereign_devstack.services import KUBE_SERVICE, OPERATOR_SERVICE
from sovereign_devstack.stack import (
    VAULT_DIR,
    DevstackState,
    running_services,
    start_devstack,
    start_operator,
)
from sovereign_devstack.token_reviewer import ensure_token_reviewer

from sovereign.clients.kubernetes import load_api_client
from sovereign.clients.vault import vault_client
from sovereign.platform_setup import (
    create_operator_token,
    install_crds,
    install_operator_vault_policy,
    prepare_vault,
)

READ_METHODS = frozenset({"GET", "HEAD", "LIST"})  # a watch is a GET too
_HANDLER_FAILURE = re.compile(r"Handler '([^']+)' failed with an exception and will try again [^:]*: (.*)")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)\b")
_REQUEST_LINE = re.compile(r"\b(GET|HEAD|LIST|POST|PUT|PATCH|DELETE) (/\S*) (\d{3})\b")


@dataclass(frozen=True)
class Platform:
    state_dir: Path
    devstack: DevstackState  # includes the operator among its services
    api: ApiClient


def platform_for_benchmark(state_dir: Path, progress: Callable[[str], None]) -> Platform:
    """A fresh devstack in `state_dir`, prepared and with the operator started as `sovereign up` does
    (no examples applied). `stop_devstack(state_dir)` stops all of it, the operator first."""
    devstack = start_devstack(state_dir, progress)
    api = load_api_client(devstack.kubeconfig)
    install_crds(api, progress)
    vault = vault_client(devstack.vault_addr, devstack.vault_token, verify=devstack.vault_cacert)
    pem_keys = [devstack.service_account_certificate] if devstack.service_account_certificate else None
    kube_ca = Path(api.configuration.ssl_ca_cert).read_text() if api.configuration.ssl_ca_cert else None
    prepare_vault(
        vault,
        devstack.kube_url,
        pem_keys,
        progress,
        kubernetes_ca_cert=kube_ca,
        token_reviewer_jwt=ensure_token_reviewer(api),
    )
    install_operator_vault_policy(vault)
    # Returns once the operator's liveness endpoint answers: it holds the Lease and kopf runs.
    devstack = start_operator(state_dir, devstack, lambda: create_operator_token(vault), progress)
    return Platform(state_dir=state_dir, devstack=devstack, api=api)


class OperatorWatch:
    """What the benchmark reads about the operator process: whether it still runs, and its log."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.log_path = log_file(platform.state_dir, OPERATOR_SERVICE)

    def check_alive(self) -> None:
        if not running_services(self.platform.state_dir, self.platform.devstack).get(OPERATOR_SERVICE):
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"the operator exited during the benchmark:\n{tail}")

    def handler_failures(self) -> dict[str, int]:
        """kopf handler failures the operator logged, by handler and exception (retries included)."""
        failures: Counter[str] = Counter()
        lines = self.log_path.read_text(errors="replace").splitlines()
        for index, line in enumerate(lines):
            failure = _HANDLER_FAILURE.search(line)
            if failure:
                handler, message = failure.groups()
                # The exception's type is on the traceback's last line, before the next log record.
                following = [raw for raw in lines[index + 1 : index + 200] if raw and not raw.startswith(" ")]
                raised = next((raw for raw in following if _EXCEPTION_LINE.match(raw)), message)
                failures[f"{handler}: {raised.strip()[:80]}"] += 1
        return dict(failures)


@dataclass
class RequestCounts:
    kube_total: int = 0
    vault_total: int = 0
    kube_writes: dict[str, int] = field(default_factory=dict)  # "METHOD /path" → count
    vault_writes: dict[str, int] = field(default_factory=dict)


class RequestLog:
    """Counts the requests the devstack servers logged between two marks: the Kubernetes API's log (one line
    each) and OpenBao's file audit device (one JSON request entry each)."""

    def __init__(self, state_dir: Path) -> None:
        self.paths = {"kube": log_file(state_dir, KUBE_SERVICE), "vault": state_dir / VAULT_DIR / AUDIT_LOG}

    def mark(self) -> dict[str, int]:
        """Byte offsets just past the last complete line of each log."""
        return {name: _complete_length(_read(path)) for name, path in self.paths.items()}

    def since(self, mark: dict[str, int]) -> RequestCounts:
        counts = RequestCounts()
        for name, path in self.paths.items():
            data = _read(path)
            lines = data[mark[name] : _complete_length(data)].decode(errors="replace").splitlines()
            if name == "vault":
                requests = vault_audit_requests(lines)
            else:
                requests = [m.groups() for m in map(_REQUEST_LINE.search, lines) if m]
            writes = Counter(f"{method} {path}" for method, path, _ in requests if method not in READ_METHODS)
            setattr(counts, f"{name}_total", len(requests))
            setattr(counts, f"{name}_writes", dict(writes))
        return counts


def _complete_length(data: bytes) -> int:
    return data.rfind(b"\n") + 1


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""  # OpenBao's audit log appears with its first request


# Vault's operations as the HTTP methods that cause them (Vault docs: /vault/docs/concepts/policies).
_VAULT_METHODS = {"read": "GET", "list": "LIST", "create": "POST", "update": "POST", "delete": "DELETE"}


def vault_audit_requests(lines: list[str]) -> list[tuple[str, str, str]]:
    """(method, /v1/path, "-") of each request entry in OpenBao audit log lines (responses skipped)."""
    found = []
    for line in lines:
        entry = json.loads(line) if line.strip() else {}
        if entry.get("type") == "request":
            request = entry["request"]
            method = _VAULT_METHODS.get(request["operation"], request["operation"].upper())
            found.append((method, f"/v1/{request['path']}", "-"))
    return found


def machine_description() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    memory_kib = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.MULTILINE)
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "memory_gib": int(memory_kib.group(1)) / 1024**2 if memory_kib else 0.0,
        "cpu_model": model.group(1).strip() if model else platform.processor() or "unknown CPU",
        "python": platform.python_version(),
    }


def machine_line(machine: dict[str, Any], extra: str = "") -> str:
    """The section's first line: when and on what it ran (`machine`: from `machine_description`)."""
    versions = f", {extra}" if extra else ""
    return (
        f"Run on {machine['date']}: {machine['cpu_model']}, {machine['nproc']} CPUs, "
        f"{machine['memory_gib']:.1f} GiB memory, Python {machine['python']}{versions}."
    )


def replace_benchmark_section(path: Path, title: str, body: str) -> None:
    """Write `## title` + body into `path`, replacing that section if present and keeping the others."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\nResults of `make bench` (bench/).\n"
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)


@contextlib.contextmanager
def stdout_kept_for_json(output: str) -> Iterator[None]:
    """With `--output json`, everything written to fd 1 meanwhile goes to stderr (Ray's processes write to
    our stdout too), so stdout holds the JSON alone."""
    if output != "json":
        yield
        return
    sys.stdout.flush()
    kept = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(kept, 1)
        os.close(kept)


def markdown_table(table: Any) -> list[str]:
    """A results table (rich) as a Markdown table, its column headers first; a measure indented by two
    spaces is a breakdown of the row above, shown with ↳."""
    rows = [
        "| " + " | ".join(str(column.header) for column in table.columns) + " |",
        "|" + "---|" * len(table.columns),
    ]
    for measure, *cells in zip(*(column.cells for column in table.columns), strict=True):
        sub_row = str(measure).startswith("  ")
        first = f"{'↳ ' if sub_row else ''}{str(measure).strip()}"
        rows.append("| " + " | ".join([first, *(str(cell) for cell in cells)]) + " |")
    return rows


def publish_results(
    path: Path, title: str, markdown: str, results: dict[str, Any], table: Any, output: str, console: Any
) -> None:
    """Write the run's section of BENCHMARKS.md, then print the results: JSON on stdout, else the table."""
    replace_benchmark_section(path, title, markdown)
    if output == "json":
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        console.print(table)
