"""The product writes the audit logs: the real operator (with SOVEREIGN_AUDIT_DIR) records FRA's and DEU's
administrative events in their `admin` streams, and each nation's AuditWriter actor on a real local Ray
records decisions in its `decisions` stream, logged in to Vault as the nation with the token file the
devstack's token projector keeps (the operator only names it). `sovereign audit verify/show --nation FRA`
(as FRA) covers both streams; DEU's credentials get 403."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from sovereign_operator.config import OperatorConfig
from sovereign_operator.constants import ROTATE_KEY_ANNOTATION
from sovereign_operator.reconcile.serving import ServingState, audit_sink_for_tenant
from sovereign_serving.audit_writer import AUDIT_NAMESPACE, MAX_BATCH, AuditClient, AuditUnavailable

from sovereign.audit import AuditAccessDenied, read, stream_directory, verify
from sovereign.clients.kubernetes import dynamic_client, load_api_client
from sovereign.domain.nations import audit_writer_name
from tests.audit.test_audit_cli import login_as
from tests.helpers import kubectl, wait_until
from tests.operator.harness import (
    OperatorProcess,
    Platform,
    operator_with_nations,
)
from tests.operator.tenants import apply_tenant, delete_tenant, tenant, wait_ready

SOVEREIGN = [str(Path(sys.executable).parent / "sovereign")]
LIAISON = Path(__file__).parents[2] / "examples" / "policies" / "fra-liaison.yaml"
NATIONS = ("fra", "deu")


@pytest.fixture(scope="module")
def audit_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit-root")


@pytest.fixture(scope="module")
def audited_operator(
    platform: Platform,
    audit_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    nations = {name: {"clearance": "NATO SECRET"} for name in NATIONS}
    env = {"SOVEREIGN_AUDIT_DIR": str(audit_root)}
    with operator_with_nations(platform, tmp_path_factory.mktemp("operator"), nations, env) as process:
        yield process


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    # A short temp dir: Ray's socket paths must stay under the OS limit (107 bytes).
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray.init(address="local", _temp_dir=temp_dir, num_cpus=1, include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def serving_state(
    platform: Platform,
    audited_operator: OperatorProcess,
    audit_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> ServingState:
    """The operator's serving state on local-ray with an audit dir (what its serving pass builds sinks
    with)."""
    config = OperatorConfig(
        vault_addr=platform.vault_url,
        vault_cacert=str(platform.vault_cacert),
        runtime="local-ray",
        ray_dashboard_url="http://127.0.0.1:9",
        serve_http_port=9,
        audit_dir=str(audit_root),
        service_account_token_dir=str(tmp_path_factory.mktemp("tokens")),
    )
    return ServingState(dynamic_client(load_api_client(str(platform.kube.kubeconfig))), config)


def sinks_now(platform: Platform, state: ServingState) -> dict[str, object]:
    """Each nation's AuditSink as the serving pass builds it now, with the token files the projector
    writes."""
    tenants = {name.upper(): tenant(platform.kube, name) for name in NATIONS}
    assert state.config.service_account_token_dir is not None
    platform.project_tokens(state.config.service_account_token_dir)
    return {
        nation: audit_sink_for_tenant(state.config, body, state.dynamic.client)
        for nation, body in tenants.items()
    }


@pytest.fixture(scope="module")
def sinks(platform: Platform, serving_state: ServingState) -> dict[str, object]:
    return sinks_now(platform, serving_state)


def audit(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**platform.kube.env(), **platform.vault_env(), "COLUMNS": "200"}
    return subprocess.run([*SOVEREIGN, "audit", *args], capture_output=True, text=True, env=env, timeout=60)


def vault_requests(platform: Platform) -> list[str]:
    """The path of every request the session's OpenBao has received (its file audit device)."""
    entries = [json.loads(line) for line in platform.vault_audit_log.read_text().splitlines() if line]
    return [entry["request"]["path"] for entry in entries if entry["type"] == "request"]


def test_token_files_are_private(sinks: dict[str, object]) -> None:
    for sink in sinks.values():
        mode = stat.S_IMODE(os.stat(sink.token_file).st_mode)  # type: ignore[attr-defined]
        assert mode == 0o600


