"""`sovereign policy diff -f tenantpolicy.yaml`: what applying a TenantPolicy would change, before it is.

Compared on the cluster as it is now ($KUBECONFIG): the published bundle with the nation's other live
TenantPolicies, with and without this version of the policy, on every principal class of every nation
against every model and dataset (`sovereign.policy.diff`). The admission webhook returns the same summary as
warnings, so `kubectl apply` prints it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml
from rich.table import Table

from sovereign.cli.output import OutputFormat, console, errors, fail, print_json
from sovereign.policy.diff import PolicyDiff, RulesRefused
from sovereign.policy.principal_classes import Unanalysable

EXIT_BAD_INPUT = 2
TENANT_POLICY_GROUP = "sovereign.ai/"


def read_tenant_policy(path: Path) -> tuple[str, str, str]:
    """(namespace, name, spec.cedar) of the one TenantPolicy the file holds; ValueError says what is wrong."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not YAML: {error}") from None
    if len(documents) != 1:
        raise ValueError(f"{path} holds {len(documents)} documents: give it one TenantPolicy")
    body = documents[0]
    if not isinstance(body, dict) or body.get("kind") != "TenantPolicy":
        kind = body.get("kind") if isinstance(body, dict) else type(body).__name__
        raise ValueError(f"{path} is not a TenantPolicy (kind: {kind})")
    if not str(body.get("apiVersion", "")).startswith(TENANT_POLICY_GROUP):
        raise ValueError(f"{path}: apiVersion {body.get('apiVersion')!r} is not sovereign.ai's")
    metadata: dict[str, Any] = body.get("metadata") or {}
    name, namespace = metadata.get("name"), metadata.get("namespace")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{path}: metadata.name is missing")
    if not isinstance(namespace, str) or not namespace:
        raise ValueError(f"{path}: metadata.namespace is missing (the nation's namespace, tenant-<nation>)")
    cedar = (body.get("spec") or {}).get("cedar")
    if not isinstance(cedar, str) or not cedar.strip():
        raise ValueError(f"{path}: spec.cedar holds no policy")
    return namespace, name, cedar


def diff_command(
    file: Annotated[
        Path, typer.Option("--file", "-f", help="A TenantPolicy manifest (YAML), as for `kubectl apply -f`.")
    ],
    output: Annotated[OutputFormat, typer.Option("--output", "-o")] = OutputFormat.text,
) -> None:
    """What applying a TenantPolicy would change: the cells (a kind of user × a model or dataset) it grants
    and those it removes, by nation and resource. Read from the cluster ($KUBECONFIG): the Tenants, models,
    datasets, the published bundle and the nation's other TenantPolicies.

    Exit codes: 0 compared (whatever changes), 2 a bad file (not YAML, not a TenantPolicy, not in a tenant
    namespace, rules the nation may not add), 1 the cluster unreachable or the change not comparable.
    """
    from sovereign.clients.kubernetes import load_api_client
    from sovereign.tenant_policy_diff import NotInTenantNamespace, load_tenant_policy_change

    try:
        namespace, name, cedar = read_tenant_policy(file)
    except ValueError as error:
        _bad_input(str(error))
    try:
        change, catalogue = load_tenant_policy_change(load_api_client(), namespace, name, cedar)
    except NotInTenantNamespace as error:
        _bad_input(str(error))
    except RulesRefused as refused:
        problems = "\n".join(f"  - {problem}" for problem in refused.problems)
        _bad_input(f"TenantPolicy {namespace}/{name} would be refused:\n{problems}")
    except Exception as error:  # noqa: BLE001 — unreachable cluster, refused credentials, torn bundle
        fail(f"cannot read the catalogue from the cluster: {error}")
        raise  # unreachable: fail() exits
    verification = change.verify()
    if not verification.ok:
        _bad_input(
            f"TenantPolicy {namespace}/{name} would be refused: the policy bundle would not be published: "
            f"{verification.first_problem()}"
        )
    try:
        diff = change.diff()
    except Unanalysable as error:
        fail(f"cannot compare what TenantPolicy {namespace}/{name} changes: {error}")
        raise  # unreachable: fail() exits
    subject = f"TenantPolicy {namespace}/{name}"
    if output is OutputFormat.json:
        print_json({"tenantPolicy": f"{namespace}/{name}", **diff.as_dict(), "warnings": catalogue.warnings})
        return
    for warning in catalogue.warnings:
        errors.print(f"[yellow]warning:[/] {warning}")
    print_diff(diff, subject)


def print_diff(diff: PolicyDiff, subject: str) -> None:
    console.print(f"[bold]{diff.headline(subject)}[/]", highlight=False, soft_wrap=True)
    if diff.changed:
        console.print(diff_table(diff))
    console.print(
        f"{diff.compared} cells compared (every kind of user of {diff.nation}, and of every nation on "
        f"{diff.nation}'s resources); bundle {diff.before_version} → {diff.after_version}",
        highlight=False,
        soft_wrap=True,
    )


def diff_table(diff: PolicyDiff) -> Table:
    """One row per nation's users and resource whose decision changes."""
    table = Table("change", "nation", "resource", "users", "cells", "policies", title_justify="left")
    for group in diff.groups:
        change = "[green]+ gains[/]" if group.gained else "[red]- loses[/]"
        resource = f"{group.resource} ({group.kind.value})"
        table.add_row(change, group.nation, resource, group.users(), str(group.cells), group.deciders())
    return table


def _bad_input(message: str) -> NoReturn:
    fail(message, EXIT_BAD_INPUT)
    raise AssertionError("unreachable: fail() exits")
