"""The platform's wheel, built as the image builds it (the Dockerfile's build stage: the same sources, no
devstack/): it holds the product and its policies as package data, and nothing of the devstack."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.process  # pip builds the wheel; the installed code runs in a subprocess

# What the Dockerfile's build stage copies into its build context (the devstack is not there).
SOURCES = ("pyproject.toml", "setup.py", "README.md", "sovereign", "operator", "serving", "policies")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheels")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=ignore)
        else:
            shutil.copy2(origin, source / name)
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "--wheel-dir", str(out), str(source)], check=True, timeout=300)
    (built,) = out.glob("sovereign_ai_platform-*.whl")
    return built


def _names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_holds_no_devstack(wheel: Path) -> None:
    names = _names(wheel)
    assert not [n for n in names if n.startswith("sovereign_devstack/")]
    assert not [n for n in names if "devstack" in n.rsplit("/", 1)[-1] or n.endswith("tiny_model.py")]
    with zipfile.ZipFile(wheel) as archive:
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "[sovereign.cli]" not in archive.read(entry_points).decode()  # no plugin of its own


def test_the_wheel_holds_the_product(wheel: Path) -> None:
    tops = {name.split("/", 1)[0] for name in _names(wheel) if "/" in name and ".dist-info/" not in name}
    assert tops == {"sovereign", "sovereign_operator", "sovereign_serving", "sovereign_policies"}
    assert {"sovereign/cli/main.py", "sovereign_operator/__main__.py"} <= set(_names(wheel))


def test_the_wheel_holds_every_policy_file(wheel: Path) -> None:
    in_wheel = {
        n.removeprefix("sovereign_policies/") for n in _names(wheel) if n.startswith("sovereign_policies/")
    }
    in_repository = {
        p.relative_to(ROOT / "policies").as_posix()
        for p in (ROOT / "policies").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert in_wheel == in_repository
    assert {"cedar/base.cedar", "cedar/schema.cedarschema.json", "vault/sovereign-operator.hcl"} <= in_wheel


def test_the_installed_code_finds_the_policies_in_the_package(wheel: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
    # Without site-packages (-S): only the wheel's files are importable, neither the editable install nor
    # the devstack.
    probe = (
        "import importlib.util, sys; import sovereign.policy_files as p; "
        "print(p.CEDAR_DIR / 'base.cedar', (p.VAULT_DIR / 'sovereign-nation.hcl').is_file(), "
        "importlib.util.find_spec('sovereign_devstack'))"
    )
    answer = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site")},
        timeout=60,
    )
    cedar, vault_found, devstack = answer.stdout.split()
    assert Path(cedar) == tmp_path / "site" / "sovereign_policies" / "cedar" / "base.cedar"
    assert Path(cedar).is_file() and vault_found == "True" and devstack == "None"
