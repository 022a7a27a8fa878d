"""Where a nation's documents may come from: its own data root, `<root>/<nation lowercase>`, and nowhere else.

`<root>` is the platform's setting (the operator's `dataset_source_root`); each nation's DataSets name a
`source` under its own directory, relative to it or absolute. Two checks, one rule:

- `confined_source` is pure (admission, the operator): the path after normalisation (`..` resolved on the
  text) must stay under the nation's root.
- `resolve_confined_source` and `check_confined_entry` read the file system (the ingest job, as the nation):
  the real path, symlinks followed, must stay under the nation's real root, so that a symlink planted after
  admission, or one inside the tree, cannot lead to another nation's documents; a hard-linked file (whose
  other names may be anywhere on its file system) is refused too. The nation's root is the platform root's
  real path joined with the nation: a nation directory that is itself a symlink is refused.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from sovereign.domain.nations import nation_folder

SOURCE_FIELD = "spec.source"


class SourceOutsideDataRoot(ValueError):
    """A DataSet's source that is not under its nation's data root."""


def nation_data_root(root: str, nation: str) -> str:
    """The directory of `nation`'s document sources under the platform's data root `root`."""
    return posixpath.join(posixpath.normpath(root), nation_folder(nation))


def confined_source(root: str, nation: str, source: str) -> str:
    """The absolute, normalised path of `source` (relative to the nation's root, or absolute); raises
    SourceOutsideDataRoot when it is not under the nation's root. No I/O."""
    if not posixpath.isabs(root):
        raise SourceOutsideDataRoot(f"the platform's data root {root!r} is not an absolute path")
    if "\x00" in source:
        raise SourceOutsideDataRoot("holds a NUL character")
    own = nation_data_root(root, nation)
    path = posixpath.normpath(posixpath.join(own, source))
    if posixpath.commonpath([own, path]) != own:
        raise SourceOutsideDataRoot(f"{source!r} is outside {nation}'s data root {own}")
    return path


def resolve_confined_source(root: str, nation: str, source: str) -> Path:
    """The real path of `source` (symlinks followed); raises SourceOutsideDataRoot when it is not under the
    nation's real root."""
    path = Path(os.path.realpath(confined_source(root, nation, source)))
    _check_within(_real_nation_root(root, nation), path, source, nation)
    return path


def check_confined_entry(root: str, nation: str, path: Path, shown: str) -> None:
    """Raise SourceOutsideDataRoot when `path`, an entry of the source (`shown` in the message: its path in
    the source), is a symlink leading outside the nation's real root, or a file with more than one link."""
    if path.is_symlink():
        _check_within(_real_nation_root(root, nation), Path(os.path.realpath(path)), shown, nation)
    elif path.is_file() and path.lstat().st_nlink > 1:
        raise SourceOutsideDataRoot(f"{shown!r} is a hard link (its other names may be outside the root)")


def _real_nation_root(root: str, nation: str) -> Path:
    return Path(os.path.realpath(root)) / nation_folder(nation)


def _check_within(own: Path, path: Path, shown: str, nation: str) -> None:
    if path != own and own not in path.parents:
        raise SourceOutsideDataRoot(f"{shown!r} resolves outside {nation}'s data root (a symlink?)")
