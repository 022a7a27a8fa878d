"""The audit tests' sample: its two nations (FRA and DEU, each with a transit key and the nation's Vault
policy in a Vault of the audit tests' own, `audit_vault` in tests/audit/conftest.py) and records to write.

Vault calls are counted from OpenBao's own audit log (one JSON request entry per call), so a test can
assert how many transit requests an operation made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import hvac

from sovereign.audit import AuditActor, AuditDecision, AuditRecord

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
