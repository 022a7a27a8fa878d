"""CRD YAML comes only from the spec models, and the devstack's API enforces what the models say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sovereign.specs import CUSTOM_RESOURCES, TENANT_CRD
from sovereign.specs.crd_yaml import build_crd, render_crd_yaml
from tests.helpers import ROOT, kubectl, wait_until
from tests.servers import KubeAPI

CRD_DIR = ROOT / "charts" / "sovereign" / "crds"


@pytest.mark.parametrize("info", CUSTOM_RESOURCES, ids=lambda info: info.name)
def test_committed_crd_yaml_matches_the_spec_models(info) -> None:
    committed = CRD_DIR / f"{info.name}.yaml"
    assert committed.exists(), f"{committed} is missing: run `sovereign crds generate`"
    assert committed.read_text() == render_crd_yaml(info), "CRD YAML is stale: run `sovereign crds generate`"


def _walk_schema(node: dict, path: str = "") -> list[str]:
    """Paths of schema nodes that are not structural (no type and not preserve-unknown-fields)."""
    problems = []
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(path or "<root>")
    for key in ("$ref", "anyOf", "oneOf", "allOf"):
        if key in node:
            problems.append(f"{path}.{key}")
    for name, child in node.get("properties", {}).items():
        problems += _walk_schema(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        problems += _walk_schema(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        problems += _walk_schema(node["additionalProperties"], f"{path}{{}}")
    return problems


@pytest.mark.parametrize("info", CUSTOM_RESOURCES, ids=lambda info: info.name)
def test_generated_schema_is_structural(info) -> None:
    schema = build_crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _walk_schema(schema) == []


def test_crd_generate_check_fails_on_stale_yaml(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sovereign.cli.main import app

    runner = CliRunner()
    assert runner.invoke(app, ["crds", "generate", "--out", str(tmp_path)]).exit_code == 0
    assert runner.invoke(app, ["crds", "generate", "--check", "--out", str(tmp_path)]).exit_code == 0
    (tmp_path / f"{TENANT_CRD.name}.yaml").write_text("# edited by hand\n")
    result = runner.invoke(app, ["crds", "generate", "--check", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "out of date" in result.output


TENANT = """
apiVersion: sovereign.ai/v1alpha1
kind: Tenant
metadata: {{name: {name}}}
spec:
  nation: {nation}
  displayName: Test nation
  clearance: {clearance}
"""


@pytest.fixture(scope="module")
def tenant_crd(kube_api: KubeAPI) -> None:
    kubectl(kube_api, "apply", "-f", str(CRD_DIR / f"{TENANT_CRD.name}.yaml"))
    wait_until(lambda: kubectl(kube_api, "get", "tenants", check=False).returncode == 0, "tenants served")


def test_generated_tenant_crd_defaults_and_validates_on_the_api(kube_api: KubeAPI, tenant_crd: None) -> None:
    kubectl(
        kube_api,
        "apply",
        "-f",
        "-",
        input=TENANT.format(name="crdtest-nld", nation="NLD", clearance="NATO SECRET"),
    )
    tenant = json.loads(kubectl(kube_api, "get", "tenant", "crdtest-nld", "-o", "json").stdout)
    assert tenant["spec"]["quotas"]["maxModels"] == 10, "defaults from the spec model are applied by the API"
    assert tenant["spec"]["keyRotation"] == {"period": "720h"}

    table = kubectl(kube_api, "get", "tenants").stdout
    assert table.split("\n")[0].split()[:4] == ["NAME", "NATION", "CLEARANCE", "READY"]
    assert "crdtest-nld" in table and "NATO SECRET" in table


@pytest.mark.parametrize(
    ("nation", "clearance", "field"),
    [("XXX", "NATO SECRET", "spec.nation"), ("NLD", "TOP SECRET", "spec.clearance")],
    ids=["unknown-nation-code", "unknown-clearance"],
)
def test_generated_tenant_crd_rejects_bad_markings_naming_the_field(
    kube_api: KubeAPI, tenant_crd: None, nation: str, clearance: str, field: str
) -> None:
    manifest = TENANT.format(name="crdtest-bad", nation=nation, clearance=clearance)
    result = kubectl(kube_api, "apply", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert field in result.stderr and "Unsupported value" in result.stderr


def test_spec_model_rejects_unknown_nation_codes() -> None:
    from pydantic import ValidationError

    from sovereign.specs import TenantSpec

    with pytest.raises(ValidationError, match="ISO 3166-1 alpha-3"):
        TenantSpec.model_validate({"nation": "XXX", "displayName": "x", "clearance": "NATO SECRET"})
    spec = TenantSpec.model_validate(
        yaml.safe_load(TENANT.format(name="n", nation="FRA", clearance="NATO SECRET"))["spec"]
    )
    assert spec.quotas.max_models == 10


def test_chart_ships_the_generated_crds_and_lints_clean() -> None:
    import helm_python
    import kubernetes_validate

    from tests.chart.rendering import REQUIRED_VALUES

    chart_dir = ROOT / "charts" / "sovereign"
    # The chart's values.schema.json requires vault.address and the token Secret: lint as a user installs.
    report = helm_python.lint(str(chart_dir), REQUIRED_VALUES)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], "lint warnings or errors"

    shipped = {
        Path(crd["name"]).name: yaml.safe_load(crd["data"])
        for crd in helm_python.Chart.load(str(chart_dir)).crds
    }
    assert shipped == {f"{info.name}.yaml": build_crd(info) for info in CUSTOM_RESOURCES}
    for crd in shipped.values():  # raises with the offending field if Kubernetes' own schema disagrees
        kubernetes_validate.validate(crd, "1.32", strict=True)
