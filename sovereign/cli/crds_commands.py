"""`sovereign crds`: generate the CRD YAML under charts/ from the spec models, or check it is current.

`generate` also copies the policies the chart ships (sovereign.chart_files) into the chart's files/, so the
chart never carries a policy that differs from policies/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sovereign.chart_files import DEFAULT_CHART_FILES_DIR, stale_chart_files, write_chart_files
from sovereign.cli.output import console, fail
from sovereign.specs import CUSTOM_RESOURCES
from sovereign.specs.crd_yaml import stale_crds, write_crds

DEFAULT_CRD_DIR = Path("charts/sovereign/crds")

app = typer.Typer(help="CustomResourceDefinitions generated from the spec models.", no_args_is_help=True)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Directory to write the CRD YAML files to.")] = DEFAULT_CRD_DIR,
    chart_files: Annotated[
        Path, typer.Option(help="The chart's files/ directory, where the shipped policies are copied.")
    ] = DEFAULT_CHART_FILES_DIR,
    check: Annotated[
        bool, typer.Option(help="Write nothing; fail if the files differ from the models.")
    ] = False,
) -> None:
    """Write one CRD file per custom resource and copy the chart's policies (or, with --check, verify)."""
    if check:
        stale = stale_crds(CUSTOM_RESOURCES, out)
        if stale:
            fail(f"CRD YAML in {out} is out of date: {', '.join(stale)}. Run `sovereign crds generate`.")
        console.print(f"CRD YAML in {out} matches the spec models ({len(CUSTOM_RESOURCES)} files)")
        stale = stale_chart_files(chart_files)
        if stale:
            fail(
                f"policy copies in {chart_files} differ from policies/: {', '.join(stale)}. "
                "Run `sovereign crds generate`."
            )
        console.print(f"policy copies in {chart_files} match policies/")
        return
    for path in write_crds(CUSTOM_RESOURCES, out):
        console.print(f"wrote {path}")
    for path in write_chart_files(chart_files):
        console.print(f"wrote {path}")
