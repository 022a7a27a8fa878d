"""Vault slow: the operator reaches the platform Vault through a loopback proxy that holds every chunk a
client sends for a while before passing it on (a TLS handshake and a request cost one wait each).

Slow but within the Vault client's timeout (10 s), provisioning takes longer and ends right: the Tenant
Ready with exactly the nation's artifacts. Slower than that, every call times out: the Tenant says
VaultUnreachable (not Ready, never a half-ready status), the operator keeps retrying without crashing, and
once Vault answers in time again it converges to the same artifacts, nothing more (a call that timed out for
the operator may still have reached Vault: the next pass finds what it made). The times are printed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import kubectl, wait_until
from tests.operator.harness import Platform
from tests.operator.switchable_proxy import SwitchableProxy
from tests.operator.tenant_inventory import inventory, is_offboarded, is_ready, nation_artifacts, read_tenant

pytestmark = pytest.mark.faults


@pytest.fixture
def slow_vault(platform: Platform) -> Iterator[SwitchableProxy]:
    target = urlsplit(platform.vault_url)
    proxy = SwitchableProxy(target.hostname or "127.0.0.1", target.port or 8200, target.scheme)
    proxy.open()
    try:
        yield proxy
    finally:
        proxy.shutdown()


def tenant_yaml(nation: str) -> str:
    return (
        f"apiVersion: sovereign.ai/v1alpha1\nkind: Tenant\nmetadata: {{name: {nation.lower()}}}\n"
        f"spec: {{nation: {nation}, displayName: Slow Vault {nation}, clearance: NATO RESTRICTED}}\n"
    )


def _condition(platform: Platform, nation: str, kind: str) -> dict[str, Any] | None:
    conditions = ((read_tenant(platform, nation) or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), None)


def _offboard(platform: Platform, nation: str) -> None:
    kubectl(platform.kube, "delete", "tenant", nation.lower(), "--wait=false")
    wait_until(lambda: is_offboarded(platform, nation), f"{nation} offboarded", timeout=120)


def test_vault_slow_within_the_timeout_provisions_right_only_later(
    platform: Platform, start_operator: Any, slow_vault: SwitchableProxy
) -> None:
    nation = "SLB"  # Solomon Islands: used by no other test
    before = inventory(platform)
    slow_vault.delay = 1.0
    operator = start_operator(VAULT_ADDR=slow_vault.url)
    started = time.monotonic()
    kubectl(platform.kube, "apply", "-f", "-", input=tenant_yaml(nation))
    wait_until(
        lambda: is_ready(platform, nation), f"{nation} Ready with a slow Vault", timeout=240, interval=1
    )
    took = time.monotonic() - started
    assert inventory(platform) - before == nation_artifacts(nation)
    assert operator.returncode is None
    print(f"\nVault {slow_vault.delay:.0f} s per chunk: {nation} Ready after {took:.1f} s")
    slow_vault.delay = 0.0
    _offboard(platform, nation)
    assert not (inventory(platform) - before)


def test_vault_slower_than_the_timeout_is_reported_and_recovered(
    platform: Platform, start_operator: Any, slow_vault: SwitchableProxy
) -> None:
    nation = "WSM"  # Samoa: used by no other test
    before = inventory(platform)
    slow_vault.delay = 12.0  # beyond the Vault client's 10 s timeout
    operator = start_operator(VAULT_ADDR=slow_vault.url)
    started = time.monotonic()
    kubectl(platform.kube, "apply", "-f", "-", input=tenant_yaml(nation))
    keys = wait_until(
        lambda: (c := _condition(platform, nation, "KeysReady")) and c["status"] == "False" and c,
        "KeysReady False while Vault is too slow",
        timeout=90,
        interval=1,
    )
    reported = time.monotonic() - started
    assert keys["reason"] == "VaultUnreachable", keys
    assert (_condition(platform, nation, "Ready") or {}).get("status") == "False"
    assert operator.returncode is None

    slow_vault.delay = 0.0
    fast_again = time.monotonic()
    wait_until(
        lambda: is_ready(platform, nation), f"{nation} Ready once Vault is fast", timeout=120, interval=1
    )
    recovered = time.monotonic() - fast_again
    assert inventory(platform) - before == nation_artifacts(nation)
    assert operator.returncode is None
    print(
        f"\nVault 12 s per chunk: KeysReady False (VaultUnreachable) after {reported:.1f} s; "
        f"Ready {recovered:.1f} s after Vault was fast again"
    )
    _offboard(platform, nation)
    assert not (inventory(platform) - before)
