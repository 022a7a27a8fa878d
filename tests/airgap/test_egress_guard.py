"""The air-gap egress guard (tests/airgap/egress_guard/sitecustomize.py) in a real interpreter: what leaves
the machine is refused and recorded; loopback is untouched; without SOVEREIGN_EGRESS_LOG it does nothing."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.process  # each test runs Python with the guard in a subprocess

GUARD_DIR = Path(__file__).resolve().parent / "egress_guard"

PROBE = textwrap.dedent(
    """
    import json, socket, sys

    results = {}

    def attempt(name, call):
        try:
            call()
            results[name] = "ok"
        except OSError as error:
            results[name] = f"refused: {error.errno}"

    if sys.argv[2] == "egress":
        attempt("create_connection", lambda: socket.create_connection(("203.0.113.7", 443), timeout=1))
        attempt("getaddrinfo", lambda: socket.getaddrinfo("huggingface.co", 443))
        attempt("connect", lambda: socket.socket().connect(("203.0.113.8", 80)))
        attempt("connect_ex", lambda: socket.socket().connect_ex(("203.0.113.10", 80)))
        attempt("connect_ipv6", lambda: socket.socket(socket.AF_INET6).connect(("2001:db8::1", 80, 0, 0)))
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        attempt("sendto", lambda: udp.sendto(b"x", ("203.0.113.9", 53)))
    port = int(sys.argv[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as local:
        local.sendall(b"hello")
    results["loopback"] = "ok"
    for own in sys.argv[3:]:  # this machine's other interface addresses are local, not egress
        socket.create_connection((own, port), timeout=5).close()
    socket.getaddrinfo("localhost", port)
    socket.getaddrinfo(socket.gethostname(), port)
    results["local_names"] = "ok"
    print(json.dumps(results))
    """
)


def own_ipv4_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses, from the kernel's routing table of local addresses."""
    lines = Path("/proc/net/fib_trie").read_text().splitlines()
    found = {
        before.split("|--")[1].strip()
        for before, line in zip(lines, lines[1:], strict=False)
        if "/32 host LOCAL" in line and "|--" in before
    }
    return sorted(address for address in found if not address.startswith("127."))


def run_probe(
    tmp_path: Path, log: Path | None, mode: str
) -> tuple[dict[str, str], subprocess.CompletedProcess[str]]:
    """Run PROBE in a fresh interpreter with the guard first on PYTHONPATH; `mode` "egress" also tries to
    leave the machine (only ever with the guard active: TEST-NET addresses, never really reached)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("0.0.0.0", 0))
        server.listen(8)
        path = os.pathsep.join(filter(None, [str(GUARD_DIR), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        env.pop("SOVEREIGN_EGRESS_LOG", None)
        if log is not None:
            env["SOVEREIGN_EGRESS_LOG"] = str(log)
        probe = subprocess.run(
            [sys.executable, "-c", PROBE, str(server.getsockname()[1]), mode, *own_ipv4_addresses()],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
    assert probe.returncode == 0, probe.stderr
    return json.loads(probe.stdout), probe


def records(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_egress_is_refused_and_recorded_and_loopback_is_not(tmp_path: Path) -> None:
    log = tmp_path / "egress.jsonl"
    results, probe = run_probe(tmp_path, log, "egress")
    unreachable = f"refused: {errno.ENETUNREACH}"
    refused_lookup = f"refused: {socket.EAI_NONAME}"
    assert results == {
        "create_connection": refused_lookup,  # refused at its name look-up, see the records below
        "getaddrinfo": refused_lookup,
        "connect": unreachable,
        "connect_ex": unreachable,
        "connect_ipv6": unreachable,
        "sendto": unreachable,
        "loopback": "ok",
        "local_names": "ok",
    }
    seen = {(r["call"], r["host"], r["port"]) for r in records(log)}
    assert seen == {
        ("getaddrinfo", "203.0.113.7", 443),  # create_connection resolves first; that is refused
        ("getaddrinfo", "huggingface.co", 443),
        ("connect", "203.0.113.8", 80),
        ("connect_ex", "203.0.113.10", 80),
        ("connect", "2001:db8::1", 80),
        ("sendto", "203.0.113.9", 53),
    }
    for record in records(log):
        assert record["pid"] > 0 and record["argv"][0] == sys.executable and "__main__" in record["stack"]
    (active,) = records(Path(f"{log}.active"))
    assert active["event"] == "guard-active" and active["argv"][:2] == [sys.executable, "-c"]
    assert "guard" not in probe.stderr


def test_without_a_log_the_guard_stays_out_of_the_way(tmp_path: Path) -> None:
    results, probe = run_probe(tmp_path, None, "local")
    assert results == {"loopback": "ok", "local_names": "ok"}
    assert not list(tmp_path.iterdir()) and probe.stderr == ""
