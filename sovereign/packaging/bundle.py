"""The offline bundle: everything a disconnected site needs, in one reproducible tar.

Layout (members sorted, MANIFEST.json last):
- `chart/<name>-<version>.tgz`: the Helm chart (chart_archive.package_chart);
- `crds/<plural>.<group>.yaml`: the CRDs the chart ships, for `kubectl apply` (Helm never upgrades CRDs);
- `policies/cedar/*`, `policies/vault/*`: the repository's policies (without the Cedar test cases);
  `policies/bundle.json`: the base policy bundle as the operator publishes it (ConfigMap data, with its
  version hash);
- `images.json`: the images to push to the site's mirror (digests where known) and the prerequisites;
- `models/manifest.json`: every file of each model directory, its size and sha256; with model files
  included, `models/<model>/<path>` too;
- `MANIFEST.json`: every other member's path, size and sha256.

Fixed timestamps and owners, no compression of the outer tar (model weights do not compress): two runs on the
same inputs give the same bytes. Written to a temporary file beside OUT and renamed: never half a bundle.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from sovereign.packaging.chart_archive import chart_metadata, deterministic_tar_info, package_chart
from sovereign.policy_files import POLICIES_DIR
from sovereign.serving_contract import PLATFORM_IMAGE, RAY_VERSION

# The chart is read from the source tree (`sovereign bundle create` runs in a checkout); the policies are the
# installed package data (sovereign.policy_files).
REPOSITORY = Path(__file__).resolve().parents[2]
CHART_DIR = REPOSITORY / "charts" / "sovereign"
BUNDLE_FORMAT = "sovereign-bundle/1"
MANIFEST = "MANIFEST.json"
MODEL_MANIFEST = "models/manifest.json"
IMAGES = "images.json"
POLICY_BUNDLE = "policies/bundle.json"
KUBERAY_VERSION = "1.7.0"  # the KubeRay whose RayService schema the operator's RayServices are tested against
_CHUNK = 1 << 20
_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")

HashProgress = Callable[[str, int], None]  # (file being read, bytes just read)


class BundleError(ValueError):
    """The bundle cannot be made from these inputs."""


class FileDigest(BaseModel):
    path: str = Field(description="Relative POSIX path.")
    size: int = Field(ge=0, description="Bytes.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex digest of the content.")


class ModelEntry(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="The model directory's name.")
    files: list[FileDigest] = Field(description="Every file of the directory, sorted by path.")
    included: bool = Field(description="Whether the files are in the bundle under models/<name>/.")


class ModelManifest(BaseModel):
    models: list[ModelEntry] = Field(default_factory=list)


class ImageRef(BaseModel):
    name: str = Field(description="What the image is for, e.g. sovereign, kuberay-operator.")
    reference: str = Field(description="Where it is pulled from on a connected machine.")
    digest: str | None = Field(None, description="sha256:<hex> when known (given as REF@sha256:...).")
    role: str = Field(description="platform | base | prerequisite | extra")
    note: str = ""


class BundleManifest(BaseModel):
    format: str = BUNDLE_FORMAT
    chart: str = Field(description="The chart's name-version, e.g. sovereign-0.1.0.")
    members: list[FileDigest] = Field(description="Every member but MANIFEST.json, sorted by path.")


@dataclass(frozen=True)
class _Member:
    path: str
    data: bytes | None = None  # in memory, or streamed from `source`
    source: Path | None = None
    expected: FileDigest | None = None  # a model file hashed before: it must not change meanwhile


def default_images(platform_version: str) -> list[ImageRef]:
    return [
        ImageRef(
            name="sovereign",
            reference=f"{PLATFORM_IMAGE}:{platform_version}",
            role="platform",
            note="operator and serving, CPU (Dockerfile, VARIANT=cpu); give --image sovereign=REF@sha256:...",
        ),
        ImageRef(
            name="sovereign-gpu",
            reference=f"{PLATFORM_IMAGE}:{platform_version}-gpu",
            role="platform",
            note="operator and serving with vLLM (VARIANT=gpu), for GPU nodes only",
        ),
        ImageRef(
            name="ray",
            reference=f"rayproject/ray:{RAY_VERSION}-py311",
            role="base",
            note="already inside the platform image (its base); listed for provenance",
        ),
        ImageRef(
            name="kuberay-operator",
            reference=f"quay.io/kuberay/operator:v{KUBERAY_VERSION}",
            role="prerequisite",
            note="install the KubeRay operator (its own chart) before this platform",
        ),
    ]


def resolve_images(platform_version: str, given: Mapping[str, str]) -> list[ImageRef]:
    """The default images, each replaced by `given[name]` (NAME → REF[@sha256:...]); new names are extras."""
    images = {image.name: image for image in default_images(platform_version)}
    for name, reference in given.items():
        if not name or not reference:
            raise BundleError(f"--image wants NAME=REF, got {name!r}={reference!r}")
        match = _DIGEST.search(reference)
        base = images.get(name, ImageRef(name=name, reference=reference, role="extra"))
        images[name] = base.model_copy(
            update={"reference": reference, "digest": match.group(1) if match else None}
        )
    return sorted(images.values(), key=lambda image: image.name)


def _sha256_file(path: Path, shown: str, progress: HashProgress | None) -> FileDigest:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if progress:
                progress(shown, len(chunk))
    return FileDigest(path=shown, size=size, sha256=digest.hexdigest())


def _model_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise BundleError(f"{directory} is not a directory")
    files = sorted((p for p in directory.rglob("*") if p.is_file()), key=lambda p: p.as_posix())
    if not files:
        raise BundleError(f"{directory} holds no file")
    return files


def planned_bytes(models: Sequence[Path], include_model_files: bool = False) -> int:
    """What create_bundle reads from the model directories: for a progress bar's total."""
    total = sum(p.stat().st_size for d in models for p in _model_files(d))
    return total * 2 if include_model_files else total


