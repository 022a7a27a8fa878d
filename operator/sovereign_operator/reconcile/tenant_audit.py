"""The operator's administrative records in each nation's audit log (`<audit dir>/<nation>/admin/`).

The operator is the only writer of every nation's `admin` stream (it acts only while it holds the Lease, and
AuditLog's flock refuses a second writer). Records are sealed with data keys from
`transit/datakey/plaintext/tenant-<nation>` (one Vault call per data key): the operator can encrypt for a
nation but never calls decrypt, which its Vault policy denies, so it cannot read any nation's log.

Events are found level-based, like everything else the reconciler does: a small plain file next to the log,
`operator-state.json` (`tenantUid`, `keyVersion`: facts the operator's Vault calls already show, nothing
secret), says what was recorded last; a pass that finds the Tenant provisioned for a new uid records
`tenant-provisioned`, one that finds a newer key version records `key-rotated`. The state is written after the
record is durable, so a crash in between records an event twice, never not at all. A failed write raises
AuditWriteFailed (a kopf.TemporaryError): the pass reports it and is retried.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hvac
import kopf

from sovereign.audit import (
    ADMIN_STREAM,
    AuditActor,
    AuditLog,
    AuditRecord,
    nation_audit_directory,
    set_aside,
    stream_directory,
)
from sovereign.clients.vault import VAULT_ERRORS
from sovereign.domain.nations import tenant_namespace

log = logging.getLogger(__name__)

AUDIT_RETRY_SECONDS = 10
STATE_FILE = "operator-state.json"


class AuditWriteFailed(kopf.TemporaryError):
    """An administrative record could not be made durable; the step that caused it is retried."""


def operator_subject(service_account: str) -> str:
    """The operator as Kubernetes names it: `system:serviceaccount:<namespace>:<name>`."""
    namespace, name = service_account.split("/", 1)
    return f"system:serviceaccount:{namespace}:{name}"


class AdminAudit:
    """One AuditLog per nation's `admin` stream, opened on first use and kept open (data keys cached)."""

    def __init__(self, root: str | None, operator_service_account: str) -> None:
        self.root = Path(root) if root else None
        self.subject = operator_subject(operator_service_account)
        self._logs: dict[str, AuditLog] = {}
        self._vaults: dict[str, hvac.Client] = {}
        self._guard = threading.Lock()
        if self.root is None:
            log.info("audit is off: SOVEREIGN_AUDIT_DIR is not set, no administrative event is recorded")

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def directory(self, nation: str) -> Path:
        assert self.root is not None
        return stream_directory(self.root, nation, ADMIN_STREAM)

    def record(
        self,
        nation: str,
        vault: hvac.Client,
        transit_mount: str,
        event: str,
        resources: Sequence[str],
        details: dict[str, str | int | bool | None],
    ) -> int:
        """Append one admin record to the nation's log; returns its seq once durable (0 when audit is off).

        `vault`: the client the operator uses for this nation's keys (the platform's or the nation's own).
        """
        if self.root is None:
            return 0
        record = AuditRecord(
            time=datetime.now(UTC),
            nation=nation,
            kind="admin",
            event=event,
            actor=AuditActor(sub=self.subject, nation=nation),
            resources=list(resources),
            details=details,
        )
        try:
            return self._log(nation, vault, transit_mount).append(record)
        except (*VAULT_ERRORS, OSError, RuntimeError) as error:
            self.close(nation)  # a failed log must be reopened; the next attempt starts clean
            raise AuditWriteFailed(
                f"{nation}'s audit log did not record {event}: {type(error).__name__}: {error}"[:500],
                delay=AUDIT_RETRY_SECONDS,
            ) from error

    def rotate_data_key(self, nation: str) -> None:
        """After the nation's transit key was rotated: wrap new records' data keys with its latest version."""
        with self._guard:
            audit_log = self._logs.get(nation)
        if audit_log is not None:
            audit_log.rotate_data_key()

    def close(self, nation: str) -> None:
        """Close the nation's log (after its key is shredded, nothing more can be written to it)."""
        with self._guard:
            audit_log = self._logs.pop(nation, None)
            self._vaults.pop(nation, None)
        if audit_log is not None:
            try:
                audit_log.close()
            except (OSError, RuntimeError):
                log.warning("closing the audit log of %s failed", nation, exc_info=True)

    def retire(self, nation: str) -> Path | None:
        """Move a shredded nation's audit directory aside (`<nation>.shredded-<UTC time>`), so that the
        nation, if onboarded again with a new key, starts new logs instead of appending to chains that no
        key can read any more. Returns the new place, or None when there was nothing to move."""
        if self.root is None:
            return None
        self.close(nation)
        retired = set_aside(nation_audit_directory(self.root, nation), "shredded")
        if retired is not None:
            log.info("audit directory of %s (its key shredded) moved to %s", nation, retired.name)
        return retired

    def recorded(self, nation: str) -> dict[str, Any]:
        """What was recorded last for the nation (empty when nothing was)."""
        if self.root is None:
            return {}
        try:
            return dict(json.loads((self.directory(nation) / STATE_FILE).read_text()))
        except FileNotFoundError:
            return {}
        except (ValueError, TypeError):
            log.warning("%s of %s is unreadable; starting it afresh", STATE_FILE, nation)
            return {}

    def remember(self, nation: str, **facts: Any) -> None:
        """Replace the state atomically (write, fsync, rename), after the record it describes is durable."""
        directory = self.directory(nation)
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / f"{STATE_FILE}.tmp"
        with temporary.open("w") as file:
            json.dump({**self.recorded(nation), **facts}, file, sort_keys=True)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, directory / STATE_FILE)

    def _log(self, nation: str, vault: hvac.Client, transit_mount: str) -> AuditLog:
        with self._guard:
            self._vaults[nation] = vault  # the latest login of that nation's Vault
            audit_log = self._logs.get(nation)
            if audit_log is None:
                audit_log = AuditLog(
                    self.directory(nation),
                    nation,
                    self._vault_of(nation),
                    transit_mount=transit_mount,
                    data_keys="plaintext",
                )
                self._logs[nation] = audit_log
            return audit_log

    def _vault_of(self, nation: str) -> Callable[[], hvac.Client]:
        return lambda: self._vaults[nation]


