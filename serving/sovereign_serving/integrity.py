"""Weight integrity: a model's files are checked against the digests of its spec before it is loaded.

A model that fails never serves: the replica's constructor raises, Ray Serve marks the application
DEPLOY_FAILED with this message, and the operator copies it into the ModelDeployment's status.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

# Files that hold weights (named as such in the error); every file under `source` must be listed in `sha256`.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")
CHUNK_SIZE = 1 << 20


class IntegrityError(Exception):
    """A model's files do not match its spec; `path` is the first failing file (relative to source)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"integrity check failed for {path!r}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type[IntegrityError], tuple[str, str]]:  # crosses Ray's process boundary
        return (IntegrityError, (self.path, self.reason))


def sha256_of(path: Path) -> str:
    """Streaming digest: files of several GB are read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def verify_model_files(source: str | Path, sha256: Mapping[str, str]) -> None:
    """Check every listed file under `source` against its digest, in sorted path order; return None or
    raise `IntegrityError` naming the first failing file: a listed path that is absolute or leaves
    `source` (`..`), a missing or non-regular file, a digest that differs.

    Then fail also if `source` holds any file, at any depth and hidden or not, that is not listed: weights,
    configuration, tokenizer files and Python code are all read by a loader, so the rule is simply that
    every file is pinned (a README too: pin it or remove it). A link to a directory inside `source` is
    refused (its files would escape this listing). Symbolic links to files are followed: the digest is of
    the content a loader would read, wherever it is stored (as in a Hugging Face cache snapshot).
    """
    root = Path(source)
    if not root.is_dir():
        raise IntegrityError(str(source), "source is not a directory")
    if not sha256:
        raise IntegrityError(str(source), "no file digests are listed")
    for relative in sorted(sha256):
        path = PurePosixPath(relative)
        if not relative or path.is_absolute() or ".." in path.parts:
            raise IntegrityError(relative, "path escapes the model source")
        target = root.joinpath(*path.parts)
        if not target.is_file():
            raise IntegrityError(relative, "file is missing")
        expected = sha256[relative].lower()
        actual = sha256_of(target)
        if not hmac.compare_digest(actual, expected):
            raise IntegrityError(relative, f"sha256 is {actual}, the spec says {expected}")
    listed = {PurePosixPath(relative).as_posix() for relative in sha256}
    for candidate in sorted(root.rglob("*")):
        relative = candidate.relative_to(root).as_posix()
        if candidate.is_symlink() and candidate.is_dir():
            raise IntegrityError(relative, "a link to a directory is not allowed in the model source")
        if not candidate.is_dir() and relative not in listed:
            kind = "weight file" if candidate.suffix in WEIGHT_SUFFIXES else "file"
            raise IntegrityError(
                relative, f"{kind} is not pinned in sha256 (every file of the source must be)"
            )
