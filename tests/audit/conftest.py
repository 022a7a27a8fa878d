"""A Vault of the audit tests' own (the real OpenBao): transit with the keys of two nations, FRA and DEU,
each with the ACL policy the operator writes for a nation, and a token under each policy
(tests/audit/samples.py); FRA's reference log of 1,000 records, and copies of it to tamper with."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sovereign_devstack.pki import CertificateAuthority

from sovereign.audit import AuditLog
from sovereign.clients.vault import create_transit_key, ensure_secrets_engine, write_acl_policy
from sovereign.domain.nations import tenant_namespace, transit_key_name
from sovereign.platform_setup import nation_policy_for_namespace
from tests.audit.samples import NATIONS, REFERENCE_RECORDS, AuditVault, make_record
from tests.servers import running_vault


@pytest.fixture(scope="session")
def audit_vault(
    tmp_path_factory: pytest.TempPathFactory, devstack_ca: CertificateAuthority
) -> Iterator[AuditVault]:
    state_dir = tmp_path_factory.mktemp("audit-vault")
    with running_vault(state_dir, devstack_ca) as server:
        root = server.client()
        ensure_secrets_engine(root, "transit", "transit")
        tokens = {}
        for nation in NATIONS:
            create_transit_key(root, "transit", transit_key_name(nation), "aes256-gcm96")
            # sovereign-nation's rules for this nation: a root-made token has no Kubernetes alias to fill
            # in the template, so its namespace is written in.
            policy = f"nation-{tenant_namespace(nation)}"
            write_acl_policy(root, policy, nation_policy_for_namespace(tenant_namespace(nation)))
            created = root.auth.token.create(policies=[policy], ttl="2h")
            tokens[nation] = created["auth"]["client_token"]
        yield AuditVault(server.url, server.root_token, tokens, server.server.audit_log, server.ca_cert)


@pytest.fixture(scope="session")
def reference_log(audit_vault: AuditVault, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FRA's log with 1,000 records in one segment, written once; tests tamper with copies of it."""
    directory = tmp_path_factory.mktemp("reference") / "fra"
    with AuditLog(directory, "FRA", audit_vault.client_for("FRA")) as log:
        log.append_many([make_record(index) for index in range(REFERENCE_RECORDS)])
    return directory


@pytest.fixture
def copy_of_reference(reference_log: Path, tmp_path: Path) -> Callable[[], Path]:
    def copy() -> Path:
        target = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(reference_log, target)
        return target

    return copy