def record_tenant_events(
    audit: AdminAudit,
    vault: hvac.Client,
    transit_mount: str,
    body: kopf.Body,
    nation: str,
    key_version: int | None,
    rotated_because: str | None,
    provisioned: bool,
) -> None:
    """tenant-provisioned (first Ready pass of this Tenant's uid), then key-rotated (a newer key version)."""
    if not audit.enabled or key_version is None:
        return
    uid, name = body["metadata"]["uid"], body["metadata"]["name"]
    recorded = audit.recorded(nation)
    resources = [f"tenant/{name}", f"namespace/{tenant_namespace(nation)}"]
    if recorded.get("tenantUid") != uid:
        if not provisioned:
            return  # recorded once the whole provisioning succeeded
        details = {"tenant": name, "tenantUid": uid, "keyVersion": key_version}
        audit.record(nation, vault, transit_mount, "tenant-provisioned", resources, details)
        audit.remember(nation, tenantUid=uid, keyVersion=key_version)
        return
    previous = int(recorded.get("keyVersion") or 0)
    if key_version > previous:
        details = {
            "tenant": name,
            "keyVersion": key_version,
            "previousKeyVersion": previous,
            "reason": rotated_because or "observed",  # observed: rotated by a pass that then failed
        }
        audit.record(nation, vault, transit_mount, "key-rotated", resources, details)
        audit.rotate_data_key(nation)
        audit.remember(nation, keyVersion=key_version)


def record_key_shredded(
    audit: AdminAudit,
    vault: hvac.Client,
    transit_mount: str,
    body: kopf.Body,
    nation: str,
    key_name: str,
    last_version: int | None,
) -> None:
    """Recorded BEFORE the key is deleted: afterwards no data key of the log can be unwrapped, by anyone —
    the log becomes unreadable, which is what crypto-shredding is for. Then the log is closed for good."""
    if not audit.enabled:
        return
    name = body["metadata"]["name"]
    details = {"tenant": name, "tenantUid": body["metadata"]["uid"], "keyName": key_name}
    details["lastKeyVersion"] = last_version
    audit.record(nation, vault, transit_mount, "key-shredded", [f"tenant/{name}", f"key/{key_name}"], details)
    audit.close(nation)


def record_policy_change(
    audit: AdminAudit,
    vault: hvac.Client,
    transit_mount: str,
    nation: str,
    policy: kopf.Body,
    change: str,
    bundle_version: str | None,  # the bundle in force after the change (None: none is published)
) -> None:
    """A nation's TenantPolicy was created, changed or deleted (`change`), in the nation's own log."""
    if not audit.enabled:
        return
    metadata = policy["metadata"]
    details = {
        "policy": metadata["name"],
        "change": change,
        "generation": metadata.get("generation"),
        "bundleVersion": bundle_version,
    }
    resources = [f"tenantpolicy/{metadata.get('namespace', '')}/{metadata['name']}"]
    audit.record(nation, vault, transit_mount, "policy-changed", resources, details)
