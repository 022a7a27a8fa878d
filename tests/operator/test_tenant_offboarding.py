"""Offboarding (crypto-shredding), a second Tenant for a taken nation, rotation by period, a given issuer."""

from __future__ import annotations

import base64
import json

import hvac
import pytest
from sovereign_operator.constants import ROTATE_KEY_ANNOTATION

from sovereign.cli.keys_commands import ROTATE_KEY_ANNOTATION as CLI_ANNOTATION
from tests.helpers import kubectl, wait_until
from tests.operator.harness import OperatorProcess, Platform
from tests.operator.tenants import (
    apply_tenant,
    condition,
    delete_tenant,
    events_for,
    get_json,
    tenant,
    wait_ready,
)


def test_cli_and_operator_agree_on_the_rotation_annotation() -> None:
    assert CLI_ANNOTATION == ROTATE_KEY_ANNOTATION


def _gone(call, *args, **kwargs) -> bool:  # type: ignore[no-untyped-def]
    try:
        call(*args, **kwargs)
    except hvac.exceptions.InvalidPath:
        return True
    return False


def test_offboarding_shreds_the_key_and_removes_everything_named_after_the_nation(
    platform: Platform, running_operator: OperatorProcess
) -> None:
    kube, root = platform.kube, platform.root_vault()
    apply_tenant(kube, "isl", "ISL")
    uid = wait_ready(kube, "isl")["metadata"]["uid"]
    plaintext = base64.b64encode(b"isl secret").decode()
    sealed = root.secrets.transit.encrypt_data("tenant-isl", plaintext)["data"]["ciphertext"]
    root.secrets.kv.v2.create_or_update_secret("tenants/tenant-isl/deep/nested", secret={"a": "1"})
    root.secrets.kv.v2.create_or_update_secret("tenants/tenant-isl/deep/nested", secret={"a": "2"})

    delete_tenant(kube, "isl")

    with pytest.raises(hvac.exceptions.InvalidRequest):  # the key and all its versions are gone
        root.secrets.transit.decrypt_data("tenant-isl", sealed)
    assert _gone(root.secrets.transit.read_key, "tenant-isl")
    assert _gone(root.secrets.transit.read_key, "tenant-isl-issuer"), "the dev issuer key is shredded too"
    assert _gone(root.auth.kubernetes.read_role, "tenant-isl")
    assert _gone(root.secrets.kv.v2.list_secrets, "tenants/tenant-isl")
    assert _gone(root.secrets.kv.v2.read_secret_metadata, "tenants/tenant-isl/deep/nested"), "all versions"
    assert root.sys.read_acl_policy("sovereign-nation"), "the nations' shared policy stays"
    assert get_json(kube, "namespace", "tenant-isl") is None

    records = get_json(kube, "configmap", "shred-records", "-n", "sovereign-system")["data"]
    record = json.loads(records[f"isl.{uid}"])
    assert record["nation"] == "ISL" and record["keyName"] == "tenant-isl"
    assert record["lastKeyVersion"] == 1 and record["state"] == "shredded" and record["shreddedAt"]


def test_second_tenant_for_a_nation_is_refused_and_gets_nothing(
    platform: Platform, running_operator: OperatorProcess
) -> None:
    kube, root = platform.kube, platform.root_vault()
    apply_tenant(kube, "prt", "PRT")
    wait_ready(kube, "prt")
    try:
        # Straight to the API (the admission webhook, when registered, would refuse it earlier).
        apply_tenant(kube, "prt-again", "PRT", displayName="Portugal again")

        def refused() -> dict | None:
            ready = condition(tenant(kube, "prt-again"), "Ready")
            return ready if ready.get("reason") == "DuplicateNation" else None

        ready = wait_until(refused, "duplicate refused", timeout=30)
        assert ready["status"] == "False" and "prt" in ready["message"]
        assert "keyVersion" not in tenant(kube, "prt-again")["status"]
        warnings = [e for e in events_for(kube, "prt-again") if e["type"] == "Warning"]
        assert warnings and warnings[0]["reason"] == "DuplicateNation"

        # Deleting the duplicate leaves the real nation's namespace and key alone.
        delete_tenant(kube, "prt-again")
        assert get_json(kube, "namespace", "tenant-prt") is not None
        assert root.secrets.transit.read_key("tenant-prt")["data"]["latest_version"] == 1
        assert condition(tenant(kube, "prt"), "Ready")["status"] == "True"
    finally:
        delete_tenant(kube, "prt-again")
        delete_tenant(kube, "prt")


def test_key_rotates_on_its_own_after_its_period(
    platform: Platform, running_operator: OperatorProcess
) -> None:
    kube = platform.kube
    apply_tenant(kube, "fin", "FIN", keyRotation={"period": "3s"})
    try:
        wait_ready(kube, "fin")
        wait_until(
            lambda: tenant(kube, "fin")["status"].get("keyVersion", 0) >= 2, "rotation by period", timeout=30
        )
        assert any(e["reason"] == "KeyRotated" for e in events_for(kube, "fin"))
        # A long period again: rotation stops.
        apply_tenant(kube, "fin", "FIN", keyRotation={"period": "720h"})
        wait_until(
            lambda: (
                tenant(kube, "fin")["status"]["observedGeneration"]
                == tenant(kube, "fin")["metadata"]["generation"]
            ),
            "spec change seen",
        )
        settled = platform.root_vault().secrets.transit.read_key("tenant-fin")["data"]["latest_version"]
        ticks = running_operator.log_text().count("Timer 'reconcile_periodically' succeeded")
        wait_until(
            lambda: (
                running_operator.log_text().count("Timer 'reconcile_periodically' succeeded") >= ticks + 2
            ),
            "two more timer passes",
            timeout=20,
        )
        assert (
            platform.root_vault().secrets.transit.read_key("tenant-fin")["data"]["latest_version"] == settled
        )
    finally:
        delete_tenant(kube, "fin")


def test_delete_waits_for_namespace_and_kubectl_delete_completes(
    platform: Platform, running_operator: OperatorProcess
) -> None:
    kube = platform.kube
    apply_tenant(kube, "lux", "LUX")
    wait_ready(kube, "lux")
    kubectl(kube, "delete", "tenant", "lux", "--timeout=60s")
    assert get_json(kube, "tenant", "lux") is None and get_json(kube, "namespace", "tenant-lux") is None
    reasons = [e["reason"] for e in events_for(kube, "lux")]
    assert "KeyShredded" in reasons and "IssuerKeyShredded" in reasons and "Offboarded" in reasons


def test_a_given_identity_issuer_is_recorded_instead_of_a_dev_issuer(
    platform: Platform, running_operator: OperatorProcess
) -> None:
    kube = platform.kube
    issuer = {"issuer": "https://idp.hun.example", "audience": "sovereign-hun", "jwksUri": "https://idp/jwks"}
    apply_tenant(kube, "hun", "HUN", identity=issuer)
    try:
        body = wait_ready(kube, "hun")
        assert body["status"]["identity"] == {**issuer, "source": "spec"}
        assert condition(body, "IdentityReady")["reason"] == "IssuerConfigured"
        assert get_json(kube, "configmap", "identity-jwks", "-n", "tenant-hun") is None
        with pytest.raises(hvac.exceptions.InvalidPath):  # no dev issuer key made
            platform.root_vault().secrets.transit.read_key("tenant-hun-issuer")
    finally:
        delete_tenant(kube, "hun")
