"""`sovereign crds generate` keeps the chart's policy copies equal to policies/, and `--check` catches a copy
that differs, is missing, or outlived its source."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from sovereign.chart_files import chart_file_sources, stale_chart_files, write_chart_files
from sovereign.cli.crds_commands import app
from tests.chart.rendering import CHART_DIR, ROOT


def test_the_committed_copies_are_current() -> None:
    assert stale_chart_files(CHART_DIR / "files") == []


def test_the_copies_are_what_the_operator_reads() -> None:
    # PolicyBundle.load reads every *.cedar of policies/cedar; the Vault policies are the site admin's.
    assert set(chart_file_sources()) == {
        "policies/cedar/base.cedar",
        "policies/cedar/schema.cedarschema.json",
        "policies/vault/sovereign-nation.hcl",
        "policies/vault/sovereign-operator.hcl",
    }


def _fake_repository(tmp_path: Path) -> Path:
    repository = tmp_path / "repo"
    for folder in ("policies/cedar", "policies/vault"):
        shutil.copytree(ROOT / folder, repository / folder)
    return repository


def test_check_catches_an_edited_a_missing_and_an_orphan_copy(tmp_path: Path) -> None:
    repository, files = _fake_repository(tmp_path), tmp_path / "files"
    write_chart_files(files, repository)
    assert stale_chart_files(files, repository) == []

    (files / "policies/cedar/base.cedar").write_text("// edited in the chart\n")
    (files / "policies/vault/sovereign-operator.hcl").unlink()
    (repository / "policies/cedar/extra.cedar").write_text("// new base policy\n")
    (files / "policies/cedar/old.cedar").write_text("// its source was deleted\n")
    assert stale_chart_files(files, repository) == [
        "policies/cedar/base.cedar",
        "policies/cedar/extra.cedar",
        "policies/cedar/old.cedar",
        "policies/vault/sovereign-operator.hcl",
    ]
    write_chart_files(files, repository)
    assert stale_chart_files(files, repository) == []
    assert not (files / "policies/cedar/old.cedar").exists()


def test_the_cli_check_fails_on_a_stale_copy(tmp_path: Path) -> None:
    files = tmp_path / "files"
    shutil.copytree(CHART_DIR / "files", files)
    runner = CliRunner()
    args = ["--out", str(CHART_DIR / "crds"), "--chart-files", str(files), "--check"]
    assert runner.invoke(app, args).exit_code == 0
    (files / "policies/vault/sovereign-operator.hcl").write_text("# edited\n")
    refused = runner.invoke(app, args)
    assert refused.exit_code != 0
    assert "policies/vault/sovereign-operator.hcl" in refused.output
