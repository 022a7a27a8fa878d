"""`sovereign access-matrix`: who may use what, for every nation and clearance level, from the live cluster.

Rows are a nation's users at each clearance level up to its Tenant's clearance; columns the catalogue's
models (invoke) and datasets (read); every cell is decided by the same policies as the gateway
(`sovereign.policy.matrix.access_matrix`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from sovereign.catalogue import BASE_ONLY_NOTE, Catalogue, matrix_tenants
from sovereign.cli.output import console, errors, fail, print_json
from sovereign.domain.markings import Resource
from sovereign.policy.engine import PolicyEngine
from sovereign.policy.matrix import access_matrix

MAX_WIDE_COLUMNS = 10  # more resources than this: one row per cell (the long format)
ALLOWED, DENIED = "✓", "✗"


class MatrixFormat(StrEnum):
    table = "table"
    json = "json"


def matrix_report(
    catalogue: Catalogue,
    nations: Sequence[str] = (),
    compartments: Sequence[str] = (),
    groups: Sequence[str] = (),
) -> dict[str, Any]:
    """The matrix of the catalogue as data (what `--output json` prints)."""
    tenants, warnings = matrix_tenants(catalogue.tenants, nations)
    resources = list(catalogue.resources.values())
    cells = access_matrix(PolicyEngine(catalogue.bundle), tenants, resources, compartments, groups)
    return {
        "bundleVersion": catalogue.bundle.version,
        "bundlePublished": catalogue.bundle_published,
        "note": None if catalogue.bundle_published else BASE_ONLY_NOTE,
        "compartments": sorted(set(compartments)),
        "groups": sorted(set(groups)),
        "tenants": [
            {"nation": t.nation, "clearance": t.clearance.value, "suspended": t.suspended} for t in tenants
        ],
        "resources": [_resource_dict(r) for r in resources],
        "cells": [cell.as_dict() for cell in cells],
        "warnings": [*catalogue.warnings, *warnings],
    }


def _resource_dict(resource: Resource) -> dict[str, Any]:
    return {
        "kind": resource.kind.value,
        "name": resource.name,
        "markings": resource.markings.model_dump(mode="json", by_alias=True),
    }


def wide_table(report: dict[str, Any]) -> Table:
    """Rows nation × clearance, one column per resource, ✓/✗ cells."""
    names = [r["name"] for r in report["resources"]]
    table = Table(title="access matrix", title_justify="left")
    table.add_column("nation")
    table.add_column("clearance")
    for resource in report["resources"]:
        m = resource["markings"]
        table.add_column(f"{resource['name']}\n{resource['kind']}, {m['classification']}", justify="center")
    rows: dict[tuple[str, str], dict[str, bool]] = {}
    for cell in report["cells"]:
        rows.setdefault((cell["nation"], cell["clearance"]), {})[cell["resource"]] = cell["allowed"]
    for (nation, clearance), by_name in rows.items():
        marks = [f"[green]{ALLOWED}[/]" if by_name.get(n) else f"[red]{DENIED}[/]" for n in names]
        table.add_row(nation, clearance, *marks)
    return table


def long_table(report: dict[str, Any]) -> Table:
    """One row per cell: nation, clearance, resource, decision, deciding policies or reason."""
    table = Table(
        "nation", "clearance", "resource", "decision", "deciding policies / reason", title="access matrix"
    )
    for cell in report["cells"]:
        mark = f"[green]{ALLOWED} allow[/]" if cell["allowed"] else f"[red]{DENIED} deny[/]"
        why = ", ".join(cell["decidingPolicyIds"]) or cell["reason"]
        table.add_row(cell["nation"], cell["clearance"], cell["resource"], mark, why)
    return table


def policy_summary(report: dict[str, Any]) -> Table:
    """How many cells each policy decided, allows and denies apart."""
    counts: Counter[tuple[str, bool]] = Counter()
    for cell in report["cells"]:
        for policy_id in cell["decidingPolicyIds"] or ["(none: default deny)"]:
            counts[(policy_id, cell["allowed"])] += 1
    table = Table("deciding policy", "decision", "cells", title="deciding policies", title_justify="left")
    for (policy_id, allowed), count in sorted(counts.items()):
        table.add_row(policy_id, "allow" if allowed else "deny", str(count))
    return table


def access_matrix_command(
    output: Annotated[
        MatrixFormat, typer.Option("--output", "-o", help="table for people, json for scripts.")
    ] = (MatrixFormat.table),
    long: Annotated[
        bool, typer.Option("--long", help=f"One row per cell (automatic above {MAX_WIDE_COLUMNS} resources).")
    ] = False,
    compartment: Annotated[
        list[str] | None,
        typer.Option("--compartment", help="Compartment every row's user holds (repeatable)."),
    ] = None,
    group: Annotated[
        list[str] | None, typer.Option("--group", help="Group every row's user is in (repeatable).")
    ] = None,
    nation: Annotated[
        list[str] | None, typer.Option("--nation", help="Only this nation's rows (repeatable).")
    ] = None,
) -> None:
    """For every nation and clearance level, which models and datasets its users may use.

    Read from the cluster ($KUBECONFIG): Tenants, ModelDeployments, DataSets, the published bundle.
    """
    from sovereign.catalogue import load_catalogue
    from sovereign.clients.kubernetes import load_api_client

    try:
        catalogue = load_catalogue(load_api_client())
    except Exception as error:  # noqa: BLE001 — unreachable cluster, refused credentials, torn bundle
        fail(f"cannot read the catalogue from the cluster: {error}")
        raise  # unreachable: fail() exits
    report = matrix_report(catalogue, nation or [], compartment or [], group or [])
    if output is MatrixFormat.json:
        print_json(report)
        return
    for warning in report["warnings"]:
        errors.print(f"[yellow]warning:[/] {warning}")
    print_report(report, long)


def print_report(report: dict[str, Any], long: bool = False) -> None:
    if not report["tenants"] or not report["resources"]:
        console.print("no cells: " + ("no Tenant" if not report["tenants"] else "no model or dataset"))
    else:
        table = wide_table(report)
        too_wide = (
            len(report["resources"]) > MAX_WIDE_COLUMNS or console.measure(table).minimum > console.width
        )
        if long or too_wide:
            console.print(long_table(report))
        else:
            console.print(table)
            console.print(
                f"[green]{ALLOWED}[/] allowed   [red]{DENIED}[/] denied   (models: invoke, datasets: read)"
            )
        console.print(policy_summary(report))
    bundle = report["bundleVersion"] + ("" if report["bundlePublished"] else f" ({BASE_ONLY_NOTE})")
    extras = []
    if report["compartments"]:
        extras.append(f"compartments {', '.join(report['compartments'])}")
    if report["groups"]:
        extras.append(f"groups {', '.join(report['groups'])}")
    console.print(
        f"bundle {bundle}" + (f"; users hold {'; '.join(extras)}" if extras else ""), highlight=False
    )
