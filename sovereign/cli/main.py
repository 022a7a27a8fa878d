"""`sovereign`: the platform's one command line."""

from __future__ import annotations

import typer

from sovereign.cli import (
    access_matrix_commands,
    audit_commands,
    bundle_commands,
    crds_commands,
    dataset_commands,
    devstack_commands,
    keys_commands,
    model_commands,
    policy_commands,
    token_commands,
    vault_commands,
)

app = typer.Typer(
    name="sovereign",
    help="Multi-tenant sovereign AI platform: nations, their models, keys and policies.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold tokens
)
app.command("up")(devstack_commands.up)
app.command("down")(devstack_commands.down)
app.command("status")(devstack_commands.status)
app.command("access-matrix")(access_matrix_commands.access_matrix_command)
app.add_typer(crds_commands.app, name="crds")
app.add_typer(keys_commands.app, name="keys")
app.add_typer(model_commands.app, name="model")
app.add_typer(policy_commands.app, name="policy")
app.add_typer(audit_commands.app, name="audit")
app.add_typer(token_commands.app, name="token")
app.add_typer(bundle_commands.app, name="bundle")
app.add_typer(dataset_commands.app, name="dataset")
app.add_typer(vault_commands.app, name="vault")


if __name__ == "__main__":
    app()
