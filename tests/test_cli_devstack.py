"""`sovereign up / status / down` as a user runs them: real processes, then kubectl and hvac against them."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import hvac
import pytest

from sovereign.cli.envfile import read_env_file
from tests.devstack.test_trace_viewer import phoenix_stand_in
from tests.helpers import ROOT, kubectl, wait_until


@dataclass(frozen=True)
class KubeconfigAt:
    """The cluster a written kubeconfig points at, in the shape tests.helpers.kubectl takes."""

    path: str

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": self.path}


SOVEREIGN = [sys.executable, "-m", "sovereign.cli.main"]


def sovereign(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*SOVEREIGN, *args], capture_output=True, text=True, cwd=ROOT, timeout=180)
    if check and result.returncode != 0:
        raise AssertionError(f"sovereign {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def status_json(state_dir: Path) -> tuple[int, dict]:
    result = sovereign("status", "--state-dir", str(state_dir), "--output", "json", check=False)
    return result.returncode, json.loads(result.stdout)


def children(pid: int) -> list[int]:
    """The pids of `pid`'s children (Linux: /proc/PID/task/PID/children)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def process_environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


@pytest.mark.process
def test_up_status_down_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The trace viewer is a stand-in (the project's OTLP receiver behind SOVEREIGN_PHOENIX), whether or not
    # Phoenix is installed here: the suite never installs it (see tests/devstack/test_trace_viewer.py).
    monkeypatch.setenv("SOVEREIGN_PHOENIX", str(phoenix_stand_in(tmp_path / "viewer")))
    state_dir = tmp_path / "state"
    summary = json.loads(sovereign("up", "--state-dir", str(state_dir), "--output", "json").stdout)
    try:
        assert sorted(summary["applied"]) == [
            "DataSet/field-reports",
            "DataSet/intel-summaries",
            "ModelDeployment/deu-assistant",
            "ModelDeployment/est-embedder",
            "ModelDeployment/fra-analyst",
            "ModelDeployment/fra-embedder",
            "Tenant/deu",
            "Tenant/est",
            "Tenant/fra",
            "TenantPolicy/fra-liaison",
        ]
        # `up` waited for the example models and called them as three analysts would.
        assert [(c["caller"], c["status"]) for c in summary["demoCalls"]] == [
            ("FRA", 200),
            ("DEU", 200),
            ("EST", 403),
        ]
        assert summary["demoCalls"][1]["marking"] == "NATO RESTRICTED REL TO DEU,FRA"
        # Then the example DataSets were ingested and a DEU analyst got an answer grounded in them.
        grounded = summary["groundedDemo"]
        assert grounded["notReady"] == [] and grounded["status"] == 200, grounded
        sources = grounded["sources"]
        assert sources and {source["dataset"] for source in sources} <= set(grounded["datasets"])
        env = read_env_file(state_dir / "env")
        wanted = {"KUBECONFIG", "VAULT_ADDR", "VAULT_CACERT", "VAULT_TOKEN", "SOVEREIGN_GATEWAY_URL"}
        assert wanted <= env.keys()
        assert (state_dir / "logs" / "kube-apiserver.log").exists() and (state_dir / "vault.pid").exists()

        # kubectl sees the example nations through the written kubeconfig.
        cluster = KubeconfigAt(env["KUBECONFIG"])
        tenants = kubectl(cluster, "get", "tenants", "-o", "name").stdout
        assert sorted(tenants.split()) == [f"tenant.sovereign.ai/{n}" for n in ("deu", "est", "fra")]
        # `up` waited for the operator to make every example nation Ready.
        ready = kubectl(cluster, "get", "tenants", "-o", "jsonpath={.items[*].status.keyVersion}").stdout
        assert ready.split() == ["1", "1", "1"]
        # The operator's validating webhook is registered: a second Tenant for France is refused at apply.
        duplicate = kubectl(
            cluster,
            "apply",
            "-f",
            "-",
            input="apiVersion: sovereign.ai/v1alpha1\nkind: Tenant\nmetadata: {name: fra-again}\n"
            "spec: {nation: FRA, displayName: France again, clearance: NATO SECRET}\n",
            check=False,
        )
        assert duplicate.returncode != 0 and "spec.nation" in duplicate.stderr, duplicate.stderr
        # The operator runs with its own token, not the root token.
        operator_log = state_dir / "logs" / "operator.log"
        assert operator_log.exists() and env["VAULT_TOKEN"] not in operator_log.read_text()

        # Vault was prepared for the platform: transit, KV v2 and Kubernetes auth.
        # Vault (OpenBao) answers over TLS verified against the CA in DIR/env.
        assert env["VAULT_ADDR"].startswith("https://")
        vault = hvac.Client(url=env["VAULT_ADDR"], token=env["VAULT_TOKEN"], verify=env["VAULT_CACERT"])
        assert vault.is_authenticated()
        mounts = vault.sys.list_mounted_secrets_engines()["data"]
        assert mounts["transit/"]["type"] == "transit"
        assert mounts["secret/"]["type"] == "kv" and mounts["secret/"]["options"]["version"] == "2"
        assert vault.sys.list_auth_methods()["data"]["kubernetes/"]["type"] == "kubernetes"

        code, status = status_json(state_dir)
        assert code == 0 and status["up"] is True
        pids = {c["name"]: c["pid"] for c in status["components"]}
        assert sorted(pids) == ["kubernetes", "operator", "ray", "token-projector", "trace-viewer", "vault"]
        assert all(alive(pid) for pid in pids.values())
        # The trace viewer is in DIR/env, and the operator and the Ray head export their spans to it.
        viewer = summary["traceViewerUrl"]
        assert viewer and env["OTEL_EXPORTER_OTLP_ENDPOINT"] == env["SOVEREIGN_TRACE_VIEWER_URL"] == viewer
        for component in ("operator", "ray"):
            assert process_environment(pids[component])["OTEL_EXPORTER_OTLP_ENDPOINT"] == viewer, component

        # A second `up` reuses the running stack instead of starting another.
        sovereign("up", "--state-dir", str(state_dir), "--no-examples")
        assert {c["name"]: c["pid"] for c in status_json(state_dir)[1]["components"]} == pids

        # The operator exits (as one that lost its Lease): started again without a person, as a
        # Deployment's pod would be (sovereign_devstack.supervisor), and it leads again.
        [first] = children(pids["operator"])
        os.kill(first, signal.SIGKILL)
        second = wait_until(
            lambda: [p for p in children(pids["operator"]) if p != first], "a new operator", 60
        )
        liveness = json.loads((state_dir / "state.json").read_text())["operator_liveness_url"]
        wait_until(lambda: ok(liveness), "the new operator leading (its liveness answers)", 60)
        assert "starting it again in 10 s" in operator_log.read_text()
        operators = [first, *second]
    finally:
        down = json.loads(sovereign("down", "--state-dir", str(state_dir), "--output", "json").stdout)
    stopped = ["kube-apiserver", "operator", "ray", "token-projector", "trace-viewer", "vault"]
    assert sorted(down["stopped"]) == stopped
    assert not any(alive(pid) for pid in [*pids.values(), *operators])
    code, status = status_json(state_dir)
    assert code == 1 and status["up"] is False


@pytest.mark.process
@pytest.mark.faults  # `make faults`: the whole platform stopped and started again, kept out of `make test`
def test_down_then_up_brings_the_platform_back_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOVEREIGN_PHOENIX", str(phoenix_stand_in(tmp_path / "viewer")))
    state_dir = tmp_path / "state"
    try:
        sovereign("up", "--state-dir", str(state_dir))
        before = platform_record(read_env_file(state_dir / "env"))
    finally:
        sovereign("down", "--state-dir", str(state_dir))

    # Up again on the same state dir, applying nothing: the platform comes back as it was (the API server's
    # objects on disk as etcd keeps them, OpenBao's raft storage unsealed by `up`).
    try:
        sovereign("up", "--state-dir", str(state_dir), "--no-examples")
        env = read_env_file(state_dir / "env")
        cluster = KubeconfigAt(env["KUBECONFIG"])
        wait_until(lambda: all_ready(cluster, "tenants"), "the Tenants Ready again", timeout=120)
        after = platform_record(env)
        # The same Tenants (same uids) with the same keys: nothing was made anew.
        assert after.tenants == before.tenants and after.key_versions == before.key_versions
        # Ciphertext made before the restart decrypts under the nation's key.
        vault = hvac.Client(url=env["VAULT_ADDR"], token=env["VAULT_TOKEN"], verify=env["VAULT_CACERT"])
        decrypted = vault.secrets.transit.decrypt_data("tenant-fra", before.ciphertext)["data"]["plaintext"]
        assert decrypted == PLAINTEXT
        # The nations' audit logs are readable and verify, earlier records included.
        audit = json.loads(cli(env, "audit", "verify", "--nation", "FRA", "--output", "json").stdout)
        assert audit["ok"] is True, audit
        assert audit["streams"]["decisions"]["lastSeq"] >= before.audit_last_seq["decisions"] > 0
        # The models serve again (the operator redeploys them on the new Ray), and the dataset store that
        # was ingested before the restart answers a search without being ingested again.
        wait_until(lambda: all_ready(cluster, "modeldeployments"), "the models Ready again", timeout=300)
        assert after.dataset_versions == before.dataset_versions
        token = cli(env, "token", "issue", "--nation", "FRA", "--clearance", "NATO SECRET").stdout.strip()
        found = cli(
            env,
            "dataset",
            "search",
            "assessment",
            "-d",
            "fra/intel-summaries",
            "--token",
            token,
            "--nation",
            "FRA",
            "--output",
            "json",
        )
        assert json.loads(found.stdout)["results"], found.stdout
    finally:
        sovereign("down", "--state-dir", str(state_dir))


PLAINTEXT = base64.b64encode(b"written before the restart").decode()


@dataclass(frozen=True)
class PlatformRecord:
    """What must survive `down` and `up`: observed as a user would, with kubectl, hvac and the CLI."""

    tenants: dict[str, str]  # name -> uid
    key_versions: dict[str, str]
    dataset_versions: dict[str, str]  # namespace/name -> indexVersion
    ciphertext: str
    audit_last_seq: dict[str, int]


def platform_record(env: dict[str, str]) -> PlatformRecord:
    cluster = KubeconfigAt(env["KUBECONFIG"])
    tenants = json.loads(kubectl(cluster, "get", "tenants", "-o", "json").stdout)["items"]
    datasets = json.loads(kubectl(cluster, "get", "datasets", "-A", "-o", "json").stdout)["items"]
    vault = hvac.Client(url=env["VAULT_ADDR"], token=env["VAULT_TOKEN"], verify=env["VAULT_CACERT"])
    audit = json.loads(cli(env, "audit", "verify", "--nation", "FRA", "--output", "json").stdout)
    return PlatformRecord(
        tenants={t["metadata"]["name"]: t["metadata"]["uid"] for t in tenants},
        key_versions={t["metadata"]["name"]: str(t["status"].get("keyVersion")) for t in tenants},
        dataset_versions={
            f"{d['metadata']['namespace']}/{d['metadata']['name']}": str(d["status"].get("indexVersion"))
            for d in datasets
        },
        ciphertext=vault.secrets.transit.encrypt_data("tenant-fra", PLAINTEXT)["data"]["ciphertext"],
        audit_last_seq={name: stream["lastSeq"] for name, stream in audit["streams"].items()},
    )


def all_ready(cluster: KubeconfigAt, kind: str) -> bool:
    items = json.loads(kubectl(cluster, "get", kind, "-A", "-o", "json").stdout)["items"]
    return bool(items) and all(
        any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (i.get("status") or {}).get("conditions", [])
        )
        for i in items
    )


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it after `source DIR/env`."""
    result = subprocess.run(
        [*SOVEREIGN, *args], capture_output=True, text=True, cwd=ROOT, timeout=180, env={**os.environ, **env}
    )
    if result.returncode != 0:
        raise AssertionError(f"sovereign {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.mark.process
@pytest.mark.faults  # `make faults`: kept out of `make test` for its time
def test_failed_up_leaves_nothing_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOVEREIGN_PHOENIX", str(phoenix_stand_in(tmp_path / "viewer")))  # stopped too
    state_dir = tmp_path / "state"
    result = sovereign(
        "up", "--state-dir", str(state_dir), "--examples-dir", str(tmp_path / "missing"), check=False
    )
    assert result.returncode == 1
    assert "examples directory" in result.stderr and "does not exist" in result.stderr
    assert not (state_dir / "state.json").exists()
    assert not list(state_dir.glob("*.pid")), "every process the failed `up` started must be stopped"


@pytest.mark.process
def test_external_needs_vault_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    result = subprocess.run(
        [*SOVEREIGN, "up", "--external", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert "VAULT_ADDR" in result.stderr


def test_external_uses_the_configured_cluster_and_vault_and_starts_nothing(
    tmp_path: Path, kube_api, vault_server
) -> None:
    env = {
        **os.environ,
        "KUBECONFIG": str(kube_api.kubeconfig),
        **vault_server.env(),
    }
    state_dir = tmp_path / "external"
    result = subprocess.run(
        [*SOVEREIGN, "up", "--external", "--no-examples", "--state-dir", str(state_dir), "--output", "json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["external"] is True and summary["kubernetes"] == kube_api.url
    assert not list(state_dir.glob("*.pid")), "--external must not start any process"

    vault = vault_server.client()
    assert vault.sys.list_mounted_secrets_engines()["data"]["transit/"]["type"] == "transit"
    written = read_env_file(state_dir / "env")
    assert written["VAULT_ADDR"] == vault_server.url and written["VAULT_CACERT"] == str(vault_server.ca_cert)

    down = json.loads(sovereign("down", "--state-dir", str(state_dir), "--output", "json").stdout)
    assert down["stopped"] == []
    assert vault.sys.read_health_status(method="GET")["initialized"], (
        "down must leave external systems running"
    )
