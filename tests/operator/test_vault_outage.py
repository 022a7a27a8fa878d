"""Vault unreachable: status says so, the operator retries, and once Vault answers everything converges."""

from __future__ import annotations

from collections.abc import Callable

import hvac
import pytest
from sovereign_devstack.processes import free_loopback_port

from tests.helpers import wait_until
from tests.operator.conftest import OperatorProcess, Platform
from tests.operator.tenants import (
    apply_tenant,
    condition,
    delete_tenant,
    events_for,
    get_json,
    tenant,
    wait_ready,
)


def test_unreachable_vault_is_reported_and_provisioning_completes_once_it_answers(
    platform: Platform, start_operator: Callable[..., OperatorProcess]
) -> None:
    kube = platform.kube
    nowhere = f"http://127.0.0.1:{free_loopback_port()}"  # nothing listens there
    blind = start_operator(VAULT_ADDR=nowhere)
    blind.wait_for_log("Initial authentication has finished")
    apply_tenant(kube, "cze", "CZE")
    try:

        def reported() -> dict | None:
            keys = condition(tenant(kube, "cze"), "KeysReady")
            return keys if keys.get("reason") == "VaultUnreachable" else None

        keys = wait_until(reported, "KeysReady=False VaultUnreachable", timeout=30)
        assert keys["status"] == "False" and nowhere in keys["message"]
        body = tenant(kube, "cze")
        assert condition(body, "Ready")["status"] == "False"
        assert condition(body, "Ready")["reason"] == "VaultUnreachable"
        assert condition(body, "NamespaceReady")["status"] == "True"
        assert condition(body, "IdentityReady")["status"] == "Unknown"
        assert any(
            e["reason"] == "VaultUnreachable" and e["type"] == "Warning" for e in events_for(kube, "cze")
        )
        with pytest.raises(hvac.exceptions.InvalidPath):
            platform.root_vault().secrets.transit.read_key("tenant-cze")

        assert blind.stop() == 0
        start_operator()  # the same operator, now with the real Vault
        ready = wait_ready(kube, "cze", timeout=40)
        assert condition(ready, "KeysReady")["reason"] == "Provisioned"
        assert platform.root_vault().secrets.transit.read_key("tenant-cze")["data"]["latest_version"] == 1
        assert get_json(kube, "namespace", "tenant-cze") is not None
    finally:
        delete_tenant(kube, "cze")
