"""The suite's root: the shared fixtures (tests/fixtures/, one plugin registered here; each test names the
fixtures it uses, with no import) and a guard on what a test may read."""

from __future__ import annotations

import os
import sys

from tests.helpers import ROOT

pytest_plugins = [
    "tests.fixtures.devstack",
    "tests.fixtures.operator",
    "tests.fixtures.processes",
]

# The workspace's shared folder beside a clone: a plain `git clone` has none, so no test may read it.
_OUTSIDE_THE_REPOSITORY = str(ROOT.parent / "shared") + os.sep


def _refuse_reads_beside_the_repository(event: str, args: tuple[object, ...]) -> None:
    if event == "open" and args and isinstance(args[0], str | bytes | os.PathLike):
        path = os.path.abspath(os.fsdecode(args[0]))  # type: ignore[arg-type]
        if (path + os.sep).startswith(_OUTSIDE_THE_REPOSITORY):
            raise PermissionError(f"a test read {path}, outside the repository: carry the file in it")


sys.addaudithook(_refuse_reads_beside_the_repository)
