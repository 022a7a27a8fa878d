"""`sovereign`: the platform's one command line.

The product's commands are here. Others come from plugins: every entry point of the group `sovereign.cli`
is a function that adds its commands to the app. The devstack (the separate package sovereign-devstack,
installed by `make install`) adds `up`, `down`, `status`, `vault` and `model` that way; without it those
names answer with how to get them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib.metadata import entry_points

import typer

from sovereign.cli import (
    access_matrix_commands,
    audit_commands,
    bundle_commands,
    crds_commands,
    dataset_commands,
    keys_commands,
    policy_commands,
    token_commands,
)
from sovereign.cli.output import fail

PLUGIN_GROUP = "sovereign.cli"
Plugin = Callable[[typer.Typer], None]
# What the devstack's plugin adds: named here only to say how to get them when it is not installed.
DEVSTACK_COMMANDS = ("up", "down", "status", "vault", "model")
DEVSTACK_MISSING = (
    "`sovereign {name}` comes with the devstack, which is not installed: it is the package "
    "sovereign-devstack (the repository's devstack/ folder); `make install` installs it"
)


def build_app(plugins: Iterable[Plugin]) -> typer.Typer:
    """The `sovereign` app: each plugin adds its commands, then the product's own commands."""
    app = typer.Typer(
        name="sovereign",
        help="Multi-tenant sovereign AI platform: nations, their models, keys and policies.",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,  # locals may hold tokens
    )
    for plugin in plugins:  # first, so `up/down/status` lead the help as the first commands to run
        plugin(app)
    app.command("access-matrix")(access_matrix_commands.access_matrix_command)
    app.add_typer(crds_commands.app, name="crds")
    app.add_typer(keys_commands.app, name="keys")
    app.add_typer(policy_commands.app, name="policy")
    app.add_typer(audit_commands.app, name="audit")
    app.add_typer(token_commands.app, name="token")
    app.add_typer(bundle_commands.app, name="bundle")
    app.add_typer(dataset_commands.app, name="dataset")
    registered = {c.name or getattr(c.callback, "__name__", "") for c in app.registered_commands}
    registered |= {g.name or "" for g in app.registered_groups}
    for name in DEVSTACK_COMMANDS:
        if name not in registered:
            _add_devstack_missing(app, name)
    return app


def installed_plugins() -> list[Plugin]:
    """Every function the installed distributions register in the group `sovereign.cli`."""
    return [entry_point.load() for entry_point in entry_points(group=PLUGIN_GROUP)]


def _add_devstack_missing(app: typer.Typer, name: str) -> None:
    """A hidden command `name` that takes any arguments and says how to install the devstack."""

    def devstack_missing() -> None:
        fail(DEVSTACK_MISSING.format(name=name))

    settings = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
    app.command(name, hidden=True, context_settings=settings)(devstack_missing)


app = build_app(installed_plugins())


if __name__ == "__main__":
    app()
