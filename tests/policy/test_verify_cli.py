"""`sovereign policy verify`: from files (a bundle's ConfigMap and a catalogue, as kubectl prints them) in
process, and once from a cluster with the real operator. Exit codes: 0 proven, 1 not, 2 bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from sovereign.cli.main import app
from sovereign.policy.bundle import BUNDLE_CONFIGMAP, VERSION_KEY, PolicyBundle
from tests.operator.broken_policies import base_without_clearance_limit
from tests.operator.harness import Platform
from tests.policy.test_cli_check_e2e import nations, sovereign

__all__ = ["nations"]  # the e2e module's fixture (Tenants, a model and a dataset on the cluster), reused

runner = CliRunner()
PERMIT_LINE = "markings/permit-cleared-releasable-compartmented"


def tenant(nation: str, clearance: str) -> dict[str, Any]:
    return {
        "apiVersion": "sovereign.ai/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": nation.lower(), "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nation": nation, "clearance": clearance},
    }


CATALOGUE = [
    tenant("FRA", "NATO SECRET"),
    tenant("DEU", "NATO SECRET"),
    {
        "apiVersion": "sovereign.ai/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "fra-analyst", "namespace": "tenant-fra"},
        "spec": {"model": "analyst", "markings": {"classification": "NATO SECRET", "releasableTo": ["DEU"]}},
    },
    {
        "apiVersion": "sovereign.ai/v1alpha1",
        "kind": "DataSet",
        "metadata": {"name": "reports", "namespace": "tenant-deu"},
        "spec": {"markings": {"classification": "NATO RESTRICTED"}},
    },
]


def configmap(data: dict[str, str]) -> dict[str, Any]:
    metadata = {"name": BUNDLE_CONFIGMAP, "namespace": "sovereign-system"}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, Any], str]:
    def write(name: str, content: Any) -> str:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        return str(path)

    return write


@pytest.fixture
def catalogue(write: Callable[[str, Any], str]) -> str:
    # as `kubectl get tenants,modeldeployments,datasets -A -o yaml` prints it
    return write("catalogue.yaml", {"apiVersion": "v1", "kind": "List", "items": CATALOGUE})


@pytest.fixture
def broken_data() -> dict[str, str]:
    """A published bundle whose base was edited: limit-clearance and the permit's clearance term gone."""
    data = PolicyBundle.load().to_configmap_data()
    data["base.cedar"] = base_without_clearance_limit(data["base.cedar"])
    del data[VERSION_KEY]  # edited on purpose: its version is computed
    return data


def verify(*args: str) -> Result:
    return runner.invoke(app, ["policy", "verify", *args], env={"COLUMNS": "200"})


def test_the_shipped_bundle_is_proven(write: Callable[[str, Any], str], catalogue: str) -> None:
    bundle = write("bundle.yaml", configmap(PolicyBundle.load().to_configmap_data()))
    result = verify("--bundle", bundle, "--catalogue", catalogue)
    assert result.exit_code == 0, result.output
    for invariant in ("no-read-up", "releasability", "originator-control", "markings"):
        assert f"✓ {invariant} holds" in result.stdout
    assert "2 nations, 2 resources," in result.stdout and "proven: every invariant holds" in result.stdout


def test_a_broken_base_prints_its_counterexample_and_exits_1(
    write: Callable[[str, Any], str], catalogue: str, broken_data: dict[str, str]
) -> None:
    bundle = write("bundle.yaml", configmap(broken_data))
    result = verify("--bundle", bundle, "--catalogue", catalogue)
    assert result.exit_code == 1, result.output
    assert "✗ no-read-up: 7 violation(s)" in result.stdout
    assert "✓ releasability holds" in result.stdout
    row = next(line for line in result.stdout.splitlines() if "FRA user at NATO UNCLASSIFIED" in line)
    assert "Model fra/analyst" in row and PERMIT_LINE in row
    assert "allowed at NATO UNCLASSIFIED to a resource marked NATO SECRET" in row
    assert "not proven: breaks no-read-up" in result.stdout


