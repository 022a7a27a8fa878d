"""CPU spent by the machine and by a benchmark's own processes (itself and its descendants), from /proc,
grouped by the part of the request path each process is: the client (the benchmark's process), Serve's HTTP
proxy, the measured ingress replicas, the model, the audit writer, the quota keeper, the OTLP receiver, the
devstack's servers, the rest of Ray."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RAY = "ray"  # the rest of Ray, and any group a meter was not asked to report
OTLP_RECEIVER_MODULE = "sovereign_devstack.otlp_receiver"


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot (idle and iowait are not busy)."""
    fields = [int(value) for value in (PROC / "stat").read_text().splitlines()[0].split()[1:9]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


def _descendants() -> set[int]:
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    ours, grew = {os.getpid()}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in ours} - ours
        ours |= found
        grew = bool(found)
    return ours


def _niceness(pid: int) -> int | None:
    try:
        return int((PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[16])
    except (OSError, ValueError, IndexError):
        return None


def _process_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks; 0 once it is gone."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def group_of(
    pid: int, argv: list[str], ingress_apps: Iterable[str], model_apps: Iterable[str]
) -> tuple[str, str]:
    """Which part of the request path a process (not the benchmark's own) is, from its command line (a Ray
    worker's is its process title), and its short name (the title without `ray::` and the method it runs)."""
    title = " ".join(argv)
    first = argv[0] if argv else ""
    worker = first.startswith("ray::")
    name = first.removeprefix("ray::").split(".")[0] if worker else Path(first).name
    if OTLP_RECEIVER_MODULE in title:
        return "otlp_receiver", "OTLP receiver"
    if "ProxyActor" in title:
        return "proxy", name
    if any(f"ServeReplica:{app}:" in title for app in ingress_apps):
        return "ingress", f"{name} ({pid})"
    if any(f"ServeReplica:{app}:" in title for app in model_apps):
        return "model", name
    if worker and name == "AuditWriter":
        return "audit_writer", name
    if worker and name == "QuotaKeeper":
        return "quota_keeper", name
    # Ray's own processes (GCS, raylet, agents) run from its package; the devstack's servers do not.
    if worker or "/ray/" in title or not title:
        return RAY, name or str(pid)
    return "devstack", name


def process_group(pid: int, ingress_apps: Iterable[str], model_apps: Iterable[str]) -> tuple[str, str]:
    if pid == os.getpid():
        return "client", "client (benchmark process)"
    try:
        argv = (PROC / str(pid) / "cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return RAY, str(pid)
    return group_of(pid, [arg for arg in argv if arg], ingress_apps, model_apps)


class CpuMeter:
    """CPU spent meanwhile by the machine and by our processes (by group and by process), summed over the
    measurements made inside it. `groups`: those it reports; a process of another group counts as Ray's."""

    def __init__(
        self, ingress_apps: tuple[str, ...], model_apps: tuple[str, ...], groups: tuple[str, ...]
    ) -> None:
        self._apps = ingress_apps
        self._models = model_apps
        self.groups = groups
        self.busy = self.total = 0
        self.wall = 0.0
        self.ticks: dict[str, int] = {}
        self.by_process: dict[str, int] = {}
        # By group, not "ray" (its GCS and raylet run at 0, its workers at RAY_worker_niceness: 15).
        self.niceness: dict[str, int] = {}
        self._start: tuple[float, tuple[int, int], dict[int, int]] | None = None

    def __enter__(self) -> CpuMeter:
        # The machine's window holds the processes' (read after it starts, before it ends): ours <= busy.
        machine = _machine_jiffies()
        ticks = {pid: _process_ticks(pid) for pid in _descendants()}
        self._start = (time.perf_counter(), machine, ticks)
        return self

    def __exit__(self, *_: object) -> None:
        assert self._start is not None
        began, (busy, total), before = self._start
        spent_by_pid = {pid: max(0, _process_ticks(pid) - ticks) for pid, ticks in before.items()}
        self.wall += time.perf_counter() - began
        now_busy, now_total = _machine_jiffies()
        self.busy += now_busy - busy
        self.total += now_total - total
        for pid, spent in spent_by_pid.items():
            group, name = process_group(pid, self._apps, self._models)
            group = group if group in self.groups else RAY
            self.ticks[group] = self.ticks.get(group, 0) + spent
            self.by_process[name] = self.by_process.get(name, 0) + spent
            if group not in (*self.niceness, RAY) and (nice := _niceness(pid)) is not None:
                self.niceness[group] = nice

    def result(self, requests: int) -> dict[str, Any]:
        def ms_per_request(ticks: int) -> float:
            return ticks / CLOCK_TICKS * 1e3 / requests if requests else 0.0

        def cores(ticks: int) -> float:
            return ticks / CLOCK_TICKS / self.wall if self.wall else 0.0

        busiest = sorted(self.by_process.items(), key=lambda item: -item[1])[:6]
        return {
            "cpus": os.cpu_count() or 1,
            "machine_busy": self.busy / self.total if self.total else 0.0,
            # Our processes' share of all the machine's CPUs (the rest of `machine_busy`: other work).
            "ours_busy": sum(self.ticks.values()) / self.total if self.total else 0.0,
            "cpu_ms_per_request": {group: ms_per_request(self.ticks.get(group, 0)) for group in self.groups},
            "cpu_ms_per_request_total": ms_per_request(sum(self.ticks.values())),
            # A process near 1 core is bound by itself (one GIL), whatever the other CPUs do.
            "busiest_processes_cores": {name: round(cores(ticks), 3) for name, ticks in busiest},
            "niceness": dict(sorted(self.niceness.items())),
        }
