"""Air-gap: the whole serving path runs with every connection off the machine made to fail, and none is tried.

The guard (egress_guard/sitecustomize.py) is first on PYTHONPATH of every Python process the path starts:
the Ray head (`ray start`, its dashboard, dashboard agent, runtime-env agent, log monitor and autoscaler
monitor) and, through the raylet, every Ray worker (the Serve controller, the proxy, each nation's gateway
and each model replica); the operator; the `sovereign` CLI that issues tokens. There it refuses and records
any connect / connect_ex / sendto to an address that is not loopback or this machine's own, and any name
look-up of a name that is not local. The test drives tenants, a tiny Llama and the MiniLM embedder from
`kubectl apply` to answers through the official `openai` client, then asserts that nothing was recorded, and
proves the guard really ran inside the Ray workers that served (a positive control).

Not covered: native code. Ray's raylet and GCS server are C++ processes, and gRPC core (which Ray's Python
processes use to talk to them) opens its own sockets and resolves names without Python's `socket`; kubectl
is Go. Those are outside this guard; the devstack binds them to 127.0.0.1 (`ray_head_spec`). The test
process itself (building the checkpoints, the `openai` client) and the devstack's API-server and Vault
emulators are not guarded either: they are the test's harness, not the serving path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from sovereign.serving_contract import AIR_GAP_ENV
from tests.airgap.guard import GUARD_DIR, GuardedServing

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def deployed(guarded_serving: GuardedServing) -> Iterator[GuardedServing]:
    serving = guarded_serving
    serving.apply_analyst_and_embedder()
    yield serving


def client(serving: GuardedServing, nation: str, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=serving.endpoint(nation), api_key=token, max_retries=0, timeout=60)


def processes_under(root: int) -> dict[int, str]:
    """pid -> command line of `root` and every process descending from it (from /proc)."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        commands[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    found = {root}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                changed = True
    return {pid: commands[pid] for pid in found if pid in commands}


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_serving_path_makes_no_egress_and_the_guard_ran_in_every_serving_process(
    deployed: GuardedServing,
) -> None:
    guard = deployed.guard
    deu = client(deployed, "deu", deployed.token("DEU", "NATO CONFIDENTIAL"))
    pol = client(deployed, "pol", deployed.token("POL", "NATO SECRET"))

    assert {m.id for m in deu.models.list()} == {"fra/analyst", "deu/embedder"}
    request = {
        "model": "fra/analyst",
        "messages": [{"role": "user", "content": "Status report?"}],
        "max_tokens": 8,
        "temperature": 0,
    }
    whole = deu.chat.completions.create(**request)
    assert 0 < whole.usage.completion_tokens <= 8
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in deu.chat.completions.create(**request, stream=True)
        if chunk.choices
    )
    assert streamed == whole.choices[0].message.content
    embedded = deu.embeddings.create(model="deu/embedder", input=["field report", "weather"])
    assert [len(item.embedding) for item in embedded.data] == [384, 384]
    with pytest.raises(openai.PermissionDeniedError):
        pol.chat.completions.create(model="fra/analyst", messages=request["messages"])

    # Positive control: the guard was active where the requests were served.
    active = {record["pid"]: record for record in lines(guard.active_log)}
    cluster = processes_under(guard.head_pid)
    replicas = {
        app: [pid for pid, command in cluster.items() if command.startswith(f"ray::ServeReplica:{app}:")]
        for app in ("fra-gateway", "deu-gateway", "pol-gateway", "fra-analyst", "deu-embedder")
    }
    assert all(replicas.values()), f"replicas not found under the Ray head {guard.head_pid}: {cluster}"
    serve_system = [
        pid
        for pid, command in cluster.items()
        if command.startswith(("ray::ServeController", "ray::ProxyActor"))
    ]
    assert serve_system, cluster
    for pid in [*serve_system, *(pid for pids in replicas.values() for pid in pids)]:
        assert pid in active, f"guard not active in {pid} {cluster[pid]!r}"
        env = environ(pid)
        assert GUARD_DIR.as_posix() in env.get("PYTHONPATH", "").split(":"), (
            cluster[pid],
            env.get("PYTHONPATH"),
        )
        assert env.get("SOVEREIGN_EGRESS_LOG") == str(guard.log)
        # Serve's controller and proxy have the head's environment, replicas also their runtime_env's: both
        # carry every air-gap variable.
        assert {name: env.get(name) for name in AIR_GAP_ENV} == AIR_GAP_ENV, cluster[pid]
    assert guard.head_pid in active, "guard not active in `ray start`"
    assert deployed.operator.proc.pid in active, "guard not active in the operator"
    argvs = [" ".join(record["argv"]) for record in active.values()]
    assert any(argv.endswith("/sovereign") for argv in argvs), "guard not active in the sovereign CLI"
    assert any("dashboard" in argv for argv in argvs), "guard not active in Ray's dashboard"
    print(f"guard active in {len(active)} processes; replicas: {replicas}")

    # And, the guard being proven active: nothing tried to leave the machine, from any guarded process.
    refused = guard.log.read_text() if guard.log.exists() else ""
    assert refused == "", f"egress attempted by the serving path:\n{refused}"
