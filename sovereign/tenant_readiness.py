"""Wait until Tenants are Ready (the operator has provisioned them) and show them as `kubectl get` does."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from rich.console import Console
from rich.table import Table

from sovereign.clients.kubernetes import list_tenants, read_tenant

POLL_SECONDS = 0.5


def ready_condition(tenant: dict[str, Any]) -> dict[str, Any]:
    for condition in (tenant.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return {}


def wait_for_tenants_ready(
    api: ApiClient, names: list[str], timeout: float, progress: Callable[[str], None]
) -> None:
    """Block until every named Tenant's Ready condition is True; TimeoutError names those that are not."""
    deadline = time.monotonic() + timeout
    waiting = sorted(names)
    while True:
        still = []
        for name in waiting:
            try:
                ready = ready_condition(read_tenant(api, name))
            except ApiException as error:
                if error.status != 404:
                    raise
                ready = {"reason": "NotFound"}
            if ready.get("status") == "True":
                progress(f"Tenant {name} is Ready")
            else:
                still.append((name, ready))
        waiting = [name for name, _ in still]
        if not waiting:
            return
        if time.monotonic() > deadline:
            details = "; ".join(
                f"{n}: {r.get('reason', 'no status yet')} {r.get('message', '')}" for n, r in still
            )
            raise TimeoutError(f"Tenants not Ready after {timeout:.0f}s ({details})")
        time.sleep(POLL_SECONDS)


def print_tenants(kubeconfig: str, console: Console) -> None:
    """`kubectl get tenants` when kubectl is installed, else the same columns from the API."""
    if shutil.which("kubectl"):
        result = subprocess.run(
            ["kubectl", "--kubeconfig", kubeconfig, "get", "tenants"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode == 0:
            console.print("\n$ kubectl get tenants")
            console.out(result.stdout.rstrip())
            return
    from sovereign.clients.kubernetes import load_api_client

    table = Table("NAME", "NATION", "CLEARANCE", "READY", "KEY VERSION")
    for tenant in list_tenants(load_api_client(kubeconfig)):
        spec, status = tenant.get("spec") or {}, tenant.get("status") or {}
        table.add_row(
            tenant["metadata"]["name"],
            spec.get("nation", ""),
            spec.get("clearance", ""),
            ready_condition(tenant).get("status", ""),
            str(status.get("keyVersion", "")),
        )
    console.print(table)


def not_ready_after(
    api: ApiClient,
    kind: str,
    objects: list[tuple[str, str]],
    timeout: float,
    progress: Callable[[str], None],
    ready_note: Callable[[dict[str, Any]], str] = lambda body: "",
) -> list[str]:
    """Wait until every (namespace, name) object of `kind` (sovereign.ai/v1alpha1) is Ready, saying so as each
    becomes Ready (`ready_note`: what to add, from its body); returns those still not Ready at the timeout,
    each with its Ready condition's reason and message (e.g. which file failed its sha256)."""
    from sovereign.clients.kubernetes import dynamic_client, read_object

    dynamic = dynamic_client(api)
    deadline = time.monotonic() + timeout
    waiting = sorted(objects)
    while True:
        still = []
        for namespace, name in waiting:
            body = read_object(dynamic, "sovereign.ai/v1alpha1", kind, name, namespace) or {}
            ready = ready_condition(body)
            if ready.get("status") == "True":
                progress(f"{kind} {namespace}/{name} is Ready{ready_note(body)}")
            else:
                still.append(((namespace, name), ready))
        waiting = [key for key, _ in still]
        if not waiting or time.monotonic() > deadline:
            return [
                f"{ns}/{n}: {r.get('reason', 'no status yet')} {r.get('message', '')}".strip()
                for (ns, n), r in still
            ]
        time.sleep(POLL_SECONDS)


def wait_for_models_ready(
    api: ApiClient, models: list[tuple[str, str]], timeout: float, progress: Callable[[str], None]
) -> None:
    """Block until every (namespace, name) ModelDeployment is Ready; TimeoutError names those that are not."""
    still = not_ready_after(api, "ModelDeployment", models, timeout, progress)
    if still:
        raise TimeoutError(f"ModelDeployments not Ready after {timeout:.0f}s ({'; '.join(still)})")
