"""`sovereign bundle`: what a disconnected site needs, in one tar, and its check at the site.

`sovereign bundle create OUT.tar` on a connected machine (from a checkout: the chart and policies are read
from the repository), `sovereign bundle verify OUT.tar` at the site before anything is installed. Two
subcommands rather than `sovereign bundle OUT.tar`: a group that also takes an argument would read `verify`
as a file name. The layout is in sovereign/packaging/bundle.py and the README's "Install on a cluster".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from sovereign.cli.output import OutputFormat, console, errors, fail, print_json
from sovereign.packaging import (
    BundleError,
    ChartError,
    create_bundle,
    parse_image_options,
    planned_bytes,
    verify_bundle,
)
from sovereign.packaging.bundle import CHART_DIR, HashProgress
from sovereign.policy_files import POLICIES_DIR

app = typer.Typer(
    help="The offline bundle for a disconnected site: create it, verify it.", no_args_is_help=True
)

OutArgument = Annotated[Path, typer.Argument(help="The bundle file (a tar), e.g. sovereign-bundle.tar.")]
OutputOption = Annotated[OutputFormat, typer.Option("--output", "-o", help="text or json.")]


@contextmanager
def _progress(total: int, description: str) -> Iterator[HashProgress | None]:
    """A byte progress bar on stderr (stdout stays clean for --output json); none for small work."""
    if total < 64 << 20:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=errors, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda _path, read: progress.advance(task, read)


@app.command("create")
def create_command(
    out: OutArgument,
    models: Annotated[
        list[Path] | None,
        typer.Option(
            "--models", help="A model directory (repeatable); its files' sha256 go in the manifest."
        ),
    ] = None,
    image: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=REF[@sha256:...] (repeatable), e.g. sovereign=mirror.example/sovereign@sha256:…"
        ),
    ] = None,
    include_model_files: Annotated[
        bool, typer.Option(help="Carry the model files themselves under models/<name>/.")
    ] = False,
    chart: Annotated[Path, typer.Option(help="The chart directory.")] = CHART_DIR,
    policies: Annotated[Path, typer.Option(help="The policies directory (cedar/, vault/).")] = POLICIES_DIR,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Write OUT: the chart archive, CRDs, policies, image list and model manifest, with MANIFEST.json."""
    model_dirs = list(models or [])
    try:
        images = parse_image_options(image or [])
        total = planned_bytes(model_dirs, include_model_files)
        with _progress(total, "hashing and packing models") as progress:
            manifest = create_bundle(
                out,
                model_dirs,
                images,
                include_model_files=include_model_files,
                chart_dir=chart,
                policies_dir=policies,
                progress=progress,
            )
    except (BundleError, ChartError, OSError) as error:
        fail(f"no bundle written: {error}")
        raise  # unreachable: fail() exits
    size = sum(member.size for member in manifest.members)
    if output is OutputFormat.json:
        print_json({"bundle": str(out.resolve()), **manifest.model_dump()})
        return
    count = len(manifest.members) + 1  # and MANIFEST.json
    console.print(f"[green]✓[/] {out}: {manifest.chart}, {count} members, {size:,} bytes")
    for member in manifest.members:
        if not member.path.startswith("models/") or member.path == "models/manifest.json":
            console.print(f"  {member.sha256[:16]}…  {member.path}")
    if model_dirs:
        console.print(f"  models: {', '.join(d.name for d in model_dirs)}", soft_wrap=True)
    console.print(f"Check it at the site with: sovereign bundle verify {out}")


@app.command("verify")
def verify_command(out: OutArgument, output: OutputOption = OutputFormat.text) -> None:
    """Check OUT against its MANIFEST.json and open each part; exit 1 naming every problem."""
    if not out.is_file():
        fail(f"{out}: no such file")
    with _progress(out.stat().st_size, "verifying") as progress:
        report = verify_bundle(out, progress)
    if output is OutputFormat.json:
        print_json(report.model_dump())
    elif report.ok:
        console.print(
            f"[green]✓[/] {out}: {report.chart}, {report.members} members match MANIFEST.json, "
            f"{report.crds} CRDs, {report.models} model(s)"
        )
    else:
        console.print(f"[red]✗[/] {out}: {len(report.problems)} problem(s)")
        for problem in report.problems:
            console.print(f"  {problem.member}: {problem.kind}: {problem.message}", soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)
