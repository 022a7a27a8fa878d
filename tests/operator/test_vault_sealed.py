"""The real OpenBao killed, restarted (it comes back sealed) and unsealed under a running operator.

A Vault of the test's own (the session's is not disturbed), prepared as `sovereign up` prepares the
platform's. While it is down the Tenant says `KeysReady=False VaultUnreachable`, while it is sealed
`VaultSealed` with what to do, both shown by `kubectl describe` (and `kubectl get -o wide`); once it is
unsealed the Tenant is Ready again by itself, with the same key (no new key, no new version), and the
operator was never restarted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sovereign.platform_setup import create_operator_token
from tests.helpers import kubectl, wait_until
from tests.operator.harness import OperatorProcess, Platform, prepare_platform_vault
from tests.operator.tenants import apply_tenant, condition, delete_tenant, tenant, wait_ready
from tests.servers import VaultServer

# A fault case of `make faults` (issue 17's matrix), kept out of `make test` for its time.
pytestmark = pytest.mark.faults


NATION = "NPL"  # Nepal: used by no other test
NAME = NATION.lower()
KEY_NAME = f"tenant-{NAME}"


@pytest.fixture
def own_vault(platform: Platform, fresh_vault: VaultServer) -> Iterator[tuple[VaultServer, dict[str, str]]]:
    """The test's own Vault, prepared like the platform's, and the environment pointing an operator at it."""
    root = fresh_vault.client()
    prepare_platform_vault(root, platform.kube)  # as the platform's
    env = {
        "VAULT_ADDR": fresh_vault.url,
        "VAULT_CACERT": str(fresh_vault.ca_cert),
        "VAULT_TOKEN": create_operator_token(root),
    }
    yield fresh_vault, env


def _keys_ready(platform: Platform) -> dict[str, Any]:
    return condition(tenant(platform.kube, NAME), "KeysReady")


def _wait_keys_reason(platform: Platform, reason: str) -> dict[str, Any]:
    def reported() -> dict[str, Any] | None:
        keys = _keys_ready(platform)
        return keys if keys.get("status") == "False" and keys.get("reason") == reason else None

    return wait_until(reported, f"KeysReady False {reason}", timeout=45)


def _running_and_unsealed(vault: VaultServer) -> None:
    try:
        vault.client().sys.read_seal_status()
    except requests.ConnectionError:
        vault.start()
    vault.unseal()  # a no-op when it is unsealed


def _transit_key(vault: VaultServer) -> dict[str, Any]:
    data = vault.client().secrets.transit.read_key(name=KEY_NAME)["data"]
    return {"latest_version": data["latest_version"], "versions": sorted(data["keys"])}


def test_sealed_or_down_vault_is_reported_and_heals_without_a_restart(
    platform: Platform, start_operator: Any, own_vault: tuple[VaultServer, dict[str, str]]
) -> None:
    vault, vault_env = own_vault
    operator: OperatorProcess = start_operator(**vault_env)
    apply_tenant(platform.kube, NAME, NATION)
    try:
        ready = wait_ready(platform.kube, NAME, timeout=45)
        key_version = ready["status"]["keyVersion"]
        key_before = _transit_key(vault)

        # Killed: no answer at all.
        vault.stop(kill=True)
        keys = _wait_keys_reason(platform, "VaultUnreachable")
        assert vault.url in keys["message"] and "unreachable" in keys["message"], keys["message"]
        assert condition(tenant(platform.kube, NAME), "Ready")["status"] == "False"
        described = kubectl(platform.kube, "describe", "tenant", NAME).stdout
        assert "VaultUnreachable" in described, described

        # Restarted: it answers, sealed, and serves no key until someone unseals it.
        vault.start()
        keys = _wait_keys_reason(platform, "VaultSealed")
        assert "sealed" in keys["message"] and "unseal" in keys["message"], keys["message"]
        ready_condition = condition(tenant(platform.kube, NAME), "Ready")
        assert (ready_condition["status"], ready_condition["reason"]) == ("False", "VaultSealed")
        described = kubectl(platform.kube, "describe", "tenant", NAME).stdout
        assert "VaultSealed" in described, described
        row = kubectl(platform.kube, "get", "tenant", NAME, "-o", "wide", "--no-headers").stdout.strip()
        assert " False " in row and row.endswith(" VaultSealed"), row  # READY ... REASON (the last column)

        # Unsealed: Ready again by itself, with the very key it had.
        vault.unseal()
        healed = wait_ready(platform.kube, NAME, timeout=45)
        assert condition(healed, "KeysReady")["status"] == "True"
        assert healed["status"]["keyVersion"] == key_version
        assert _transit_key(vault) == key_before
        assert operator.returncode is None, "the operator must ride out the outage, not restart"
    finally:
        _running_and_unsealed(vault)  # so that offboarding can complete
        delete_tenant(platform.kube, NAME, timeout=60)
    assert operator.returncode is None
