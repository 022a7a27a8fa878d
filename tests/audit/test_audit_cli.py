"""`sovereign audit verify/show` as a nation's auditor uses them: the real operator provisioned FRA and DEU
(transit keys, Vault policies and Kubernetes-auth roles), FRA's log is written with FRA's own role, and the
CLI logs in as FRA through its ServiceAccount. DEU's role cannot decrypt FRA's log (403 from Vault)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest

from sovereign.audit import AuditAccessDenied, AuditLog, verify
from sovereign.clients.kubernetes import create_namespaced_service_account_token, load_api_client
from sovereign.clients.vault import kubernetes_login
from sovereign.domain.nations import SERVING_SERVICE_ACCOUNT, tenant_namespace, vault_role_name
from tests.audit.samples import make_record
from tests.operator.harness import OperatorProcess, Platform
from tests.operator.tenants import apply_tenant, delete_tenant, wait_ready

SOVEREIGN = [str(Path(sys.executable).parent / "sovereign")]
NATIONS = ("fra", "deu")


def login_as(platform: Platform, nation: str) -> hvac.Client:
    jwt = create_namespaced_service_account_token(
        load_api_client(str(platform.kube.kubeconfig)), tenant_namespace(nation), SERVING_SERVICE_ACCOUNT
    )
    client, _ = kubernetes_login(
        platform.vault_url, "kubernetes", vault_role_name(nation), jwt, verify=str(platform.vault_cacert)
    )
    return client


@pytest.fixture(scope="module")
def fra_log(
    platform: Platform,
    running_operator: OperatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    for name in NATIONS:
        apply_tenant(platform.kube, name, name.upper(), clearance="NATO SECRET")
    try:
        for name in NATIONS:
            wait_ready(platform.kube, name, timeout=60)
        directory = tmp_path_factory.mktemp("audit") / "fra"
        with AuditLog(directory, "FRA", login_as(platform, "FRA")) as log:
            log.append_many([make_record(index) for index in range(50)])
        yield directory
    finally:
        for name in NATIONS:
            delete_tenant(platform.kube, name)


def audit(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**platform.kube.env(), **platform.vault_env(), "COLUMNS": "200"}
    return subprocess.run([*SOVEREIGN, "audit", *args], capture_output=True, text=True, env=env, timeout=60)


def test_the_nations_auditor_verifies_and_reads_its_log(platform: Platform, fra_log: Path) -> None:
    verified = audit(platform, "verify", "--nation", "FRA", "--dir", str(fra_log), "--output", "json")
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    # A directory holding one log directly is reported as the stream "log".
    assert report["ok"] is True and list(report["streams"]) == ["log"]
    assert report["streams"]["log"]["lastSeq"] == 50 and report["streams"]["log"]["problems"] == []
    shown = audit(
        platform, "show", "--nation", "FRA", "--dir", str(fra_log), "--since", "1h", "--output", "json"
    )
    assert shown.returncode == 0, shown.stderr
    assert len(json.loads(shown.stdout)) == 50
    table = audit(platform, "show", "--nation", "FRA", "--dir", str(fra_log))
    assert table.returncode == 0 and "policy-decision" in table.stdout


def test_another_nations_credentials_cannot_decrypt_it(platform: Platform, fra_log: Path) -> None:
    with pytest.raises(AuditAccessDenied, match=r"cannot decrypt FRA's audit data keys .*\(403\)"):
        verify(fra_log, login_as(platform, "DEU"), "FRA")


def test_an_altered_record_is_located(platform: Platform, fra_log: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "fra"
    shutil.copytree(fra_log, copy)
    [segment] = [p for p in copy.iterdir() if p.name.startswith("segment")]
    lines = segment.read_text().splitlines(keepends=True)
    record = json.loads(lines[19])
    record["ciphertext"] = record["ciphertext"][:-4] + (
        "AAAA" if record["ciphertext"][-4:] != "AAAA" else "BBBB"
    )
    lines[19] = json.dumps(record) + "\n"
    segment.write_text("".join(lines))
    result = audit(platform, "verify", "--nation", "FRA", "--dir", str(copy))
    assert result.returncode == 1
    assert "seq 20" in result.stdout, result.stdout
