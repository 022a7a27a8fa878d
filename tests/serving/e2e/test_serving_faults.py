"""Faults of the serving path, broken on purpose on the running local platform (the operator on a local Ray
with Ray Serve, the nations' real gateways and audit writers), as a user of FRA's endpoint sees them: a model
replica killed mid-answer (plain and streamed), a gateway replica killed under traffic, FRA's audit writer
killed while decisions are appended, and FRA's audit volume full. Each asserts what the client gets (a clean
OpenAI-shaped error, never a hang: every request is bounded by the client's timeout), that the platform
comes back without a person, and that the audit chain verifies with every answered request's decision in
it; each prints the recovery time it measured (RELIABILITY.md, "Fault matrix"; never asserted as a timing).

FRA's `decisions` log is on a small tmpfs of its own when the tests may mount one (root), so that the volume
can be filled; otherwise the volume-full case is skipped (said in its skip reason).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sovereign_devstack.otlp_receiver import OtlpReceiver
from sovereign_devstack.processes import read_pid
from sovereign_devstack.services import RAY_SERVICE

from tests.helpers import wait_until
from tests.operator.harness import Platform
from tests.serving.e2e.harness import SOVEREIGN, Serving, running_local_ray, serving_platform

pytestmark = pytest.mark.faults  # `make faults`: kept out of `make test` for its time

LONG_ANSWER = 1500  # tokens: long enough (a few seconds on one core) to kill the replica in its middle
CLIENT_TIMEOUT = 60.0  # every request of these tests is bounded by it: a hang fails the test
RECOVERY_TIMEOUT = 180.0
AUDIT_FS_BYTES = 4 * 1024 * 1024
ERROR_FIELDS = {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    """Tracing on, so that each answer names its gateway trace (`traceresponse`), the id its audit record
    carries: how the tests find an answered request's decision in the log."""
    with OtlpReceiver() as started:
        yield started


