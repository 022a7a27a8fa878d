"""`sovereign policy test` and `sovereign policy schema`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from sovereign.cli.main import app
from sovereign.policy.cases import CASES_DIR
from sovereign.policy.schema import render_schema

runner = CliRunner()


def test_policy_test_passes_and_prints_deciding_ids() -> None:
    result = runner.invoke(app, ["policy", "test"])
    assert result.exit_code == 0, result.output
    assert "markings/limit-denied-nations" in result.output
    assert "cases passed" in result.output


def test_policy_test_json() -> None:
    result = runner.invoke(app, ["policy", "test", "--output", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["failed"] == 0 and report["passed"] >= 100
    assert all(case["passed"] for case in report["cases"])


def test_policy_test_exits_1_on_a_mismatch(tmp_path: Path) -> None:
    shutil.copytree(CASES_DIR, tmp_path / "tests")
    allowed = sorted((tmp_path / "tests" / "ALLOW").glob("*.json"))[0]
    allowed.rename(tmp_path / "tests" / "DENY" / allowed.name)
    result = runner.invoke(app, ["policy", "test", "--cases", str(tmp_path / "tests"), "--output", "json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert [c["name"] for c in report["cases"] if not c["passed"]] == [allowed.stem]


def test_policy_schema_writes_and_checks(tmp_path: Path) -> None:
    target = tmp_path / "schema.cedarschema.json"
    target.write_text("{}")
    assert runner.invoke(app, ["policy", "schema", "--path", str(target), "--check"]).exit_code == 1
    assert runner.invoke(app, ["policy", "schema", "--path", str(target)]).exit_code == 0
    assert target.read_text() == render_schema()
    assert runner.invoke(app, ["policy", "schema", "--path", str(target), "--check"]).exit_code == 0