def test_the_operator_records_admin_events(
    platform: Platform,
    audited_operator: OperatorProcess,
    audit_root: Path,
) -> None:
    fra = login_as(platform, "FRA")
    admin = stream_directory(audit_root, "FRA", "admin")
    wait_until(lambda: admin.is_dir(), "FRA's admin stream exists", timeout=20)
    stamp = str(time.time())
    kubectl(platform.kube, "annotate", "tenant", "fra", f"{ROTATE_KEY_ANNOTATION}={stamp}", "--overwrite")
    kubectl(platform.kube, "apply", "-f", str(LIAISON))

    def events() -> list[str] | None:
        found = [record.event for record in read(admin, fra, "FRA")]
        return found if {"key-rotated", "policy-changed"} <= set(found) else None

    found = wait_until(events, "key-rotated and policy-changed recorded", timeout=30)
    assert found[0] == "tenant-provisioned"
    records = read(admin, fra, "FRA")
    rotated = next(r for r in records if r.event == "key-rotated")
    assert rotated.details["reason"] == "requested" and rotated.details["keyVersion"] == 2
    assert rotated.actor.sub == "system:serviceaccount:sovereign-system:sovereign-operator"
    # DEU's admin stream holds DEU's provisioning only.
    deu_admin = stream_directory(audit_root, "DEU", "admin")
    assert [r.event for r in read(deu_admin, login_as(platform, "DEU"), "DEU")] == ["tenant-provisioned"]


