"""`verify_bundle`: is this the bundle `create_bundle` wrote, whole and unaltered, and does each part open?

Every problem is named with its member: altered (sha256 or size differs from MANIFEST.json), missing, extra,
unsafe (a path that would leave the extraction folder, a link), and content problems (the chart archive does
not open or has another version, a CRD is not a CRD, the model manifest or an included model file differs).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import yaml
from pydantic import BaseModel, ValidationError

from sovereign.packaging.bundle import (
    IMAGES,
    MANIFEST,
    MODEL_MANIFEST,
    POLICY_BUNDLE,
    BundleManifest,
    FileDigest,
    HashProgress,
    ImageRef,
    ModelManifest,
)
from sovereign.packaging.chart_archive import ChartError, read_chart_archive

_CHUNK = 1 << 20


class Problem(BaseModel):
    member: str
    kind: str  # altered | missing | extra | unsafe | invalid | unreadable
    message: str


class VerifyReport(BaseModel):
    ok: bool
    chart: str | None = None
    members: int = 0
    crds: int = 0
    models: int = 0
    problems: list[Problem] = []


def _unsafe(member: tarfile.TarInfo) -> str | None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        return "its path leaves the extraction folder"
    if not member.isfile():
        return "not a regular file"
    return None


def _digest(archive: tarfile.TarFile, member: tarfile.TarInfo, progress: HashProgress | None) -> FileDigest:
    digest, size = hashlib.sha256(), 0
    handle = archive.extractfile(member)
    assert handle is not None
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if progress:
            progress(member.name, len(chunk))
    return FileDigest(path=member.name, size=size, sha256=digest.hexdigest())


def _read(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = archive.extractfile(member)
    return handle.read() if handle else b""


def _check_chart(name: str, data: bytes, expected: str | None) -> list[str]:
    try:
        files = read_chart_archive(data)
    except ChartError as error:
        return [str(error)]
    stem = PurePosixPath(name).name.removesuffix(".tgz")
    charts = [f for f in files if f.count("/") == 1 and f.endswith("/Chart.yaml")]
    if len(charts) != 1:
        return ["holds no <chart>/Chart.yaml"]
    try:
        metadata = yaml.safe_load(files[charts[0]])
        found = f"{metadata['name']}-{metadata['version']}"
    except (yaml.YAMLError, TypeError, KeyError):
        return ["its Chart.yaml has no name and version"]
    problems = []
    if found != stem:
        problems.append(f"its Chart.yaml says {found}, the file name {stem}")
    if expected and found != expected:
        problems.append(f"its Chart.yaml says {found}, MANIFEST.json {expected}")
    return problems


def _check_crd(name: str, data: bytes) -> list[str]:
    try:
        crd = yaml.safe_load(data)
    except yaml.YAMLError as error:
        return [f"not YAML: {error}"]
    if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
        return ["not a CustomResourceDefinition"]
    problems = []
    if crd.get("apiVersion") != "apiextensions.k8s.io/v1":
        problems.append(f"apiVersion {crd.get('apiVersion')!r}, not apiextensions.k8s.io/v1")
    if (crd.get("metadata") or {}).get("name") != PurePosixPath(name).stem:
        problems.append("metadata.name differs from the file name")
    if not (crd.get("spec") or {}).get("versions"):
        problems.append("spec.versions is empty")
    return problems


def verify_bundle(path: Path, progress: HashProgress | None = None) -> VerifyReport:
    """Check the bundle at `path`; the report names every problem (ok when there is none)."""
    try:
        with tarfile.open(path, mode="r:") as archive:
            return _verify_archive(archive, progress)
    except (tarfile.TarError, OSError, EOFError) as error:
        unreadable = Problem(member=str(path), kind="unreadable", message=str(error) or type(error).__name__)
        return VerifyReport(ok=False, problems=[unreadable])


def _verify_archive(archive: tarfile.TarFile, progress: HashProgress | None) -> VerifyReport:
    problems: list[Problem] = []

    def problem(member: str, kind: str, message: str) -> None:
        problems.append(Problem(member=member, kind=kind, message=message))

    members: dict[str, tarfile.TarInfo] = {}
    for member in archive.getmembers():
        if reason := _unsafe(member):
            problem(member.name, "unsafe", reason)
        elif member.name in members:
            problem(member.name, "extra", "appears twice")
        else:
            members[member.name] = member
    manifest: BundleManifest | None = None
    if MANIFEST not in members:
        problem(MANIFEST, "missing", "no MANIFEST.json: nothing to check the members against")
    else:
        try:
            manifest = BundleManifest.model_validate_json(_read(archive, members[MANIFEST]))
        except ValidationError as error:
            problem(MANIFEST, "invalid", f"not a bundle manifest: {error.error_count()} error(s)")
    listed = {m.path: m for m in manifest.members} if manifest else {}
    digests: dict[str, FileDigest] = {}
    for name in sorted(members):
        if name == MANIFEST:
            continue
        found = digests[name] = _digest(archive, members[name], progress)
        if manifest is None:
            continue
        if name not in listed:
            problem(name, "extra", "not listed in MANIFEST.json")
        elif (found.size, found.sha256) != (listed[name].size, listed[name].sha256):
            problem(
                name,
                "altered",
                f"sha256 {found.sha256[:16]}…, MANIFEST.json says {listed[name].sha256[:16]}… "
                f"({found.size} vs {listed[name].size} bytes)",
            )
    for name in sorted(set(listed) - set(members)):
        problem(name, "missing", "listed in MANIFEST.json, not in the bundle")

    charts = [n for n in members if n.startswith("chart/") and n.endswith(".tgz")]
    if len(charts) != 1:
        problem("chart/", "missing" if not charts else "extra", f"{len(charts)} chart archives, not 1")
    expected_chart = manifest.chart if manifest else None
    for name in charts:
        for message in _check_chart(name, _read(archive, members[name]), expected_chart):
            problem(name, "invalid", message)
    crds = [n for n in members if n.startswith("crds/")]
    if not crds:
        problem("crds/", "missing", "no CRD")
    for name in crds:
        for message in _check_crd(name, _read(archive, members[name])):
            problem(name, "invalid", message)
    for name, check in ((IMAGES, _check_images), (POLICY_BUNDLE, _check_policy_bundle)):
        if name not in members:
            problem(name, "missing", "not in the bundle")
        elif invalid := check(_read(archive, members[name])):
            problem(name, "invalid", invalid)
    models = 0
    if MODEL_MANIFEST not in members:
        problem(MODEL_MANIFEST, "missing", "not in the bundle")
    else:
        models = _check_models(members, digests, _read(archive, members[MODEL_MANIFEST]), problem)
    return VerifyReport(
        ok=not problems,
        chart=manifest.chart if manifest else None,
        members=len(members),
        crds=len(crds),
        models=models,
        problems=problems,
    )


def _check_images(data: bytes) -> str | None:
    try:
        images = [ImageRef.model_validate(i) for i in json.loads(data)["images"]]
    except (ValueError, KeyError, TypeError) as error:
        return f"not an image list: {error}"
    missing = {"sovereign", "kuberay-operator"} - {i.name for i in images}
    return f"no {', '.join(sorted(missing))} image" if missing else None


def _check_policy_bundle(data: bytes) -> str | None:
    from sovereign.policy.bundle import BundleError, PolicyBundle

    try:
        PolicyBundle.from_configmap_data(json.loads(data))
    except (ValueError, BundleError, TypeError) as error:
        return str(error)
    return None


def _check_models(
    members: dict[str, tarfile.TarInfo],
    digests: dict[str, FileDigest],
    data: bytes,
    problem: Callable[[str, str, str], None],
) -> int:
    try:
        manifest = ModelManifest.model_validate_json(data)
    except ValidationError as error:
        problem(MODEL_MANIFEST, "invalid", f"not a model manifest: {error.error_count()} error(s)")
        return 0
    expected = set()
    for model in manifest.models:
        for file in model.files:
            name = f"models/{model.name}/{file.path}"
            if PurePosixPath(file.path).is_absolute() or ".." in PurePosixPath(file.path).parts:
                problem(MODEL_MANIFEST, "unsafe", f"{model.name}: file path {file.path!r}")
                continue
            if not model.included:
                continue
            expected.add(name)
            if name not in digests:
                problem(name, "missing", f"model {model.name} is included but this file is not")
            elif (digests[name].size, digests[name].sha256) != (file.size, file.sha256):
                problem(name, "altered", f"differs from models/manifest.json ({file.sha256[:16]}…)")
    for name in sorted(n for n in members if n.startswith("models/") and n != MODEL_MANIFEST):
        if name not in expected:
            problem(name, "extra", "a model file models/manifest.json does not list as included")
    return len(manifest.models)
