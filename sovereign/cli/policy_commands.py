"""`sovereign policy`: the Cedar schema generated from the domain model, and the policy test cases."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from sovereign.cli.output import OutputFormat, console, fail, print_json
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.cases import CASES_DIR, load_cases, run_cases
from sovereign.policy.engine import PolicyEngine
from sovereign.policy.schema import SCHEMA_PATH, render_schema, write_schema

app = typer.Typer(help="Policies: Cedar schema, base policies and their test cases.", no_args_is_help=True)


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
