"""Vault unreachable: the Tenant's status and a Warning Event say so, the operator keeps retrying without
crashing, nothing of the nation is half-written in Vault, and once Vault answers again it converges.

The operator reaches the platform Vault through a loopback proxy that the test closes (connections are
refused, as by a stopped server) and opens again; the Vault behind it keeps its state, so the test can
list what the outage left there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import kubectl, wait_until
from tests.operator.harness import Platform
from tests.operator.switchable_proxy import SwitchableProxy
from tests.operator.tenant_inventory import inventory, is_offboarded, is_ready, nation_artifacts, read_tenant

# A fault case of `make faults` (issue 17's matrix), kept out of `make test` for its time.
pytestmark = pytest.mark.faults


NATION = "BTN"  # Bhutan: used by no other test
TENANT = f"""apiVersion: sovereign.ai/v1alpha1
kind: Tenant
metadata: {{name: {NATION.lower()}}}
spec: {{nation: {NATION}, displayName: Bhutan, clearance: NATO CONFIDENTIAL}}
"""


@pytest.fixture
def vault_proxy(platform: Platform) -> Iterator[SwitchableProxy]:
    target = urlsplit(platform.vault_url)
    proxy = SwitchableProxy(target.hostname or "127.0.0.1", target.port or 8200, target.scheme)
    try:
        yield proxy  # closed: the port refuses connections until the test opens it
    finally:
        proxy.shutdown()


def _keys_ready(platform: Platform) -> dict[str, Any] | None:
    conditions = ((read_tenant(platform, NATION) or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "KeysReady"), None)


def _vault_warnings(platform: Platform) -> list[dict[str, Any]]:
    events = json.loads(kubectl(platform.kube, "get", "events", "-A", "-o", "json").stdout)["items"]
    return [
        event
        for event in events
        if event["involvedObject"].get("name") == NATION.lower()
        and event["involvedObject"].get("kind") == "Tenant"
        and event["type"] == "Warning"
        and event["reason"] == "VaultUnreachable"
    ]


def test_vault_outage_is_reported_retried_and_recovered(
    platform: Platform, start_operator: Any, vault_proxy: SwitchableProxy
) -> None:
    before = inventory(platform)
    operator = start_operator(VAULT_ADDR=vault_proxy.url)
    kubectl(platform.kube, "apply", "-f", "-", input=TENANT)

    keys = wait_until(
        lambda: (c := _keys_ready(platform)) and c["status"] == "False" and c,
        "KeysReady False while Vault is down",
        timeout=30,
    )
    assert keys["reason"] == "VaultUnreachable"
    assert vault_proxy.url in keys["message"]
    assert "Connection refused" in keys["message"] or "Max retries" in keys["message"], keys["message"]
    ready = next(c for c in read_tenant(platform, NATION)["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"

    # Retries, each reported; the process stays up.
    wait_until(lambda: len(_vault_warnings(platform)) >= 2, "a second VaultUnreachable Warning", timeout=30)
    assert operator.returncode is None

    # Nothing of the nation reached the platform Vault; only its namespace (Kubernetes) may exist.
    appeared = inventory(platform) - before
    assert appeared <= {f"namespace:tenant-{NATION.lower()}"}, appeared

    vault_proxy.open()
    wait_until(lambda: is_ready(platform, NATION), f"{NATION} Ready once Vault answers", timeout=45)
    assert inventory(platform) - before == nation_artifacts(NATION)
    assert operator.returncode is None

    kubectl(platform.kube, "delete", "tenant", NATION.lower(), "--wait=false")
    wait_until(lambda: is_offboarded(platform, NATION), f"{NATION} offboarded", timeout=45)
