"""A Vault of the audit tests' own (the real OpenBao): transit with the keys of two nations, FRA and DEU,
each with the ACL policy the operator writes for a nation, and a token under each policy.

Vault calls are counted from OpenBao's own audit log (one JSON request entry per call), so a test can
assert how many transit requests an operation made.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import hvac
import pytest
from sovereign_devstack.pki import CertificateAuthority

from sovereign.audit import AuditActor, AuditDecision, AuditLog, AuditRecord
from sovereign.clients.vault import create_transit_key, ensure_secrets_engine, write_acl_policy
from sovereign.domain.nations import tenant_namespace, transit_key_name
from sovereign.platform_setup import nation_policy_for_namespace
from tests.conftest import running_vault

NATIONS = ("FRA", "DEU")
REFERENCE_RECORDS = 1000


@dataclass(frozen=True)
class AuditVault:
    url: str
    root_token: str
    tokens: dict[str, str]  # nation → a token under that nation's Vault policy only
    access_log: Path  # OpenBao's file audit device
    ca_cert: Path  # what its TLS certificate is verified with

    def client_for(self, nation: str) -> hvac.Client:
        return hvac.Client(url=self.url, token=self.tokens[nation], verify=str(self.ca_cert))

    def root(self) -> hvac.Client:
        return hvac.Client(url=self.url, token=self.root_token, verify=str(self.ca_cert))

    def transit_calls(self) -> int:
        """Requests to transit/ the server has received so far."""
        entries = [json.loads(line) for line in self.access_log.read_text().splitlines() if line]
        requests = [entry["request"] for entry in entries if entry["type"] == "request"]
        return sum(request["path"].startswith("transit/") for request in requests)


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


def make_record(index: int, nation: str = "FRA", kind: str = "decision") -> AuditRecord:
    actor = AuditActor(sub=f"analyst-{index % 7}", nation="DEU" if index % 3 == 0 else nation)
    if kind == "decision":
        return AuditRecord(
            time=datetime.now(UTC),
            nation=nation,
            kind="decision",
            event="policy-decision",
            actor=actor,
            resources=[f"{nation.lower()}/analyst-model", f"dataset-{index}"],
            decision=AuditDecision(
                outcome="allowed" if index % 2 else "denied",
                policy_ids=["base/clearance", f"{nation.lower()}/rules/limit-{index % 5}"],
                bundle_version="b" * 16,
            ),
        )
    return AuditRecord(
        time=datetime.now(UTC),
        nation=nation,
        kind="admin",
        event="key-rotated",
        actor=AuditActor(sub="system:serviceaccount:sovereign-system:sovereign-operator", nation=nation),
        resources=[f"tenant-{nation.lower()}"],
        details={"keyVersion": index, "reason": "period"},
    )


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