def test_decisions_are_durable_and_the_cli_verifies_both_streams(
    platform: Platform,
    local_ray: None,
    sinks: dict[str, object],
    audit_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    fra = AuditClient("FRA", sinks["FRA"])  # type: ignore[arg-type]

    async def decide_many() -> None:
        await fra.configure()
        before = vault_requests(platform)
        await asyncio.gather(
            *(
                fra.record_decision(
                    subject=f"analyst-{index % 5}",
                    subject_nation="FRA",
                    resources=["fra/analyst"],
                    allowed=index % 2 == 0,
                    reason_codes=[] if index % 2 == 0 else ["clearance"],
                    policy_ids=["base/clearance"],
                    bundle_version="b" * 16,
                    trace_id=f"{index:032x}",
                )
                for index in range(1000)
            )
        )
        new = vault_requests(platform)[len(before) :]
        # The writer's data-key calls (the operator's own calls to the same Vault go to transit/keys/).
        transit = [path for path in new if path.startswith(("transit/datakey/", "transit/decrypt/"))]
        logins = [path for path in new if path == "auth/kubernetes/login"]
        print(
            f"\n1,000 decisions through the writer: {len(transit)} data-key call(s), {len(logins)} login(s)"
        )
        assert len(transit) <= 2

    asyncio.run(decide_many())
    verified = audit(platform, "verify", "--nation", "FRA", "--dir", str(audit_root / "fra"), "-o", "json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] is True and set(report["streams"]) == {"decisions", "admin"}
    assert report["streams"]["decisions"]["lastSeq"] == 1000
    shown = audit(platform, "show", "--nation", "FRA", "--dir", str(audit_root / "fra"), "-o", "json")
    assert shown.returncode == 0, shown.stderr
    decisions = [r for r in json.loads(shown.stdout) if r["kind"] == "decision"]
    assert len(decisions) == 1000 and decisions[1]["decision"]["outcome"] == "denied"
    assert decisions[1]["details"]["reasonCodes"] == "clearance"
    assert decisions[1]["details"]["traceId"] == f"{1:032x}"


def test_another_nation_gets_403(platform: Platform, audit_root: Path, sinks: dict[str, object]) -> None:
    with pytest.raises(AuditAccessDenied):
        verify(stream_directory(audit_root, "FRA", "decisions"), login_as(platform, "DEU"), "FRA")
    with pytest.raises(AuditAccessDenied):
        verify(stream_directory(audit_root, "FRA", "admin"), login_as(platform, "DEU"), "FRA")


def test_a_cross_nation_decision_lands_in_both_logs(
    platform: Platform,
    local_ray: None,
    sinks: dict[str, object],
    audit_root: Path,
) -> None:
    fra, deu = AuditClient("FRA", sinks["FRA"]), AuditClient("DEU", sinks["DEU"])  # type: ignore[arg-type]

    async def decide() -> None:
        await deu.configure()  # DEU's gateway made its writer
        await fra.record_decision(
            subject="liaison-1",
            subject_nation="FRA",
            resources=["deu/briefing"],
            owners=["DEU"],
            allowed=True,
            policy_ids=["deu/sharing/permit-fra"],
            bundle_version="c" * 16,
            trace_id="cross-1",
        )
        # Federated (kuberay): the owner's gateway records it itself; only FRA's log here.
        await fra.record_decision(
            subject="liaison-1",
            subject_nation="FRA",
            resources=["deu/briefing"],
            owners=["DEU"],
            allowed=True,
            bundle_version="c" * 16,
            federated=True,
            trace_id="federated-1",
        )

    asyncio.run(decide())
    fra_records = read(stream_directory(audit_root, "FRA", "decisions"), login_as(platform, "FRA"), "FRA")
    deu_records = read(stream_directory(audit_root, "DEU", "decisions"), login_as(platform, "DEU"), "DEU")
    assert {"cross-1", "federated-1"} <= {r.details.get("traceId") for r in fra_records}
    assert [r.details.get("traceId") for r in deu_records] == ["cross-1"]
    assert deu_records[0].actor.nation == "FRA" and deu_records[0].details["gateway"] == "FRA"


def test_an_unreachable_owner_writer_fails_closed(local_ray: None, sinks: dict[str, object]) -> None:
    fra = AuditClient("FRA", sinks["FRA"])  # type: ignore[arg-type]
    with pytest.raises(AuditUnavailable, match="audit writer of ITA is not running"):
        asyncio.run(
            fra.record_decision(
                subject="a",
                subject_nation="FRA",
                resources=["ita/m"],
                owners=["ITA"],
                allowed=False,
                bundle_version="x",
            )
        )


def _decide(client: AuditClient, index: int) -> Coroutine[Any, Any, None]:
    return client.record_decision(
        subject=f"batched-{index}",
        subject_nation=client.nation,
        resources=[f"{client.nation.lower()}/m"],
        allowed=True,
        bundle_version="e" * 16,
        trace_id=f"batched-{index}",
    )


def writer_stats(nation: str) -> dict[str, int]:
    writer = ray.get_actor(audit_writer_name(nation), namespace=AUDIT_NAMESPACE)
    return ray.get(writer.stats.remote(), timeout=30)


def test_concurrent_decisions_share_writer_calls(
    platform: Platform,
    local_ray: None,
    sinks: dict[str, object],
    audit_root: Path,
) -> None:
    """Records arriving while a call to the writer is in flight go together in the next call: 300 concurrent
    decisions from one replica cost far fewer actor calls than records, and every one is in the log."""
    fra = AuditClient("FRA", sinks["FRA"])  # type: ignore[arg-type]

    async def decide() -> tuple[int, int]:
        await fra.configure()
        before_stats = writer_stats("FRA")
        await _decide(fra, -1)  # a lone call: a batch of one
        await asyncio.gather(*(_decide(fra, index) for index in range(300)))
        after = writer_stats("FRA")
        return after["calls"] - before_stats["calls"], after["records"] - before_stats["records"]

    calls, records = asyncio.run(decide())
    print(f"\n301 decisions, {calls} writer call(s)")
    assert records == 301
    # The lone one, then the 300 (all queued before the first call goes out) in batches of <= MAX_BATCH.
    assert calls == 1 + -(-300 // MAX_BATCH)
    found = read(stream_directory(audit_root, "FRA", "decisions"), login_as(platform, "FRA"), "FRA")
    traced = [r.details.get("traceId") for r in found if str(r.details.get("traceId")).startswith("batched-")]
    assert sorted(traced) == sorted(f"batched-{index}" for index in range(-1, 300))


def test_a_failed_batch_refuses_every_caller_in_it(
    local_ray: None, sinks: dict[str, object], tmp_path: Path
) -> None:
    """ESP's writer, logged in as FRA, is refused ESP's data key by Vault: every one of the concurrent
    decisions sent together fails closed, and none is acknowledged."""
    fra_sink = sinks["FRA"]
    esp_sink = fra_sink.model_copy(update={"directory": str(tmp_path)})  # type: ignore[attr-defined]
    esp = AuditClient("ESP", esp_sink)

    async def decide() -> list[BaseException | None]:
        await esp.configure()
        return await asyncio.gather(*(_decide(esp, index) for index in range(20)), return_exceptions=True)

    outcomes = asyncio.run(decide())
    assert all(isinstance(outcome, AuditUnavailable) for outcome in outcomes), outcomes
    assert "ESP's audit log did not record the decision" in str(outcomes[0])
    stats = writer_stats("ESP")
    assert stats["records"] == 20 and stats["calls"] < 20
    assert ray.get(ray.get_actor(audit_writer_name("ESP"), namespace=AUDIT_NAMESPACE).last_seq.remote()) == 0


def test_a_shredded_nations_logs_are_set_aside_and_its_next_tenant_starts_afresh(
    platform: Platform,
    local_ray: None,
    serving_state: ServingState,
    sinks: dict[str, object],
    audit_root: Path,
) -> None:
    """Offboarding DEU shreds its key: its logs can never be read again, so the operator moves them aside
    (nothing deleted). DEU onboarded again (a new Tenant, a new key) gets new logs that verify, and its
    writer, seeing the new Tenant uid, stops using the old log and its data key."""
    deu = AuditClient("DEU", sinks["DEU"])  # type: ignore[arg-type]

    async def decide(trace_id: str) -> None:
        await deu.configure()
        await deu.record_decision(
            subject="analyst-1",
            subject_nation="DEU",
            resources=["deu/m"],
            owners=["DEU"],
            allowed=True,
            bundle_version="d" * 16,
            trace_id=trace_id,
        )

    asyncio.run(decide("before-offboarding"))
    delete_tenant(platform.kube, "deu")
    [aside] = list(audit_root.glob("deu.shredded-*"))
    assert {p.name for p in aside.iterdir()} >= {"admin", "decisions"}
    assert not (audit_root / "deu").exists()

    apply_tenant(platform.kube, "deu", "DEU", clearance="NATO SECRET")
    wait_ready(platform.kube, "deu", timeout=60)
    deu.sink = sinks_now(platform, serving_state)["DEU"]  # type: ignore[assignment]  (the new uid)
    asyncio.run(decide("after-onboarding"))
    verified = audit(platform, "verify", "--nation", "DEU", "--dir", str(audit_root / "deu"), "-o", "json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["streams"]["decisions"]["lastSeq"] == 1
    assert [
        e["event"]
        for e in json.loads(
            audit(platform, "show", "--nation", "DEU", "--dir", str(audit_root / "deu"), "-o", "json").stdout
        )
        if e["kind"] == "admin"
    ] == ["tenant-provisioned"]


def test_a_writer_fails_closed_until_its_token_file_appears(
    platform: Platform,
    local_ray: None,
    sinks: dict[str, object],
    tmp_path: Path,
) -> None:
    """local-ray: the token file is written by the token projector, not the operator, so a gateway's writer
    may start before it exists. Until it is there every decision is refused; the next one after it appears
    is recorded. (Last in this module: it points FRA's writer at a log of its own.)"""
    tokens = tmp_path / "tokens"
    late = {"directory": str(tmp_path / "audit"), "token_file": str(tokens / "fra" / "token")}
    fra = AuditClient("FRA", sinks["FRA"].model_copy(update=late))  # type: ignore[attr-defined]

    async def decide(index: int) -> None:
        await fra.configure()
        await _decide(fra, index)

    with pytest.raises(AuditUnavailable, match="FRA's audit log did not record the decision"):
        asyncio.run(decide(0))
    platform.project_tokens(tokens)
    asyncio.run(decide(1))
    writer = ray.get_actor(audit_writer_name("FRA"), namespace=AUDIT_NAMESPACE)
    assert ray.get(writer.last_seq.remote(), timeout=30) == 1
