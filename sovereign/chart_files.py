"""Copies of repository files the Helm chart ships, kept byte-identical to their one source of truth.

Helm's `.Files` only reaches files inside the chart (Helm docs: "Accessing Files Inside Templates"), so the
policies the chart puts in its ConfigMap are copied under `charts/sovereign/files/` by
`sovereign crds generate`, and `--check` fails when a copy differs, is missing, or has no source any more.
"""

from __future__ import annotations

from pathlib import Path

from sovereign.policy_files import POLICIES_DIR

DEFAULT_CHART_FILES_DIR = Path("charts/sovereign/files")
# (folder under policies/, glob, folder under the chart's files/): what the operator and gateway read at
# run time (sovereign.policy.bundle.PolicyBundle.load: every *.cedar; the Cedar schema) and the Vault
# policies a site's Vault admin writes (the operator token's, and the nations' templated one).
COPIED = (
    ("cedar", "*.cedar", "policies/cedar"),
    ("cedar", "schema.cedarschema.json", "policies/cedar"),
    ("vault", "sovereign-operator.hcl", "policies/vault"),
    ("vault", "sovereign-nation.hcl", "policies/vault"),
)
_COPIED_FOLDERS = tuple(dict.fromkeys(target for _, _, target in COPIED))


def chart_file_sources(repository: Path | None = None) -> dict[str, Path]:
    """Path under the chart's files/ → the policy file it copies: the installed policies (package data,
    sovereign.policy_files), or those of `repository/policies`."""
    policies = POLICIES_DIR if repository is None else repository / "policies"
    sources: dict[str, Path] = {}
    for folder, pattern, target in COPIED:
        for source in sorted((policies / folder).glob(pattern)):
            sources[f"{target}/{source.name}"] = source
    return sources


def write_chart_files(files_dir: Path, repository: Path | None = None) -> list[Path]:
    """Copy every source into `files_dir`, and remove copies whose source is gone."""
    sources = chart_file_sources(repository)
    written = []
    for relative, source in sources.items():
        target = files_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != source.read_bytes():
            target.write_bytes(source.read_bytes())
            written.append(target)
    for orphan in _existing_copies(files_dir):
        if orphan not in sources:
            (files_dir / orphan).unlink()
            written.append(files_dir / orphan)
    return written


def stale_chart_files(files_dir: Path, repository: Path | None = None) -> list[str]:
    """Copies that differ from their source, are missing, or have no source (paths under files_dir)."""
    sources = chart_file_sources(repository)
    stale = [
        relative
        for relative, source in sources.items()
        if not (files_dir / relative).is_file() or (files_dir / relative).read_bytes() != source.read_bytes()
    ]
    stale += [orphan for orphan in _existing_copies(files_dir) if orphan not in sources]
    return sorted(stale)


def _existing_copies(files_dir: Path) -> list[str]:
    return sorted(
        str(path.relative_to(files_dir))
        for folder in _COPIED_FOLDERS
        if (files_dir / folder).is_dir()
        for path in (files_dir / folder).iterdir()
        if path.is_file()
    )
