"""`sovereign policy`: the Cedar schema generated from the domain model, the policy test cases, and
`sovereign policy check` (one access question asked of the live cluster, as the gateway will ask it)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from sovereign.access_check import CheckResult, check_access
from sovereign.cli.output import OutputFormat, console, errors, fail, print_json
from sovereign.cli.policy_diff_commands import diff_command
from sovereign.cli.policy_verify_commands import verify_command
from sovereign.identity.tokens import REASON_CODES, TokenRejected
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.cases import CASES_DIR, load_cases, run_cases
from sovereign.policy.engine import PolicyEngine
from sovereign.policy.schema import SCHEMA_PATH, render_schema, write_schema

app = typer.Typer(help="Policies: Cedar schema, base policies and their test cases.", no_args_is_help=True)
app.command("verify")(verify_command)
app.command("diff")(diff_command)


@app.command()
def schema(
    path: Annotated[Path, typer.Option(help="Where to write the schema.")] = SCHEMA_PATH,
    check: Annotated[bool, typer.Option(help="Only check that the file is up to date.")] = False,
) -> None:
    """Regenerate the Cedar schema from the domain model (sovereign.domain.markings)."""
    if check:
        if not path.exists() or path.read_text() != render_schema():
            fail(f"{path} is stale: run `sovereign policy schema`")
        console.print(f"[green]✓[/] {path} is up to date")
        return
    write_schema(path)
    console.print(f"[green]✓[/] wrote {path}")


@app.command("test")
def test_cases(
    cases: Annotated[Path, typer.Option(help="Folder holding ALLOW/ and DENY/ cases.")] = CASES_DIR,
    output: Annotated[OutputFormat, typer.Option("--output", "-o")] = OutputFormat.text,
) -> None:
    """Run every policy test case; print the deciding policy ids; exit 1 on any mismatch."""
    bundle = PolicyBundle.load()
    problems = bundle.validate()
    if problems:
        fail(f"the policies do not validate against the schema: {problems}")
    loaded = load_cases(cases)
    if not loaded:
        fail(f"no cases in {cases}/ALLOW or {cases}/DENY")
    started = time.perf_counter()
    results = run_cases(PolicyEngine(bundle), loaded)
    elapsed = time.perf_counter() - started
    failed = [r for r in results if not r.passed]
    if output is OutputFormat.json:
        print_json(
            {
                "bundleVersion": bundle.version,
                "cases": [r.as_dict() for r in results],
                "passed": len(results) - len(failed),
                "failed": len(failed),
                "seconds": round(elapsed, 4),
            }
        )
    else:
        console.print(f"[bold]policy cases[/] (bundle {bundle.version})")
        for r in results:
            mark = "[green]✓[/]" if r.passed else "[bold red]✗[/]"
            ids = ", ".join(r.decision.deciding_policy_ids) or "(default deny)"
            # One line per case, never wrapped, so that names and ids stay greppable.
            console.print(
                f"{mark} {r.actual:<5} {r.case.name}  [cyan]{ids}[/]", soft_wrap=True, highlight=False
            )
        summary = f"{len(results) - len(failed)}/{len(results)} cases passed in {elapsed * 1000:.0f} ms"
        console.print(f"[bold red]{summary}[/]" if failed else f"[green]{summary}[/]")
        for r in failed:
            console.print(f"[red]mismatch[/] {r.case.name}: {'; '.join(r.decision.reasons)}")
    if failed:
        raise typer.Exit(1)


EXIT_DENIED = 3


@app.command()
def check(
    token: Annotated[
        str,
        typer.Option(
            envvar="SOVEREIGN_TOKEN",
            help="The user's bearer token (`-` reads it from stdin; or set $SOVEREIGN_TOKEN). Never printed.",
            show_default=False,
        ),
    ],
    model: Annotated[str, typer.Option(help="The model, `<nation>/<model>`, e.g. fra/analyst.")],
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", help="A dataset used with the model, `<nation>/<name>` (repeatable)."),
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--output", "-o")] = OutputFormat.text,
) -> None:
    """May this token's user invoke MODEL (with DATASETs)? Decided on the cluster's Tenants, models,
    datasets and published policy bundle ($KUBECONFIG, e.g. `source .sovereign/env`).

    Exit codes: 0 allowed, 3 denied, 1 error (the token is refused, the cluster or the bundle unusable).
    """
    from sovereign.catalogue import BASE_ONLY_NOTE, load_catalogue
    from sovereign.clients.kubernetes import load_api_client

    if token.strip() == "-":
        token = sys.stdin.read()
    token = token.strip()
    try:
        catalogue = load_catalogue(load_api_client())
    except Exception as error:  # noqa: BLE001 — unreachable cluster, refused credentials, torn bundle
        fail(f"cannot read the catalogue from the cluster: {error}")
        raise  # unreachable: fail() exits
    for warning in catalogue.warnings:
        errors.print(f"[yellow]warning:[/] {warning}")
    if not catalogue.bundle_published and output is OutputFormat.text:
        errors.print(f"[yellow]note:[/] {BASE_ONLY_NOTE}")
    try:
        result = check_access(catalogue, token, model, list(dataset or []))
    except TokenRejected as rejected:
        if output is OutputFormat.json:
            print_json(
                {"allowed": False, "error": {"reasonCode": rejected.reason_code, "message": rejected.message}}
            )
            raise typer.Exit(1) from None
        meaning = REASON_CODES[rejected.reason_code]
        fail(f"token refused ({rejected.reason_code}: {meaning}): {rejected.message}")
    except ValueError as error:  # two Tenants naming one issuer, a Tenant gone meanwhile
        fail(f"cannot decide: {error}")
    if output is OutputFormat.json:
        print_json(result.as_dict())
    else:
        _print_check(result)
    if not result.decision.allowed:
        raise typer.Exit(EXIT_DENIED)


def _print_check(result: CheckResult) -> None:
    user, decision = result.principal, result.decision
    capped = " [dim](capped by the Tenant)[/]" if result.clearance_capped else ""
    verdict = "[bold green]ALLOW[/]" if decision.allowed else "[bold red]DENY[/]"
    resources = ", ".join([result.model, *result.datasets])
    console.print(f"{verdict}  invoke {resources}", highlight=False, soft_wrap=True)
    console.print(
        f"  user      {user.sub} of {user.nationality}, {user.clearance}{capped}; compartments "
        f"{', '.join(user.compartments) or '-'}; groups {', '.join(user.groups) or '-'}"
        + ("; [red]Tenant suspended[/]" if user.tenant_suspended else ""),
        highlight=False,
        soft_wrap=True,
    )
    for reason in decision.reasons:
        console.print(f"  reason    {reason}", highlight=False, soft_wrap=True)
    ids = ", ".join(decision.deciding_policy_ids) or "(none: default deny)"
    console.print(f"  policies  [cyan]{ids}[/]", highlight=False, soft_wrap=True)
    if decision.marking is not None:
        marking = decision.marking
        console.print(
            f"  marking   {marking.classification} REL TO {', '.join(marking.releasable_to)}",
            highlight=False,
            soft_wrap=True,
        )
    published = "" if result.bundle_published else " (base policies only: none published)"
    console.print(f"  bundle    {result.bundle_version}{published}", highlight=False, soft_wrap=True)
