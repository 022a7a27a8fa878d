"""The chart archive the bundle carries: Helm's own layout (checked against helm-python-sdk), reproducible."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import yaml

from sovereign.packaging.chart_archive import (
    ChartError,
    chart_files,
    package_chart,
    parse_helmignore,
    read_chart_archive,
)

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "sovereign"


def test_same_members_and_content_as_helm_package(tmp_path: Path) -> None:
    import helm_python

    name, data = package_chart(CHART)
    helms = Path(helm_python.package(str(CHART), destination=str(tmp_path)))
    assert name == helms.name
    ours, theirs = read_chart_archive(data), read_chart_archive(helms.read_bytes())
    assert list(ours) == list(theirs), "same members in the same order"
    chart_yaml = next(n for n in ours if n.endswith("/Chart.yaml"))
    # Helm writes Chart.yaml back from its parsed metadata; ours is the file as written.
    assert yaml.safe_load(ours.pop(chart_yaml)) == yaml.safe_load(theirs.pop(chart_yaml))
    assert ours == theirs


def test_helm_loads_the_archive_and_renders_it() -> None:
    import helm_python

    name, data = package_chart(CHART)
    chart = helm_python.Chart.load_archive(data)
    try:
        assert f"{chart.name}-{chart.version}.tgz" == name
        assert sorted(Path(c["name"]).name for c in chart.crds) == sorted(
            p.name for p in (CHART / "crds").glob("*.yaml")
        )
        # The chart's two required values (values.schema.json); everything else is a default.
        values = {
            "vault": {"address": "https://vault.vault.svc:8200", "auth": {"token": {"existingSecret": "t"}}}
        }
        rendered = chart.render(values, name="sovereign", namespace="sovereign-system", is_install=True)
        assert any(path.endswith("deployment.yaml") for path in rendered), sorted(rendered)
    finally:
        chart.close()


def test_reproducible_bytes_without_time_or_owner() -> None:
    first, second = package_chart(CHART)[1], package_chart(CHART)[1]
    assert first == second
    assert first[4:8] == b"\0\0\0\0", "gzip header time"
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as archive:
        for member in archive.getmembers():
            assert member.isfile() and member.name.startswith("sovereign/")
            assert (member.mtime, member.uid, member.gid, member.uname, member.mode) == (0, 0, 0, "", 0o644)


def _chart(tmp_path: Path, helmignore: str, files: list[str]) -> Path:
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 1.2.3\n")
    (tmp_path / ".helmignore").write_text(helmignore)
    for relative in files:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(relative)
    return tmp_path


@pytest.mark.parametrize(
    ("helmignore", "kept"),
    [
        ("", ["Chart.yaml", "values.yaml", "templates/a.yaml", ".helmignore", "README.md", "docs/x.txt"]),
        (".helmignore\n*.md\n", ["Chart.yaml", "values.yaml", "templates/a.yaml", "docs/x.txt"]),
        ("docs/\n", ["Chart.yaml", "values.yaml", "templates/a.yaml", ".helmignore", "README.md"]),
        (
            "/*.md\n# comment\n",
            ["Chart.yaml", "values.yaml", "templates/a.yaml", ".helmignore", "docs/x.txt"],
        ),
        ("*/x.txt\n", ["Chart.yaml", "values.yaml", "templates/a.yaml", ".helmignore", "README.md"]),
    ],
    ids=["nothing", "by-name", "directory", "anchored", "structural"],
)
def test_helmignore_rules(tmp_path: Path, helmignore: str, kept: list[str]) -> None:
    files = ["values.yaml", "templates/a.yaml", "templates/.hidden.yaml", "README.md", "docs/x.txt"]
    assert chart_files(_chart(tmp_path, helmignore, files)) == kept


def test_go_glob_star_does_not_cross_directories() -> None:
    (rule,) = [r for r in parse_helmignore(["a*/b"]) if not r.pattern.pattern.startswith("templates")]
    assert rule.matches("ab/b") and not rule.matches("a/x/b")
    with pytest.raises(ChartError, match=r"\*\*"):
        parse_helmignore(["**/x"])


def test_a_chart_without_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: demo\n")
    with pytest.raises(ChartError, match="version"):
        package_chart(tmp_path)