@pytest.fixture(scope="module")
def audit_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, bool]]:
    """The operator's audit directory, FRA's `decisions` log on a tmpfs of AUDIT_FS_BYTES when one can be
    mounted; yields (directory, mounted)."""
    root = tmp_path_factory.mktemp("audit")
    decisions = root / "fra" / "decisions"
    decisions.mkdir(parents=True)
    tmpfs = ["mount", "-t", "tmpfs", "-o", f"size={AUDIT_FS_BYTES},mode=0700", "tmpfs", str(decisions)]
    mounted = subprocess.run(tmpfs, capture_output=True, timeout=30).returncode == 0
    try:
        yield root, mounted
    finally:  # offboarding FRA renamed its directory (shredded): the mount is found under `root`
        for line in Path("/proc/mounts").read_text().splitlines():
            point = line.split()[1]
            if point.startswith(f"{root}/"):
                subprocess.run(["umount", "--lazy", point], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def faulty(
    platform: Platform,
    receiver: OtlpReceiver,
    audit_root: tuple[Path, bool],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Serving]:
    """The serving platform with FRA's `fra/analyst` (the tiny Llama, answers up to LONG_ANSWER tokens)."""
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    audit = {
        "SOVEREIGN_AUDIT_DIR": str(audit_root[0]),
        "SOVEREIGN_SERVICE_ACCOUNT_TOKEN_DIR": str(tmp_path_factory.mktemp("serviceaccount-tokens")),
    }
    with contextlib.ExitStack() as stack:
        local_ray, _ = stack.enter_context(running_local_ray(tmp_path_factory.mktemp("ray"), otel))
        operator, models, digests = stack.enter_context(
            serving_platform(platform, local_ray, tmp_path_factory, {**otel, **audit})
        )
        serving = Serving(platform, local_ray, operator, models, digests)
        serving.apply_model(
            "fra-analyst",
            "fra",
            "analyst",
            "tiny-llama",
            maxTokens=LONG_ANSWER,
            markings={"classification": "NATO UNCLASSIFIED"},
        )
        serving.wait_condition("fra", "fra-analyst", "Ready", "True")
        yield serving


@pytest.fixture(scope="module")
def token(faulty: Serving) -> str:
    return faulty.token("FRA", "NATO SECRET")


def chat_body(max_tokens: int, stream: bool = False) -> dict[str, Any]:
    return {
        "model": "fra/analyst",
        "messages": [{"role": "user", "content": "Status report?"}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
    }


def ask(serving: Serving, token: str, max_tokens: int = 2) -> httpx.Response:
    """One chat request on FRA's endpoint, bounded by CLIENT_TIMEOUT (a timeout raises: a hang)."""
    return httpx.post(
        f"{serving.endpoint('fra')}/chat/completions",
        json=chat_body(max_tokens),
        headers={"Authorization": f"Bearer {token}"},
        timeout=CLIENT_TIMEOUT,
    )


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The OpenAI-shaped error of a refused request."""
    body = response.json()
    assert isinstance(body, dict) and set(body["error"]) == ERROR_FIELDS, body
    return dict(body["error"])


def trace_of(response: httpx.Response) -> str:
    """The gateway's trace id of an answered request (W3C `traceresponse`), as its audit record has it."""
    return response.headers["traceresponse"].split("-")[1]


def processes_titled(serving: Serving, prefix: str) -> list[int]:
    """The pids of this module's Ray cluster (the head's session: other Ray clusters may run on the machine)
    whose command line (Ray sets a worker's to `ray::<actor>`) starts with `prefix`."""
    head = read_pid(serving.ray.state_dir, RAY_SERVICE)
    assert head is not None
    session, found = os.getsid(head), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
            if title.startswith(prefix.encode()) and os.getsid(int(pid)) == session:
                found.append(int(pid))
    return found


def replica_pids(serving: Serving, application: str) -> list[int]:
    return processes_titled(serving, f"ray::ServeReplica:{application}:")


def holder_of(directory: Path) -> int | None:
    """The pid holding a file under `directory` open (an audit log's writer holds its lock file)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(f"{directory}/"):
                        return int(pid)
    return None


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def recovered_after(killed: float, probe: Any, what: str) -> float:
    """Seconds from `killed` until `probe()` is true (a request answered again)."""
    wait_until(probe, what, timeout=RECOVERY_TIMEOUT, interval=0.2)
    return time.monotonic() - killed


def audit_cli(serving: Serving, audit_dir: Path, command: str) -> Any:
    """`sovereign audit <command> --nation FRA -o json` as FRA's auditors run it (FRA's own role)."""
    run = subprocess.run(
        [*SOVEREIGN, "audit", command, "--nation", "FRA", "--dir", str(audit_dir / "fra"), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=serving.cli_env(),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout)


def assert_the_chain_verifies_with(serving: Serving, audit_dir: Path, answered: set[str]) -> None:
    """`sovereign audit verify` passes and every answered request's decision is in FRA's log."""
    report = audit_cli(serving, audit_dir, "verify")
    assert report["ok"], report
    recorded = {
        record["details"].get("traceId")
        for record in audit_cli(serving, audit_dir, "show")
        if record["kind"] == "decision"
    }
    assert answered <= recorded, f"answered but not in the audit log: {answered - recorded}"
    print(f"audit: {len(answered)} answered, all in the chain ({len(recorded)} decisions), chain verifies")


@dataclass
class Traffic:
    """A few clients asking FRA's endpoint in a loop; each outcome: (started, ended, status or the
    exception's name, error code, gateway trace id)."""

    serving: Serving
    token: str
    clients: int = 4
    outcomes: list[tuple[float, float, int | str, str | None, str | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _client(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                response = ask(self.serving, self.token)
            except httpx.HTTPError as error:  # a timeout (a hang) or a dropped connection
                self.outcomes.append((started, time.monotonic(), type(error).__name__, None, None))
                continue
            ended, status = time.monotonic(), response.status_code
            if status == 200:
                self.outcomes.append((started, ended, status, None, trace_of(response)))
            else:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    code = response.json()["error"]["code"]
                    self.outcomes.append((started, ended, status, code, None))
                    continue
                self.outcomes.append((started, ended, status, f"not json: {response.text[:80]!r}", None))

    @contextlib.contextmanager
    def running(self) -> Iterator[Traffic]:
        with ThreadPoolExecutor(self.clients) as pool:
            futures = [pool.submit(self._client) for _ in range(self.clients)]
            try:
                wait_until(lambda: self.answered_since(0.0), "traffic answered", timeout=RECOVERY_TIMEOUT)
                yield self
            finally:
                self.stop.set()
                for future in futures:
                    future.result(timeout=CLIENT_TIMEOUT + 10)

    def answered_since(self, moment: float) -> int:
        return sum(
            1 for started, _, status, _, _ in list(self.outcomes) if status == 200 and started > moment
        )

    def summary(self, since: float) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _started, ended, status, code, _ in list(self.outcomes):
            if ended >= since:
                key = f"{status} {code}" if code else str(status)
                counts[key] = counts.get(key, 0) + 1
        return counts

    def answered_traces(self) -> set[str]:
        return {trace for _, _, status, _, trace in self.outcomes if status == 200 and trace}


def test_a_model_replica_killed_mid_answer_gives_a_clean_503_and_comes_back(
    faulty: Serving, token: str
) -> None:
    assert ask(faulty, token).status_code == 200
    [pid] = replica_pids(faulty, "fra-analyst")
    with ThreadPoolExecutor(1) as pool:
        before = cpu_ticks(pid)
        answer = pool.submit(ask, faulty, token, LONG_ANSWER)
        wait_until(lambda: answer.done() or cpu_ticks(pid) - before > 30, "the replica generating")
        assert not answer.done(), "the answer ended before the replica could be killed in its middle"
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        response = answer.result(timeout=CLIENT_TIMEOUT + 10)
    refused_after = time.monotonic() - killed
    assert response.status_code == 503, response.text
    assert error_of(response)["code"] == "model_unavailable"
    recovery = recovered_after(killed, lambda: ask(faulty, token).status_code == 200, "fra/analyst again")
    assert replica_pids(faulty, "fra-analyst") != [pid]  # Ray Serve started a new replica
    print(
        f"\nreplica killed mid-answer: 503 model_unavailable after {refused_after:.2f} s, answered again "
        f"{recovery:.1f} s after the kill"
    )


def test_a_model_replica_killed_mid_stream_ends_the_stream_with_an_error_event(
    faulty: Serving, token: str
) -> None:
    assert ask(faulty, token).status_code == 200
    [pid] = replica_pids(faulty, "fra-analyst")
    events: list[str] = []
    killed = 0.0
    with httpx.stream(
        "POST",
        f"{faulty.endpoint('fra')}/chat/completions",
        json=chat_body(LONG_ANSWER, stream=True),
        headers={"Authorization": f"Bearer {token}"},
        timeout=CLIENT_TIMEOUT,
    ) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():
            if not line.startswith("data: "):
                continue
            events.append(line.removeprefix("data: "))
            if len(events) == 3:  # the answer is under way
                os.kill(pid, signal.SIGKILL)
                killed = time.monotonic()
    ended_after = time.monotonic() - killed
    assert killed, f"the stream ended before the replica could be killed: {events}"
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert set(error) == ERROR_FIELDS and error["code"] in {"model_unavailable", "model_error"}, error
    recovery = recovered_after(killed, lambda: ask(faulty, token).status_code == 200, "fra/analyst again")
    print(
        f"\nreplica killed mid-stream: error event {error['code']} and [DONE] {ended_after:.2f} s "
        f"after the kill ({len(events) - 2} chunks before), answered again {recovery:.1f} s after the kill"
    )


def test_a_gateway_replica_killed_under_traffic_fails_cleanly_and_comes_back(
    faulty: Serving, token: str
) -> None:
    traffic = Traffic(faulty, token)
    with traffic.running():
        pids = replica_pids(faulty, "fra-gateway")
        assert pids
        os.kill(pids[0], signal.SIGKILL)
        killed = time.monotonic()
        recovery = recovered_after(killed, lambda: traffic.answered_since(killed), "FRA's gateway again")
    seen = traffic.summary(killed)
    # Every request ended with an answer or an OpenAI-shaped 503 (the Serve proxy's own failure for the
    # in-flight ones, shaped by sovereign_serving.serve_proxy): none hung past the client's timeout, none
    # lost its connection, none got the proxy's plain-text 500.
    assert all(key == "200" or (key.startswith("503 ") and "not json" not in key) for key in seen), seen
    assert pids[0] not in replica_pids(faulty, "fra-gateway")
    print(
        f"\ngateway replica killed under traffic ({traffic.clients} clients): {seen} since the kill; "
        f"answered again {recovery:.1f} s after it"
    )


def test_the_audit_writer_killed_while_appending_loses_nothing_acknowledged(
    faulty: Serving, token: str, audit_root: tuple[Path, bool]
) -> None:
    decisions = audit_root[0] / "fra" / "decisions"
    writer = wait_until(lambda: holder_of(decisions), "FRA's audit writer")
    traffic = Traffic(faulty, token)
    with traffic.running():
        wait_until(lambda: traffic.answered_since(0.0) >= 8, "decisions being appended")
        os.kill(writer, signal.SIGKILL)
        killed = time.monotonic()
        recovery = recovered_after(killed, lambda: traffic.answered_since(killed), "FRA answered again")
        wait_until(lambda: traffic.answered_since(killed) >= 4, "more answers")
    seen = traffic.summary(killed)
    # Answered (recorded by the restarted writer) or refused with the documented 503, nothing else.
    assert set(seen) <= {"200", "503 audit_unavailable"}, seen
    restarted = holder_of(decisions)
    assert restarted is not None and restarted != writer
    assert_the_chain_verifies_with(faulty, audit_root[0], traffic.answered_traces())
    print(f"audit writer killed under traffic: {seen} since the kill; answered again {recovery:.1f} s after")


def fill(directory: Path) -> Path:
    """A file taking every free byte of `directory`'s filesystem."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as file:
        while True:
            try:
                file.write(chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
                break
    with contextlib.suppress(OSError), filler.open("ab", buffering=0) as file:
        while file.write(b"\0"):  # the last bytes of a page
            pass
    return filler


def test_a_full_audit_volume_refuses_with_503_corrupts_nothing_and_recovers(
    faulty: Serving, token: str, audit_root: tuple[Path, bool]
) -> None:
    root, mounted = audit_root
    if not mounted:
        pytest.skip(
            "FRA's audit volume is a tmpfs the tests mount: mounting needs root here (the log's own "
            "full-disk handling runs without root: tests/audit/test_disk_full.py)"
        )
    decisions = root / "fra" / "decisions"
    answered: set[str] = set()
    before = ask(faulty, token)
    assert before.status_code == 200
    answered.add(trace_of(before))
    filler = fill(decisions)
    outcomes: list[tuple[int, str | None]] = []

    def refused() -> bool:
        response = ask(faulty, token)
        if response.status_code == 200:  # the log's last page still had room
            answered.add(trace_of(response))
            outcomes.append((200, None))
            return False
        outcomes.append((response.status_code, error_of(response)["code"]))
        return True

    wait_until(refused, "a request refused once the audit volume is full", timeout=60)
    for _ in range(3):  # and refused again, never answered without its record
        refused()
    assert {outcome for outcome in outcomes if outcome[0] != 200} == {(503, "audit_unavailable")}, outcomes
    assert outcomes[-3:] == [(503, "audit_unavailable")] * 3, outcomes

    filler.unlink()
    freed = time.monotonic()

    def answered_again() -> bool:
        response = ask(faulty, token)
        if response.status_code == 200:
            answered.add(trace_of(response))
            return True
        assert (response.status_code, error_of(response)["code"]) == (503, "audit_unavailable")
        return False

    recovery = recovered_after(freed, answered_again, "answered once space is back")
    assert ask(faulty, token).status_code == 200
    assert_the_chain_verifies_with(faulty, root, answered)
    print(f"audit volume full: {outcomes}; answered again {recovery:.2f} s after space came back")
