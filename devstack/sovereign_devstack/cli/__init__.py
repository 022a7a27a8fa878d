"""The devstack's commands in `sovereign`: `up`, `down`, `status`, `vault unseal` and `model tiny/minilm`.

The platform's CLI (sovereign/cli/main.py) holds none of them: it calls every entry point of the group
`sovereign.cli` with its typer app, and this package's pyproject.toml names `register` there. Without the
sovereign-devstack package the product CLI works alone and says how to get these commands.
"""

from __future__ import annotations

import typer

from sovereign_devstack.cli import model, status, up, vault


def register(app: typer.Typer) -> None:
    """Add the devstack's commands to the `sovereign` app."""
    app.command("up")(up.up)
    app.command("down")(up.down)
    app.command("status")(status.status)
    app.add_typer(model.app, name="model")
    app.add_typer(vault.app, name="vault")
