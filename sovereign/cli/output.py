"""Shared output helpers: rich for people, `--output json` for scripts."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from rich.console import Console

console = Console()
errors = Console(stderr=True, soft_wrap=True)  # no hard wraps: error lines stay greppable


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def fail(message: str, code: int = 1) -> None:
    import typer

    errors.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)
