"""`sovereign audit`: a nation's auditors verify and read its audit log, with the nation's own credentials.

A nation's directory holds one log per writer: `decisions/` (its gateway) and `admin/` (the operator);
verify and show cover both (a directory that holds one log directly is read as that log).

The CLI logs in to Vault as the nation: a short-lived token of the nation's `model-serving` ServiceAccount
(TokenRequest) through Kubernetes auth, role `tenant-<nation>`. Only that role may decrypt the nation's data
keys; another nation's credentials get 403 from Vault.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import hvac
import typer
from rich.table import Table

from sovereign.audit import (
    AuditAccessDenied,
    AuditLogTampered,
    AuditRecord,
    VerifyReport,
    read,
    stream_directories,
    verify,
)
from sovereign.cli.as_nation import login_as_nation
from sovereign.cli.output import OutputFormat, console, fail, print_json
from sovereign.cli.token_commands import parse_ttl
from sovereign.clients.kubernetes import load_api_client
from sovereign.clients.vault import VAULT_ERRORS
from sovereign.domain.nations import SERVING_SERVICE_ACCOUNT, nation_folder, tenant_namespace, vault_role_name

app = typer.Typer(help="Each nation's tamper-evident audit log.", no_args_is_help=True)

NationOption = Annotated[str, typer.Option(help="ISO 3166-1 alpha-3 code of the nation, e.g. FRA.")]
DirOption = Annotated[
    Path | None,
    typer.Option("--dir", help="The audit directory (default: $SOVEREIGN_STATE_DIR/audit/<nation>)."),
]
OutputOption = Annotated[OutputFormat, typer.Option("--output", "-o")]


def _streams(nation: str, given: Path | None) -> dict[str, Path]:
    """The nation's logs by stream (`decisions`, `admin`; `log` for a directory holding one log)."""
    if given is not None:
        directory = given
    elif os.environ.get("SOVEREIGN_STATE_DIR"):
        directory = Path(os.environ["SOVEREIGN_STATE_DIR"]) / "audit" / nation_folder(nation)
    else:
        fail("give --dir, or set SOVEREIGN_STATE_DIR (`source .sovereign/env`)")
        raise AssertionError  # unreachable: fail() exits
    streams = stream_directories(directory)
    if not streams:
        fail(f"{directory} holds no audit log of {nation}")
    return streams


def _nation_vault(nation: str) -> hvac.Client:
    """Vault as the nation: its ServiceAccount's token, exchanged through Kubernetes auth."""
    address = os.environ.get("VAULT_ADDR")
    if not address:
        fail("VAULT_ADDR must be set (e.g. `source .sovereign/env`)")
    try:
        client = login_as_nation(load_api_client(), str(address), nation)
    except VAULT_ERRORS as error:
        fail(f"cannot log in to Vault as {nation} (role {vault_role_name(nation)}): {error}")
        raise  # unreachable
    except Exception as error:  # noqa: BLE001 — a Kubernetes error: say which, never a token
        fail(f"cannot get a token of {tenant_namespace(nation)}/{SERVING_SERVICE_ACCOUNT}: {error}")
        raise  # unreachable
    return client


@app.command("verify")
def verify_command(
    nation: NationOption, directory: DirOption = None, output: OutputOption = OutputFormat.text
) -> None:
    """Check the whole chain and decrypt every record; exit 1 and locate whatever was altered or moved."""
    nation = nation.strip().upper()
    streams = _streams(nation, directory)
    vault = _nation_vault(nation)
    reports: dict[str, VerifyReport] = {}
    try:
        for stream, where in streams.items():
            reports[stream] = verify(where, vault, nation)
    except AuditAccessDenied as error:
        fail(str(error))
        raise  # unreachable
    ok = all(report.ok for report in reports.values())
    if output is OutputFormat.json:
        print_json(
            {
                "nation": nation,
                "ok": ok,
                "streams": {
                    stream: report.model_dump(mode="json", by_alias=True)
                    for stream, report in reports.items()
                },
            }
        )
    for stream, report in reports.items() if output is not OutputFormat.json else ():
        if report.ok:
            console.print(
                f"[green]✓[/] {nation} {stream}: {report.records} records, chain intact up to seq "
                f"{report.last_seq} (head {report.last_hash[:16]}…), {report.data_keys} data key(s) decrypted"
            )
            for note in report.notes:
                console.print(f"  note: {note}")
        else:
            console.print(f"[red]✗[/] {nation} {stream}: the audit log was altered")
            for problem in report.problems:
                location = f"{problem.segment}:{problem.line} seq {problem.seq}"
                console.print(f"  {location}: {problem.kind}: {problem.message}", soft_wrap=True)
    if not ok:
        raise typer.Exit(1)


@app.command("show")
def show_command(
    nation: NationOption,
    since: Annotated[str, typer.Option(help="How far back: 90s, 15m, 1h, 24h.")] = "1h",
    directory: DirOption = None,
    output: OutputOption = OutputFormat.text,
) -> None:
    """The records of the last `--since`, decrypted with the nation's own credentials (verified first)."""
    nation = nation.strip().upper()
    streams = _streams(nation, directory)
    try:
        window = timedelta(seconds=parse_ttl(since))
    except ValueError as error:
        fail(str(error))
    vault = _nation_vault(nation)
    records: list[AuditRecord] = []
    try:
        for where in streams.values():
            records += read(where, vault, nation, since=window)
    except AuditAccessDenied as error:
        fail(str(error))
        raise  # unreachable
    except AuditLogTampered as error:
        problems = len(error.report.problems)
        fail(f"the audit log of {nation} was altered ({problems} problem(s)); run `sovereign audit verify`")
        raise  # unreachable
    records.sort(key=lambda record: record.time)  # the streams interleaved by time
    if output is OutputFormat.json:
        print_json([record.model_dump(mode="json", by_alias=True) for record in records])
        return
    table = Table("time", "event", "actor", "resources", "decision / details")
    for record in records:
        actor = f"{record.actor.sub} ({record.actor.nation})"
        if record.decision is not None:
            outcome = f"{record.decision.outcome} {', '.join(record.decision.policy_ids)}"
        else:
            outcome = ", ".join(f"{k}={v}" for k, v in (record.details or {}).items())
        table.add_row(str(record.time), record.event, actor, ", ".join(record.resources), outcome)
    console.print(table)
