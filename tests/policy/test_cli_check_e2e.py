"""End to end, as a user: Tenants made Ready by the real operator, a ModelDeployment and a DataSet applied
with kubectl, tokens from `sovereign token issue`, then `sovereign policy check` and `sovereign
access-matrix` run as processes against the cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import kubectl
from tests.operator.harness import OperatorProcess, Platform
from tests.operator.tenants import apply_tenant, delete_tenant, model_deployment, wait_ready

SOVEREIGN = [str(Path(sys.executable).parent / "sovereign")]
CLEARANCES = {"fra": "NATO SECRET", "deu": "NATO SECRET", "est": "NATO RESTRICTED"}
ANALYST = model_deployment("fra", "analyst", {"classification": "NATO SECRET", "releasableTo": ["DEU"]})
REPORTS = {
    "apiVersion": "sovereign.ai/v1alpha1",
    "kind": "DataSet",
    "metadata": {"name": "reports", "namespace": "tenant-est"},
    "spec": {
        "source": "reports",
        "markings": {"classification": "NATO RESTRICTED", "releasableTo": ["NATO"]},
        "embedding": {"modelDeployment": "est-embedder"},
    },
}


def sovereign(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**platform.kube.env(), **platform.vault_env(), "VAULT_TOKEN": platform.root_token}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [*SOVEREIGN, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )


@pytest.fixture(scope="module")
def nations(platform: Platform, running_operator: OperatorProcess) -> Iterator[None]:
    for name, clearance in CLEARANCES.items():
        apply_tenant(platform.kube, name, name.upper(), clearance=clearance)
    try:
        for name in CLEARANCES:
            wait_ready(platform.kube, name, timeout=60)
        for manifest in (ANALYST, REPORTS):
            kubectl(platform.kube, "apply", "-f", "-", input=yaml.safe_dump(manifest))
        yield
    finally:
        for name in CLEARANCES:
            kubectl(platform.kube, "delete", "tenant", name, "--ignore-not-found", "--wait=false")
        for name in CLEARANCES:
            delete_tenant(platform.kube, name)


def issue(platform: Platform, nation: str, clearance: str) -> str:
    issued = sovereign(platform, "token", "issue", "--nation", nation, "--clearance", clearance)
    assert issued.returncode == 0, issued.stderr
    return issued.stdout.strip()


def test_policy_check_allows_denies_and_hides_unknown_models(platform: Platform, nations: None) -> None:
    deu, est = issue(platform, "DEU", "NATO SECRET"), issue(platform, "EST", "NATO RESTRICTED")

    allowed = sovereign(
        platform, "policy", "check", "--token", deu, "--model", "fra/analyst", "--output", "json"
    )
    assert allowed.returncode == 0, allowed.stderr
    result = json.loads(allowed.stdout)
    assert result["allowed"] and result["principal"]["nationality"] == "DEU"
    assert result["marking"] == {"classification": "NATO SECRET", "releasableTo": ["DEU", "FRA"]}
    assert result["decidingPolicyIds"] and result["bundleVersion"]

    with_data = sovereign(
        platform, "policy", "check", "--token", deu, "--model", "fra/analyst", "--dataset", "est/reports"
    )
    assert with_data.returncode == 0, with_data.stderr
    assert "ALLOW" in with_data.stdout and "NATO SECRET REL TO DEU, FRA" in with_data.stdout

    denied = sovereign(
        platform, "policy", "check", "--token", est, "--model", "fra/analyst", "--output", "json"
    )
    assert denied.returncode == 3, denied.stderr
    refusal = json.loads(denied.stdout)
    assert not refusal["allowed"] and refusal["reasons"] == [
        "fra/analyst: forbidden by markings/limit-clearance"
    ]
    assert refusal["marking"] is None

    text = sovereign(platform, "policy", "check", "--token", est, "--model", "fra/analyst")
    assert text.returncode == 3 and "DENY" in text.stdout and "markings/limit-clearance" in text.stdout

    for name in ("fra/nothing", "est/reports"):  # absent, or not a model: the same answer
        unknown = sovereign(platform, "policy", "check", "--token", deu, "--model", name, "--output", "json")
        assert unknown.returncode == 3, unknown.stderr
        assert json.loads(unknown.stdout)["reasons"] == [f"unknown resource {name!r}"]

    forged = deu[:-4] + ("AAAA" if not deu.endswith("AAAA") else "BBBB")
    refused = sovereign(platform, "policy", "check", "--token", forged, "--model", "fra/analyst")
    assert refused.returncode == 1 and "token refused (bad-signature" in refused.stderr

    for run in (allowed, with_data, denied, text, refused):
        assert deu not in run.stdout + run.stderr and est not in run.stdout + run.stderr
        assert forged not in run.stdout + run.stderr


def test_access_matrix_json_and_table(platform: Platform, nations: None) -> None:
    listed = sovereign(platform, "access-matrix", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    assert {"nation": "EST", "clearance": "NATO RESTRICTED", "suspended": False} in report["tenants"]
    assert [r["name"] for r in report["resources"]] == ["est/reports", "fra/analyst"]
    cells = {(c["nation"], c["clearance"], c["resource"]): c for c in report["cells"]}
    assert cells[("DEU", "NATO SECRET", "fra/analyst")]["allowed"]
    assert not cells[("DEU", "NATO CONFIDENTIAL", "fra/analyst")]["allowed"]
    assert not cells[("EST", "NATO RESTRICTED", "fra/analyst")]["allowed"]
    assert cells[("EST", "NATO RESTRICTED", "est/reports")]["kind"] == "Dataset"
    assert cells[("FRA", "NATO SECRET", "fra/analyst")]["decidingPolicyIds"]

    table = sovereign(platform, "access-matrix", "--nation", "DEU", "--nation", "EST")
    assert table.returncode == 0, table.stderr
    assert "fra/analyst" in table.stdout and "✓" in table.stdout and "✗" in table.stdout
    assert "FRA" not in {line.split()[1] for line in table.stdout.splitlines() if line.startswith("│ ")}
    long = sovereign(platform, "access-matrix", "--long")
    assert long.returncode == 0 and "markings/limit-clearance" in long.stdout
