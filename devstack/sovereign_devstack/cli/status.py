"""`sovereign status`: each component `sovereign up` started from a state dir, its process and whether it
answers."""

from __future__ import annotations

from typing import Any

import httpx
import typer
from rich.table import Table

from sovereign.cli.output import OutputFormat, console, fail, print_json
from sovereign.clients.kubernetes import KubernetesUnavailable, load_api_client, server_version
from sovereign.clients.vault import VaultSealed, VaultUnavailable, vault_client
from sovereign_devstack.cli.up import DEFAULT_STATE_DIR, Output, StateDir


def status(state_dir: StateDir = DEFAULT_STATE_DIR, output: Output = OutputFormat.text) -> None:
    """Show each component, its process and whether it answers. Exit code 1 if anything is down."""
    from sovereign_devstack.stack import load_state, running_services

    state_dir = state_dir.resolve()
    state = load_state(state_dir)
    if state is None:
        if output is OutputFormat.json:
            print_json({"up": False, "components": []})
            raise typer.Exit(1)
        fail(f"the platform is not up (no state in {state_dir}); run `sovereign up`")
    pids = running_services(state_dir, state)
    components = [
        _component(
            "kubernetes", state.kube_url, pids.get("kube-apiserver"), state.external, _kube_health, state
        ),
        _component("vault", state.vault_addr, pids.get("vault"), state.external, _vault_health, state),
    ]
    if "ray" in state.services:
        components.append(
            _component("ray", state.ray_dashboard_url or "-", pids.get("ray"), False, _ray_health, state)
        )
    if "trace-viewer" in state.services:
        components.append(
            _component(
                "trace-viewer",
                state.trace_viewer_url or "-",
                pids.get("trace-viewer"),
                False,
                _trace_viewer_health,
                state,
            )
        )
    if "token-projector" in state.services:
        components.append(
            _component(
                "token-projector",
                state.token_projector_url or "-",
                pids.get("token-projector"),
                False,
                _token_projector_health,
                state,
            )
        )
    if "operator" in state.services:
        components.append(
            _component(
                "operator",
                state.operator_liveness_url or "-",
                pids.get("operator"),
                False,
                _operator_health,
                state,
            )
        )
    healthy = all(c["healthy"] for c in components)
    if output is OutputFormat.json:
        print_json({"up": healthy, "external": state.external, "components": components})
    else:
        table = Table("component", "address", "pid", "healthy", "detail")
        for c in components:
            mark = "[green]yes[/]" if c["healthy"] else "[red]no[/]"
            table.add_row(c["name"], c["address"], str(c["pid"] or "-"), mark, c["detail"])
        console.print(table)
    if not healthy:
        raise typer.Exit(1)


def _kube_health(state: Any) -> str:
    return f"Kubernetes {server_version(load_api_client(state.kubeconfig))}"


def _vault_health(state: Any) -> str:
    try:
        vault_client(state.vault_addr, state.vault_token, verify=state.vault_cacert)
    except VaultSealed as error:
        raise VaultSealed("sealed: run `sovereign vault unseal`") from error
    return "unsealed, token valid"


class OperatorUnhealthy(RuntimeError):
    """The operator's liveness endpoint does not answer 200 (not leading, or kopf stopped)."""


class TraceViewerUnhealthy(RuntimeError):
    """The trace viewer's health endpoint does not answer 200."""


class TokenProjectorUnhealthy(RuntimeError):
    """The devstack's token projector does not answer 200 (not started, or its last pass failed)."""


def _token_projector_health(state: Any) -> str:
    try:
        answer = httpx.get(state.token_projector_url, timeout=5)
    except httpx.HTTPError as error:
        raise TokenProjectorUnhealthy(f"token projector does not answer: {error}") from error
    body = answer.json() if answer.headers.get("content-type") == "application/json" else {}
    if answer.status_code != 200 or body.get("lastError"):
        raise TokenProjectorUnhealthy(
            f"token projector answered {answer.status_code} (last error: {body.get('lastError')})"
        )
    return f"devstack stand-in for the kubelet: {body.get('nations', 0)} nations' serving tokens"


def _trace_viewer_health(state: Any) -> str:
    try:
        answer = httpx.get(f"{state.trace_viewer_url}/healthz", timeout=5)
    except httpx.HTTPError as error:
        raise TraceViewerUnhealthy(f"trace viewer does not answer: {error}") from error
    if answer.status_code != 200:
        raise TraceViewerUnhealthy(f"trace viewer answered {answer.status_code}")
    return "Phoenix; OTLP/HTTP at /v1/traces"


def _ray_health(state: Any) -> str:
    headers = {"Authorization": f"Bearer {state.ray_token}"} if state.ray_token else {}
    version = httpx.get(f"{state.ray_dashboard_url}/api/version", headers=headers, timeout=3.0)
    version.raise_for_status()
    return f"Ray {version.json().get('ray_version', '?')}; gateways at {state.gateway_url}"


def _operator_health(state: Any) -> str:
    try:
        answer = httpx.get(state.operator_liveness_url, timeout=5)
    except httpx.HTTPError as error:
        raise OperatorUnhealthy(f"operator liveness endpoint does not answer: {error}") from error
    if answer.status_code != 200:
        raise OperatorUnhealthy(f"operator liveness endpoint answered {answer.status_code}")
    return "leading, kopf alive"


def _component(
    name: str, address: str, pid: int | None, external: bool, check: Any, state: Any
) -> dict[str, Any]:
    try:
        detail, healthy = check(state), external or pid is not None
    except (
        KubernetesUnavailable,
        VaultUnavailable,
        OperatorUnhealthy,
        TraceViewerUnhealthy,
        TokenProjectorUnhealthy,
    ) as error:
        detail, healthy = str(error), False
    return {"name": name, "address": address, "pid": pid, "healthy": healthy, "detail": detail}
