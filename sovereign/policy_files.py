"""Where the platform's policies are read from: the package `sovereign_policies` (the repository's
`policies/` folder as package data, setup.py), found with importlib.resources, so the same code reads them
from a wheel, an image or an editable install.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

POLICIES_PACKAGE = "sovereign_policies"


def policies_dir() -> Path:
    """The installed policies folder (`cedar/`, `vault/`)."""
    root = files(POLICIES_PACKAGE)
    if not isinstance(root, Path):  # a zipped install: the policies must be files on disk
        raise RuntimeError(f"{POLICIES_PACKAGE} is not installed as files on disk ({root!r})")
    return root


POLICIES_DIR = policies_dir()
CEDAR_DIR = POLICIES_DIR / "cedar"
VAULT_DIR = POLICIES_DIR / "vault"
