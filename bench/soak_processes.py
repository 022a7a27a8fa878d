"""The platform's processes as the soak (bench/soak.py) watches them: every process the state dir's services
started (the Kubernetes API, OpenBao, the operator, the token projector, the Ray head with its GCS, raylet,
dashboard, Serve controller and proxy, gateway and model replicas, audit writers, retrievers), found from the
pid files under the state dir and /proc, their RSS sampled every few seconds; and a trace receiver that only
counts the spans it is sent."""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from sovereign_devstack.stack import load_state, running_services

PROC = Path("/proc")


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    return children


def label(pid: int) -> str | None:
    """A short name: Ray's process title (`ray::ServeReplica:fra:gateway`), else the program or script."""
    try:
        argv = [
            a for a in (PROC / str(pid) / "cmdline").read_bytes().decode(errors="replace").split("\0") if a
        ]
    except OSError:
        return None
    if not argv:
        return None
    if argv[0].startswith("ray::") or " " in argv[0]:  # a process title: `ray-dashboard-NodeHead-0 (...`
        return argv[0].split()[0]
    program = Path(argv[0]).name
    if program.startswith("python"):
        if "-m" in argv[1:3]:
            return argv[argv.index("-m") + 1]
        if "-c" in argv[1:3]:  # multiprocessing's helpers: `from multiprocessing.forkserver import main; ...`
            imported = re.search(r"from ([\w.]+) import", argv[argv.index("-c") + 1])
            return imported.group(1) if imported else "python -c"
        rest = [a for a in argv[1:] if not a.startswith("-")]
        return Path(rest[0]).name if rest else program
    return program


def platform_processes(state_dir: Path) -> dict[int, str]:
    """pid → label of every live process the state dir's services started, and their descendants."""
    state = load_state(state_dir)
    if state is None:
        return {}
    roots = {pid: name for name, pid in running_services(state_dir, state).items() if pid}
    children = _children()
    found: dict[int, str] = {}
    for root, service in roots.items():
        stack = [root]
        while stack:
            pid = stack.pop()
            name = label(pid)
            if name is not None:
                found[pid] = service if pid == root else name
            stack.extend(children.get(pid, []))
    return found


def rss_kib(pid: int) -> int | None:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class MemorySampler:
    """RSS of every platform process every `interval` seconds, in a thread: `samples` holds
    (seconds since `start`, {pid: (label, KiB)})."""

    def __init__(self, state_dir: Path, interval: float = 10.0) -> None:
        self.state_dir, self.interval = state_dir, interval
        self.samples: list[tuple[float, dict[int, tuple[str, int]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._t0 = 0.0

    def start(self) -> MemorySampler:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def sample(self) -> None:
        now = time.monotonic() - self._t0
        taken = {}
        for pid, name in platform_processes(self.state_dir).items():
            rss = rss_kib(pid)
            if rss is not None:
                taken[pid] = (name, rss)
        self.samples.append((now, taken))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.sample()  # the end

    def at(self, seconds: float) -> dict[int, tuple[str, int]]:
        """The first sample taken at or after `seconds` (else the last one)."""
        for when, taken in self.samples:
            if when >= seconds:
                return taken
        return self.samples[-1][1] if self.samples else {}


class SpanCounter:
    """An OTLP/HTTP trace receiver (protobuf) that counts the spans it is sent and keeps nothing."""

    def __init__(self) -> None:
        self.spans = 0
        self.exports = 0
        lock = threading.Lock()
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                count = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
                with lock:
                    counter.spans += count
                    counter.exports += 1
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="span-counter", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> SpanCounter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
