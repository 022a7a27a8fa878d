"""`sovereign policy verify`: prove that a policy bundle keeps the alliance's invariants, for every kind of
user that can exist against every model and dataset (sovereign.policy.verify), from the cluster or files.

Exit codes: 0 proven; 1 not proven (an invariant is broken, or the bundle cannot be analysed); 2 nothing
was verified (a bad option or file, the cluster or its published bundle unreadable).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from sovereign.catalogue import Catalogue, matrix_tenants, resources_from_objects
from sovereign.cli.output import OutputFormat, console, errors, fail, print_json
from sovereign.policy.bundle import VERSION_KEY, BundleError, PolicyBundle
from sovereign.policy.verify import STATEMENTS, InvariantResult, Verification, verify_bundle

EXIT_NOT_PROVEN = 1
EXIT_BAD_INPUT = 2
CATALOGUE_KINDS = ("Tenant", "ModelDeployment", "DataSet")


def verify_command(
    bundle: Annotated[
        Path | None,
        typer.Option(
            "--bundle",
            help=(
                "The bundle's ConfigMap manifest, as `kubectl get configmap sovereign-policy-bundle -n "
                "sovereign-system -o yaml` prints it. A torn or edited copy is refused; to verify a bundle "
                "edited by hand, remove its `version` key (the version is then computed). Needs --catalogue."
            ),
            dir_okay=False,
        ),
    ] = None,
    catalogue: Annotated[
        Path | None,
        typer.Option(
            "--catalogue",
            help=(
                "Tenants, ModelDeployments and DataSets (YAML, several documents or a `kind: List`), as "
                "`kubectl get tenants,modeldeployments,datasets -A -o yaml` prints them. Needs --bundle."
            ),
            dir_okay=False,
        ),
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="text for people, json for scripts.")
    ] = OutputFormat.text,
) -> None:
    """Prove the policy bundle keeps every invariant (no read-up, releasability, originator control,
    markings) for every kind of user against every model and dataset; print a counterexample otherwise.

    Without options, from the cluster ($KUBECONFIG): its Tenants, ModelDeployments, DataSets and published
    bundle. Exit codes: 0 proven, 1 an invariant is broken or the bundle cannot be analysed, 2 bad input
    (an option, a file, or the cluster unreadable).
    """
    if (bundle is None) != (catalogue is None):
        given, missing = ("--bundle", "--catalogue") if catalogue is None else ("--catalogue", "--bundle")
        fail(
            f"{given} needs {missing}: verify files together, or neither to read the cluster", EXIT_BAD_INPUT
        )
    if bundle is not None and catalogue is not None:
        loaded = Catalogue([], {}, _bundle_from_file(bundle), True)
        loaded = _with_catalogue_file(loaded, catalogue)
        source = f"{bundle} with {catalogue}"
    else:
        loaded = _catalogue_from_cluster()
        source = "the cluster" + ("" if loaded.bundle_published else " (none published: the base policies)")
    tenants, warnings = matrix_tenants(loaded.tenants)
    for warning in [*loaded.warnings, *warnings]:
        errors.print(f"[yellow]warning:[/] {warning}")
    verification = verify_bundle(loaded.bundle, tenants, list(loaded.resources.values()))
    if output is OutputFormat.json:
        print_json(verification.as_dict())
    else:
        print_verification(verification, source)
    if not verification.ok:
        raise typer.Exit(EXIT_NOT_PROVEN)


def _catalogue_from_cluster() -> Catalogue:
    from sovereign.catalogue import load_catalogue
    from sovereign.clients.kubernetes import load_api_client

    try:
        return load_catalogue(load_api_client())
    except Exception as error:  # noqa: BLE001 — unreachable cluster, refused credentials, torn bundle
        fail(f"cannot read the catalogue from the cluster: {error}", EXIT_BAD_INPUT)
        raise  # unreachable: fail() exits


def _read_yaml(path: Path) -> list[Any]:
    try:
        return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        fail(f"cannot read {path}: {error}", EXIT_BAD_INPUT)
        raise  # unreachable: fail() exits


def _bundle_from_file(path: Path) -> PolicyBundle:
    documents = _read_yaml(path)
    manifest = documents[0] if len(documents) == 1 else None
    if not isinstance(manifest, dict) or manifest.get("kind") != "ConfigMap":
        fail(f"{path} is not one ConfigMap manifest (the policy bundle's)", EXIT_BAD_INPUT)
        raise AssertionError  # unreachable: fail() exits
    data = manifest.get("data")
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        fail(f"{path}: the ConfigMap has no `data` of strings", EXIT_BAD_INPUT)
        raise AssertionError  # unreachable: fail() exits
    try:
        if VERSION_KEY in data:
            return PolicyBundle.from_configmap_data(data)
        return PolicyBundle.from_edited_configmap_data(data)
    except BundleError as error:
        hint = " (edited on purpose? remove its `version` key)" if VERSION_KEY in data else ""
        fail(f"{path}: {error}{hint}", EXIT_BAD_INPUT)
        raise  # unreachable: fail() exits


def _objects(documents: list[Any]) -> Iterator[Any]:
    for document in documents:
        if isinstance(document, dict) and str(document.get("kind", "")).endswith("List"):
            yield from document.get("items") or []
        else:
            yield document


def _with_catalogue_file(catalogue: Catalogue, path: Path) -> Catalogue:
    by_kind: dict[str, list[Mapping[str, Any]]] = {kind: [] for kind in CATALOGUE_KINDS}
    warnings: list[str] = []
    for obj in _objects(_read_yaml(path)):
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
            fail(f"{path} holds something that is not a Kubernetes object: {str(obj)[:80]!r}", EXIT_BAD_INPUT)
        elif obj.get("kind") in by_kind:
            by_kind[str(obj["kind"])].append(obj)
        else:
            warnings.append(f"{obj.get('kind')} {obj['metadata'].get('name')} in {path} ignored")
    tenants = [dict(t) for t in by_kind["Tenant"]]
    if not tenants:
        warnings.append(f"{path} holds no Tenant: no user to verify for")
    resources, resource_warnings = resources_from_objects(
        tenants, by_kind["ModelDeployment"], by_kind["DataSet"]
    )
    return Catalogue(tenants, resources, catalogue.bundle, True, [*warnings, *resource_warnings])


def print_verification(verification: Verification, source: str) -> None:
    console.print(
        f"[bold]policy verification[/] of bundle {verification.bundle_version} from {source}",
        highlight=False,
        soft_wrap=True,
    )
    if verification.unanalysable is not None:
        console.print(
            f"[bold red]✗ cannot be verified:[/] {verification.unanalysable}", highlight=False, soft_wrap=True
        )
    else:
        for result in verification.results:
            _print_result(result)
    console.print(
        f"{verification.nations} nations, {verification.resources} resources, {verification.classes} "
        f"principal classes, {verification.cells} cells, {verification.seconds:.2f} s",
        highlight=False,
    )
    if verification.ok:
        console.print("[bold green]proven:[/] every invariant holds")
    else:
        console.print(
            f"[bold red]not proven:[/] {verification.first_problem()}", highlight=False, soft_wrap=True
        )


def _print_result(result: InvariantResult) -> None:
    statement = STATEMENTS[result.invariant]
    if result.holds:
        console.print(
            f"[green]✓[/] {result.invariant.value} holds ({result.checked} checked): {statement}",
            highlight=False,
            soft_wrap=True,
        )
        return
    console.print(
        f"[bold red]✗[/] {result.invariant.value}: {result.violations} violation(s) in {result.checked} "
        f"checked: {statement}",
        highlight=False,
        soft_wrap=True,
    )
    table = Table("principal class", "resource", "why", title_justify="left")
    table.add_column("deciding policies", overflow="fold")  # whole ids, to grep and to fix
    for example in result.counterexamples:
        table.add_row(
            example.principal.describe() if example.principal else "the policy set",
            f"{example.kind} {example.resource}" if example.resource else "-",
            example.why,
            ", ".join(example.deciding_policy_ids) or "(none)",
        )
    console.print(table)
    hidden = result.violations - len(result.counterexamples)
    if hidden:
        console.print(f"  … and {hidden} more", highlight=False)
