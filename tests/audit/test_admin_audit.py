"""The operator's admin records, with the operator's real Vault policy: it seals records for a nation with
`datakey/plaintext` (one call per data key) and cannot decrypt them (403); the nation reads them. A shred is
recorded before the key is deleted, after which nobody can read the log."""

from __future__ import annotations

from pathlib import Path

import hvac
import pytest
from sovereign_operator.reconcile.tenant_audit import (
    AdminAudit,
    record_key_shredded,
    record_policy_change,
    record_tenant_events,
)

from sovereign.audit import AuditAccessDenied, read, stream_directory, verify
from sovereign.platform_setup import create_operator_token, install_operator_vault_policy
from tests.audit.samples import AuditVault

BODY = {"metadata": {"name": "fra", "uid": "uid-1"}}
POLICY = {"metadata": {"name": "liaison", "namespace": "tenant-fra", "generation": 3}}


@pytest.fixture
def operator_vault(audit_vault: AuditVault) -> hvac.Client:
    root = audit_vault.root()
    install_operator_vault_policy(root)
    token = create_operator_token(root, ttl="1h")
    return hvac.Client(url=audit_vault.url, token=token, verify=str(audit_vault.ca_cert))


def test_the_operator_writes_what_only_the_nation_reads(
    audit_vault: AuditVault, operator_vault: hvac.Client, tmp_path: Path
) -> None:
    audit = AdminAudit(str(tmp_path), "sovereign-system/sovereign-operator")
    before = audit_vault.transit_calls()
    record_tenant_events(audit, operator_vault, "transit", BODY, "FRA", 1, None, provisioned=True)
    record_tenant_events(audit, operator_vault, "transit", BODY, "FRA", 1, None, provisioned=True)  # no-op
    record_policy_change(audit, operator_vault, "transit", "FRA", POLICY, "created", "v" * 16)
    assert audit_vault.transit_calls() - before == 1  # one datakey/plaintext, never a decrypt
    record_tenant_events(audit, operator_vault, "transit", BODY, "FRA", 2, "requested", provisioned=True)
    record_policy_change(audit, operator_vault, "transit", "FRA", POLICY, "deleted", "w" * 16)
    audit.close("FRA")

    directory = stream_directory(tmp_path, "FRA", "admin")
    records = read(directory, audit_vault.client_for("FRA"), "FRA")
    assert [r.event for r in records] == [
        "tenant-provisioned",
        "policy-changed",
        "key-rotated",
        "policy-changed",
    ]
    assert records[2].details == {
        "tenant": "fra",
        "keyVersion": 2,
        "previousKeyVersion": 1,
        "reason": "requested",
    }
    assert (
        verify(directory, audit_vault.client_for("FRA"), "FRA").data_keys == 2
    )  # new data key after rotation
    with pytest.raises(AuditAccessDenied):  # Vault's 403 on transit/decrypt for the operator's token
        verify(directory, operator_vault, "FRA")
    with pytest.raises(AuditAccessDenied):
        verify(directory, audit_vault.client_for("DEU"), "FRA")


def test_the_shred_is_recorded_before_the_key_goes(
    audit_vault: AuditVault, operator_vault: hvac.Client, tmp_path: Path
) -> None:
    audit = AdminAudit(str(tmp_path), "sovereign-system/sovereign-operator")
    record_key_shredded(audit, operator_vault, "transit", BODY, "DEU", "tenant-deu", 3)
    directory = stream_directory(tmp_path, "DEU", "admin")
    [record] = read(directory, audit_vault.client_for("DEU"), "DEU")
    assert record.event == "key-shredded" and record.details["lastKeyVersion"] == 3


def test_audit_off_writes_nothing(operator_vault: hvac.Client, tmp_path: Path) -> None:
    audit = AdminAudit(None, "sovereign-system/sovereign-operator")
    record_tenant_events(audit, operator_vault, "transit", BODY, "FRA", 1, None, provisioned=True)
    assert not audit.enabled and not list(tmp_path.iterdir())
