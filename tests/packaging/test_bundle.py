"""`sovereign bundle create/verify`: the offline bundle from the repository's chart and a tiny real model."""

from __future__ import annotations

import io
import json
import tarfile
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sovereign.cli.main import app
from sovereign.packaging import BundleError, create_bundle, verify_bundle
from sovereign.packaging.bundle import KUBERAY_VERSION, RAY_VERSION, resolve_images
from sovereign.packaging.chart_archive import read_chart_archive

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32
runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    from sovereign_devstack.tiny_model import build_tiny_llama

    directory = tmp_path_factory.mktemp("models") / "tiny"
    return directory, build_tiny_llama(directory)


@pytest.fixture(scope="module")
def bundle(tiny_model: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "sovereign-bundle.tar"
    create_bundle(out, [tiny_model[0]], {"sovereign": f"mirror.example/sovereign@{DIGEST}"}, True)
    return out


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers()}  # type: ignore[union-attr]


def _rewrite(source: Path, target: Path, change: Callable[[dict[str, bytes]], None]) -> Path:
    members = _members(source)
    change(members)
    with tarfile.open(target, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return target


def test_created_bundle_verifies(bundle: Path, tiny_model: tuple[Path, dict[str, str]]) -> None:
    report = verify_bundle(bundle)
    assert report.ok, report.problems
    chart = yaml.safe_load((ROOT / "charts" / "sovereign" / "Chart.yaml").read_text())
    assert report.chart == f"sovereign-{chart['version']}"
    members = _members(bundle)
    assert list(members)[-1] == "MANIFEST.json", "written last"
    assert list(members)[:-1] == sorted(list(members)[:-1])
    assert f"chart/sovereign-{chart['version']}.tgz" in members
    assert {n for n in members if n.startswith("crds/")} == {
        f"crds/{p.name}" for p in (ROOT / "charts" / "sovereign" / "crds").glob("*.yaml")
    }
    assert {"policies/cedar/base.cedar", "policies/vault/sovereign-operator.hcl"} <= set(members)
    assert json.loads(members["policies/bundle.json"])["version"]


def test_model_manifest_has_every_file_with_its_sha256(
    bundle: Path, tiny_model: tuple[Path, dict[str, str]]
) -> None:
    directory, digests = tiny_model
    members = _members(bundle)
    (model,) = json.loads(members["models/manifest.json"])["models"]
    assert model["name"] == "tiny" and model["included"] is True
    assert {f["path"]: f["sha256"] for f in model["files"]} == digests
    assert {f["path"]: f["size"] for f in model["files"]} == {
        name: (directory / name).stat().st_size for name in digests
    }
    assert members["models/tiny/model.safetensors"] == (directory / "model.safetensors").read_bytes()


def test_images_carry_the_given_digest_and_the_prerequisites(bundle: Path) -> None:
    images = {i["name"]: i for i in json.loads(_members(bundle)["images.json"])["images"]}
    assert images["sovereign"]["digest"] == DIGEST
    assert images["kuberay-operator"]["reference"].endswith(f":v{KUBERAY_VERSION}")
    assert (
        images["kuberay-operator"]["role"] == "prerequisite" and images["kuberay-operator"]["digest"] is None
    )
    assert images["ray"]["reference"] == f"rayproject/ray:{RAY_VERSION}-py311"


def test_ray_version_is_the_pinned_one() -> None:
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"ray[serve]=={RAY_VERSION}" in pins


def test_two_runs_give_identical_bytes(
    bundle: Path, tiny_model: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    again = tmp_path / "again.tar"
    create_bundle(again, [tiny_model[0]], {"sovereign": f"mirror.example/sovereign@{DIGEST}"}, True)
    assert again.read_bytes() == bundle.read_bytes()


def test_the_chart_archive_loads_and_renders_in_helm(bundle: Path) -> None:
    import helm_python

    (name,) = [n for n in _members(bundle) if n.startswith("chart/")]
    data = _members(bundle)[name]
    assert any(n.endswith("/Chart.yaml") for n in read_chart_archive(data))
    chart = helm_python.Chart.load_archive(data)
    try:
        values = {
            "vault": {"address": "https://vault.vault.svc:8200", "auth": {"token": {"existingSecret": "t"}}}
        }
        assert chart.render(values, name="sovereign", namespace="sovereign-system", is_install=True)
    finally:
        chart.close()


def _flip_a_byte(name: str) -> Callable[[dict[str, bytes]], None]:
    def change(members: dict[str, bytes]) -> None:
        data = bytearray(members[name])
        data[len(data) // 2] ^= 0x01
        members[name] = bytes(data)

    return change


@pytest.mark.parametrize(
    ("change", "member", "kind"),
    [
        (_flip_a_byte("crds/tenants.sovereign.ai.yaml"), "crds/tenants.sovereign.ai.yaml", "altered"),
        (_flip_a_byte("models/tiny/model.safetensors"), "models/tiny/model.safetensors", "altered"),
        (lambda m: m.pop("policies/cedar/base.cedar"), "policies/cedar/base.cedar", "missing"),
        (lambda m: m.update({"crds/extra.yaml": b"kind: ConfigMap\n"}), "crds/extra.yaml", "extra"),
        (lambda m: m.pop("MANIFEST.json"), "MANIFEST.json", "missing"),
        (lambda m: m.update({"../escape": b"x"}), "../escape", "unsafe"),
    ],
    ids=["crd-byte", "model-byte", "removed", "added", "no-manifest", "path-escape"],
)
def test_a_tampered_bundle_fails_naming_the_member(
    bundle: Path, tmp_path: Path, change: Callable[[dict[str, bytes]], None], member: str, kind: str
) -> None:
    report = verify_bundle(_rewrite(bundle, tmp_path / "tampered.tar", change))
    assert not report.ok
    assert (member, kind) in {(p.member, p.kind) for p in report.problems}, report.problems


def test_a_manifest_rewritten_to_match_still_fails_the_content_checks(bundle: Path, tmp_path: Path) -> None:
    """Someone who also rewrites MANIFEST.json: the model file no longer matches models/manifest.json."""
    import hashlib

    def change(members: dict[str, bytes]) -> None:
        _flip_a_byte("models/tiny/model.safetensors")(members)
        manifest = json.loads(members["MANIFEST.json"])
        for entry in manifest["members"]:
            entry["sha256"] = hashlib.sha256(members[entry["path"]]).hexdigest()
        members["MANIFEST.json"] = json.dumps(manifest).encode()

    report = verify_bundle(_rewrite(bundle, tmp_path / "forged.tar", change))
    assert [(p.member, p.kind) for p in report.problems] == [("models/tiny/model.safetensors", "altered")]


def test_not_a_tar_is_unreadable(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar" * 100)
    report = verify_bundle(junk)
    assert not report.ok and report.problems[0].kind == "unreadable"


def test_a_failed_create_leaves_nothing_behind(
    tiny_model: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    out = tmp_path / "out" / "bundle.tar"
    with pytest.raises(BundleError, match="not a directory"):
        create_bundle(out, [tmp_path / "no-such-model"])

    def interrupt(path: str, _read: int) -> None:
        if path.startswith("models/tiny/"):  # while the model files are being written into the tar
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        create_bundle(out, [tiny_model[0]], include_model_files=True, progress=interrupt)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_image_options_override_and_add() -> None:
    images = {i.name: i for i in resolve_images("0.1.0", {"ray": f"mirror/ray:x@{DIGEST}", "extra": "a/b:1"})}
    assert images["ray"].digest == DIGEST and images["ray"].role == "base"
    assert images["extra"].role == "extra" and images["extra"].digest is None
    with pytest.raises(BundleError):
        resolve_images("0.1.0", {"sovereign": ""})


def test_cli_create_and_verify(tiny_model: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    out = tmp_path / "b.tar"
    created = runner.invoke(
        app, ["bundle", "create", str(out), "--models", str(tiny_model[0]), "--image", "x=y:1", "-o", "json"]
    )
    assert created.exit_code == 0, created.output
    summary = json.loads(created.stdout)
    assert summary["bundle"] == str(out) and "models/manifest.json" in {m["path"] for m in summary["members"]}
    assert not any(m["path"].startswith("models/tiny/") for m in summary["members"]), "files not included"

    verified = runner.invoke(app, ["bundle", "verify", str(out), "-o", "json"])
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["ok"] is True

    broken = _rewrite(out, tmp_path / "broken.tar", lambda m: m.pop("images.json"))
    failed = runner.invoke(app, ["bundle", "verify", str(broken)])
    assert failed.exit_code == 1
    assert "images.json: missing" in failed.stdout


def test_cli_refuses_a_bad_image_option(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bundle", "create", str(tmp_path / "b.tar"), "--image", "no-equals"])
    assert result.exit_code == 1 and "NAME=REF" in result.output
    assert not (tmp_path / "b.tar").exists()


def test_the_readme_install_command_renders(bundle: Path) -> None:
    """The `helm install --set ...` of the README's "Install on a cluster", rendered by Helm's library."""
    import re

    import helm_python

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Install on a cluster", 1)[1].split("\n## ", 1)[0]
    command = section[section.index("helm install") :].split("\nkubectl", 1)[0]
    values: dict = {}
    for key, value in re.findall(r"--set ([\w.]+)=(\S+)", command):
        *parents, leaf = key.split(".")
        target = values
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value.replace("<digest>", "ab" * 32)
    assert {"vault", "image", "otel", "runtime"} <= set(values)
    (name,) = [n for n in _members(bundle) if n.startswith("chart/")]
    chart = helm_python.Chart.load_archive(_members(bundle)[name])
    try:
        rendered = chart.render(values, name="sovereign", namespace="sovereign-system", is_install=True)
    finally:
        chart.close()
    deployment = next(yaml.safe_load(t) for p, t in rendered.items() if p.endswith("deployment.yaml"))
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"mirror.example/sovereign-ai/sovereign@sha256:{'ab' * 32}"
    # The nations' Ray pods run the same image, from the same mirror.
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SOVEREIGN_SERVING_IMAGE"] == image
