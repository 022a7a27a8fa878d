"""`sovereign keys rotate`: ask the operator to rotate a nation's transit key now, and wait for it.

The request is an annotation on the nation's Tenant (ROTATE_KEY_ANNOTATION = the time asked); the operator
rotates the key in Vault and records the new version in status.keyVersion.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from sovereign.cli.output import OutputFormat, console, errors, fail, print_json
from sovereign.clients.kubernetes import annotate_tenant, list_tenants, load_api_client, read_tenant

# The operator's annotation name (operator/sovereign_operator/constants.py); the CLI does not import the
# operator package, so the name is repeated here and a test checks both agree.
ROTATE_KEY_ANNOTATION = "sovereign.ai/rotate-key-requested-at"
POLL_SECONDS = 0.5

app = typer.Typer(help="Nations' keys in Vault.", no_args_is_help=True)


def _tenant_for_nation(api: Any, nation: str) -> dict[str, Any]:
    matches = [t for t in list_tenants(api) if (t.get("spec") or {}).get("nation") == nation]
    if not matches:
        fail(f"no Tenant for nation {nation} (see `kubectl get tenants`)")
    # One Tenant per nation; if a duplicate slipped in, the oldest is the one the operator provisions.
    return min(matches, key=lambda t: (t["metadata"].get("creationTimestamp", ""), t["metadata"]["name"]))


@app.command()
def rotate(
    nation: Annotated[str, typer.Option(help="ISO 3166-1 alpha-3 code of the nation, e.g. FRA.")],
    wait: Annotated[bool, typer.Option(help="Wait until the operator reports the new key version.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 60.0,
    output: Annotated[OutputFormat, typer.Option("--output", "-o")] = OutputFormat.text,
) -> None:
    """Rotate NATION's transit key now; data encrypted under older versions still decrypts."""
    progress = errors if output is OutputFormat.json else console
    nation = nation.upper()
    api = load_api_client()
    tenant = _tenant_for_nation(api, nation)
    name = tenant["metadata"]["name"]
    before = (tenant.get("status") or {}).get("keyVersion")
    requested_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    annotate_tenant(api, name, {ROTATE_KEY_ANNOTATION: requested_at})
    progress.print(f"asked the operator to rotate {nation}'s key (Tenant {name}, key version {before})")
    result: dict[str, Any] = {"nation": nation, "tenant": name, "requestedAt": requested_at}
    if wait:
        result["keyVersion"] = _wait_for_rotation(api, name, before, requested_at, timeout, progress)
        progress.print(f"[green]✓[/] {nation}'s key is now version {result['keyVersion']}")
    if output is OutputFormat.json:
        print_json(result)


def _wait_for_rotation(
    api: Any, name: str, before: int | None, requested_at: str, timeout: float, progress: Any
) -> int:
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while True:
        status = read_tenant(api, name).get("status") or {}
        version = status.get("keyVersion")
        handled = status.get("rotationRequestHandled") == requested_at
        if handled and isinstance(version, int) and (before is None or version > before):
            return version
        now = time.monotonic()
        if now > deadline:
            fail(f"timed out after {timeout:.0f}s: key version is still {version} (is the operator running?)")
        if now - last_report > 5:
            progress.print(f"  waiting for the operator… (key version {version})")
            last_report = now
        time.sleep(POLL_SECONDS)
