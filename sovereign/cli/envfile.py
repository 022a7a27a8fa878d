"""DIR/env: the environment a shell (`source DIR/env`), the operator and tests use to reach the platform."""

from __future__ import annotations

import shlex
from pathlib import Path


def write_env_file(path: Path, values: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)  # it holds a Vault token
    lines = [f"export {key}={shlex.quote(value)}" for key, value in sorted(values.items())]
    path.write_text(
        "# Written by `sovereign up`. Use it with: source " + str(path) + "\n" + "\n".join(lines) + "\n"
    )
    return path


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, raw = line.removeprefix("export ").partition("=")
            values[key] = shlex.split(raw)[0] if raw else ""
    return values
