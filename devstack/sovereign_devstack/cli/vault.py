"""`sovereign vault unseal`: open the local platform's OpenBao again after a restart (it starts sealed).

A real site unseals its Vault its own way (auto-unseal with a KMS or HSM, or key holders with Shamir
shares); this command reads the devstack's unseal key from DIR/vault/init.json and is for the devstack only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sovereign.cli.output import OutputFormat, console, fail, print_json

app = typer.Typer(help="The platform's Vault (on the local devstack).", no_args_is_help=True)

StateDir = Annotated[Path, typer.Option("--state-dir", help="The state dir `sovereign up` used.")]
Output = Annotated[OutputFormat, typer.Option("--output", "-o", help="text for people, json for scripts.")]


@app.command("unseal")
def unseal(state_dir: StateDir = Path(".sovereign"), output: Output = OutputFormat.text) -> None:
    """Unseal this state dir's OpenBao with the key `sovereign up` kept (DIR/vault/init.json)."""
    import httpx

    from sovereign_devstack.processes import ServiceStartError
    from sovereign_devstack.stack import load_state, unseal_vault

    state_dir = state_dir.resolve()
    state = load_state(state_dir)
    if state is None:
        fail(f"the platform is not up (no state in {state_dir}); run `sovereign up`")
    if state.external:
        fail(f"the Vault at {state.vault_addr} is not the devstack's: unseal it as your site does")
    try:
        was_sealed = unseal_vault(state_dir, state)
    except httpx.HTTPError as error:
        fail(f"Vault at {state.vault_addr} does not answer ({error}); run `sovereign up` to start it")
    except ServiceStartError as error:
        fail(str(error))
    if output is OutputFormat.json:
        print_json({"vault": state.vault_addr, "wasSealed": was_sealed, "sealed": False})
    elif was_sealed:
        console.print(f"Vault at {state.vault_addr} unsealed")
    else:
        console.print(f"Vault at {state.vault_addr} was already unsealed; nothing to do")