def test_json_has_every_invariant_and_the_counterexamples(
    write: Callable[[str, Any], str], catalogue: str, broken_data: dict[str, str]
) -> None:
    bundle = write("bundle.yaml", configmap(broken_data))
    result = verify("--bundle", bundle, "--catalogue", catalogue, "--output", "json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["unanalysable"] is None
    assert report["bundleVersion"] == PolicyBundle.from_edited_configmap_data(broken_data).version
    assert (report["nations"], report["resources"]) == (2, 2) and report["cells"] > 0
    by_name = {i["invariant"]: i for i in report["invariants"]}
    assert set(by_name) == {"no-read-up", "releasability", "originator-control", "markings"}
    read_up = by_name["no-read-up"]
    assert not read_up["holds"] and read_up["violations"] == len(read_up["counterexamples"]) == 7
    assert {
        "invariant": "no-read-up",
        "principal": {"nation": "FRA", "clearance": "NATO UNCLASSIFIED", "compartments": [], "groups": []},
        "resource": "fra/analyst",
        "kind": "Model",
        "decidingPolicyIds": [PERMIT_LINE],
        "why": "allowed at NATO UNCLASSIFIED to a resource marked NATO SECRET",
    } in read_up["counterexamples"]
    assert all(by_name[name]["holds"] for name in ("releasability", "originator-control", "markings"))


def test_a_multi_document_catalogue_is_read_too(write: Callable[[str, Any], str]) -> None:
    bundle = write("bundle.yaml", configmap(PolicyBundle.load().to_configmap_data()))
    documents = write("catalogue.yaml", yaml.safe_dump_all(CATALOGUE))
    result = verify("--bundle", bundle, "--catalogue", documents, "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["resources"] == 2


BAD_INPUT = {
    "a catalogue without a bundle": (lambda w, c, b: ["--catalogue", c], "--catalogue needs --bundle"),
    "a bundle without a catalogue": (lambda w, c, b: ["--bundle", b], "--bundle needs --catalogue"),
    "a bundle that is not YAML": (
        lambda w, c, b: ["--bundle", w("b.yaml", "data: [unclosed"), "--catalogue", c],
        "cannot read",
    ),
    "a bundle that is not a ConfigMap": (
        lambda w, c, b: ["--bundle", c, "--catalogue", c],
        "is not one ConfigMap manifest",
    ),
    "an edited bundle that kept its version": (
        lambda w, c, b: ["--bundle", w("e.yaml", _with_stale_version(b)), "--catalogue", c],
        "refusing a torn or edited bundle (edited on purpose? remove its `version` key)",
    ),
    "a bundle without its base": (
        lambda w, c, b: [
            "--bundle",
            w("n.yaml", configmap({"schema.cedarschema.json": "{}"})),
            "--catalogue",
            c,
        ],
        "policy bundle has no 'base.cedar'",
    ),
    "a catalogue that is not objects": (
        lambda w, c, b: ["--bundle", b, "--catalogue", w("c.yaml", "- just\n- strings\n")],
        "holds something that is not a Kubernetes object",
    ),
    "a missing file": (lambda w, c, b: ["--bundle", b, "--catalogue", "/nonexistent/c.yaml"], "cannot read"),
}


def _with_stale_version(bundle_path: str) -> dict[str, Any]:
    manifest = yaml.safe_load(Path(bundle_path).read_text())
    manifest["data"]["base.cedar"] += "\n// edited\n"
    return dict(manifest)


@pytest.mark.parametrize(("arguments", "message"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_exits_2_and_says_why(
    write: Callable[[str, Any], str], catalogue: str, arguments: Callable[..., list[str]], message: str
) -> None:
    bundle = write("bundle.yaml", configmap(PolicyBundle.load().to_configmap_data()))
    result = verify(*arguments(write, catalogue, bundle))
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_the_cluster_bundle_is_proven(platform: Platform, nations: None) -> None:
    proven = sovereign(platform, "policy", "verify")
    assert proven.returncode == 0, proven.stdout + proven.stderr
    assert "proven: every invariant holds" in proven.stdout
    report = json.loads(sovereign(platform, "policy", "verify", "--output", "json").stdout)
    assert report["ok"] and report["nations"] == 3 and report["resources"] == 2
