"""bench/policy_verify.py on a tiny catalogue: it still runs against the verification's API, proves the
benchmark's bundles and writes its section (the full run is `make bench-policy-verify`, not a test)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def test_the_verify_benchmark_runs_on_a_tiny_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(BENCH_DIR))  # the scripts import their siblings, as when run
    bench = importlib.import_module("policy_verify")
    benchmarks = tmp_path / "BENCHMARKS.md"
    argv = ["--tenants", "5", "--resources", "30", "--runs", "1", "--output", "json"]
    assert bench.main([*argv, "--benchmarks-file", str(benchmarks)]) == 0
    results = json.loads(capsys.readouterr().out)
    assert (results["tenants"], results["resources"]) == (5, 30)
    for bundle in ("bundle", "embargo"):
        measured = results[bundle]
        assert measured["verification"]["ok"] and measured["region"]["ok"]
        assert measured["verification"]["cells"] > measured["baseline_matrix_cells"] > 0
        assert measured["verify_to_matrix"] > 0
    section = benchmarks.read_text()
    assert "## Policy verification" in section
    assert "| ↳ every invariant proven | yes |" in section
