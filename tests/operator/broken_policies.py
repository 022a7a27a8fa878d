"""The shipped policies with a hole in the base, as a bad upgrade could ship them: for the tests that prove
a broken base is never published (sovereign.policy.verify, the operator's policy pass)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from sovereign.policy_files import POLICIES_DIR, POLICIES_PACKAGE

LIMIT_CLEARANCE = re.compile(r'@id\("markings/limit-clearance"\)\s*forbid[^;]*;')
CLEARANCE_TERM = "principal.clearance >= resource.classification &&"


def base_without_clearance_limit(base: str) -> str:
    """`base` without markings/limit-clearance and the permit's clearance term: a user below a resource's
    classification is let in."""
    broken, removed = LIMIT_CLEARANCE.subn("", base)
    assert removed == 1 and CLEARANCE_TERM in broken, "the base policies changed: update this hole"
    return broken.replace(CLEARANCE_TERM, "")


def shadowed_policies(directory: Path) -> Path:
    """A copy of the `sovereign_policies` package whose base has that hole, under `directory`: put first on
    PYTHONPATH, it is the package a process imports instead of the installed one (sovereign/policy_files.py
    finds the policies through the import system)."""
    package = directory / POLICIES_PACKAGE
    shutil.copytree(POLICIES_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    base = package / "cedar" / "base.cedar"
    base.write_text(base_without_clearance_limit(base.read_text()))
    return directory