def hash_models(models: Sequence[Path], progress: HashProgress | None = None) -> list[ModelEntry]:
    """Every file of each model directory (named by the directory), sorted, with its size and sha256."""
    names = [directory.name for directory in models]
    if len(set(names)) != len(names):
        raise BundleError(f"two model directories have the same name: {sorted(names)}")
    entries = []
    for directory in models:
        files = []
        for path in _model_files(directory):
            relative = path.relative_to(directory).as_posix()
            digest = _sha256_file(path, f"{directory.name}/{relative}", progress)
            files.append(digest.model_copy(update={"path": relative}))
        entries.append(ModelEntry(name=directory.name, files=files, included=False))
    return entries


def _json(data: object) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def _policy_files(directory: Path, prefix: str) -> list[_Member]:
    """The folder's own files (policies, schema, README), not its test cases."""
    return [
        _Member(f"{prefix}/{path.name}", data=path.read_bytes())
        for path in sorted(directory.iterdir(), key=lambda p: p.name)
        if path.is_file()
    ]


def plan_members(
    chart_dir: Path,
    policies_dir: Path,
    images: list[ImageRef],
    models: list[ModelEntry],
    model_dirs: Sequence[Path] = (),
) -> list[_Member]:
    """Every member but MANIFEST.json, sorted by path. Pure but for reading the given directories."""
    from sovereign.policy.bundle import PolicyBundle

    chart_name, chart_data = package_chart(chart_dir)
    members = [_Member(f"chart/{chart_name}", data=chart_data)]
    members += [
        _Member(f"crds/{p.name}", data=p.read_bytes()) for p in sorted((chart_dir / "crds").glob("*.yaml"))
    ]
    members += _policy_files(policies_dir / "cedar", "policies/cedar")
    members += _policy_files(policies_dir / "vault", "policies/vault")
    policy_bundle = PolicyBundle.load(policies_dir / "cedar").to_configmap_data()
    members.append(_Member(POLICY_BUNDLE, data=_json(policy_bundle)))
    members.append(_Member(IMAGES, data=_json({"images": [i.model_dump() for i in images]})))
    members.append(_Member(MODEL_MANIFEST, data=_json(ModelManifest(models=models).model_dump())))
    by_name = {directory.name: directory for directory in model_dirs}
    for model in models:
        if model.included:
            members += [
                _Member(f"models/{model.name}/{f.path}", source=by_name[model.name] / f.path, expected=f)
                for f in model.files
            ]
    paths = [m.path for m in members]
    if len(set(paths)) != len(paths) or MANIFEST in paths:
        raise BundleError("two members would have the same path")
    return sorted(members, key=lambda m: m.path)


def _add(archive: tarfile.TarFile, member: _Member, progress: HashProgress | None) -> FileDigest:
    if member.data is not None:
        archive.addfile(deterministic_tar_info(member.path, len(member.data)), io.BytesIO(member.data))
        return FileDigest(
            path=member.path, size=len(member.data), sha256=hashlib.sha256(member.data).hexdigest()
        )
    assert member.source is not None and member.expected is not None
    size = member.source.stat().st_size
    digest = hashlib.sha256()

    class _Hashing:  # hashes what tarfile copies (it only calls read), so the file is read once here
        def read(self, size: int = -1) -> bytes:
            chunk = handle.read(size)
            digest.update(chunk)
            if progress:
                progress(member.path, len(chunk))
            return chunk

    with member.source.open("rb") as handle:
        archive.addfile(deterministic_tar_info(member.path, size), _Hashing())
    written = FileDigest(path=member.path, size=size, sha256=digest.hexdigest())
    if (written.size, written.sha256) != (member.expected.size, member.expected.sha256):
        raise BundleError(f"{member.source} changed while the bundle was written")
    return written


def create_bundle(
    out: Path,
    model_dirs: Sequence[Path] = (),
    images: Mapping[str, str] | None = None,
    include_model_files: bool = False,
    chart_dir: Path = CHART_DIR,
    policies_dir: Path = POLICIES_DIR,
    progress: HashProgress | None = None,
) -> BundleManifest:
    """Write the bundle to `out` (atomically) and return its MANIFEST."""
    metadata = chart_metadata(chart_dir)
    platform_version = str(metadata.get("appVersion") or metadata["version"])
    models = hash_models(model_dirs, progress)
    if include_model_files:
        models = [m.model_copy(update={"included": True}) for m in models]
    members = plan_members(
        chart_dir, policies_dir, resolve_images(platform_version, images or {}), models, model_dirs
    )
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=out.parent, prefix=f".{out.name}.", suffix=".partial", delete=False
        ) as handle:
            partial = Path(handle.name)
            with tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as archive:
                digests = [_add(archive, member, progress) for member in members]
                manifest = BundleManifest(chart=f"{metadata['name']}-{metadata['version']}", members=digests)
                _add(archive, _Member(MANIFEST, data=_json(manifest.model_dump())), None)
            handle.flush()
            os.fsync(handle.fileno())
        partial.chmod(0o644)
        partial.replace(out)
    except BaseException:  # whatever stopped it, no half-written bundle stays behind
        if partial is not None:
            partial.unlink(missing_ok=True)
        raise
    return manifest


def parse_image_options(values: Iterable[str]) -> dict[str, str]:
    """`NAME=REF` options → {NAME: REF}."""
    parsed = {}
    for value in values:
        name, sep, reference = value.partition("=")
        if not sep:
            raise BundleError(f"--image wants NAME=REF, got {value!r}")
        parsed[name.strip()] = reference.strip()
    return parsed
