"""A nation's keys in Vault: transit key, KV v2 marker and Kubernetes auth role; and rotation.

The role gives the nation the one templated policy sovereign-nation, written at platform setup: the operator
writes no policy, and only reads that one to say when platform setup was not done (NationPolicyMissing).

Every step reads first and writes only what is missing or drifted, so re-running after a crash at any point
converges. Vault errors propagate; the handler reports them in status and retries.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import hvac
import kopf

from sovereign.clients import vault as vault_client
from sovereign.domain.nations import NATION_VAULT_POLICY, transit_key_name
from sovereign.specs.tenant import TenantSpec
from sovereign_operator import failpoints
from sovereign_operator.builders import build_vault_role_for_tenant, vault_mounts_for_tenant
from sovereign_operator.builders.conditions import KEYS_READY, Condition
from sovereign_operator.constants import operator_kv_record
from sovereign_operator.reconcile.context import OperatorContext
from sovereign_operator.tenant_validation import rotation_period_seconds

KEY_TYPE = "aes256-gcm96"
# Role fields Vault reads back as seconds although they are written as duration strings.
_DURATION_FIELDS = {"ttl", "max_ttl", "period", "token_ttl", "token_max_ttl", "token_period"}


@dataclass(frozen=True)
class KeyState:
    condition: Condition
    key_version: int | None = None
    last_rotation: str | None = None  # when the latest key version was made (RFC 3339)
    rotated_because: str | None = None  # this pass rotated the key: "requested" or "period"


class NationPolicyMissing(RuntimeError):
    """The Vault holding a nation's keys has no policy sovereign-nation: platform setup was not run there."""


def marker_path(nation: str) -> str:
    return operator_kv_record(nation, "tenant")


def reconcile_keys(
    clients: OperatorContext,
    vault: hvac.Client,
    spec: TenantSpec,
    body: kopf.Body,
    rotation_requested: bool,
) -> KeyState:
    """`vault`: the Vault holding this nation's keys (the platform's or its own, see vault_access.py).

    Raises NationPolicyMissing before making anything while that Vault lacks sovereign-nation: a role
    naming an absent policy would give the nation's token nothing.
    """
    mounts, nation = vault_mounts_for_tenant(spec), spec.nation
    key_name = transit_key_name(nation)
    if vault_client.read_acl_policy(vault, NATION_VAULT_POLICY) is None:
        raise NationPolicyMissing(
            f"Vault has no ACL policy {NATION_VAULT_POLICY}, which every nation's token carries: the Vault "
            "admin writes it at platform setup (sovereign.platform_setup.prepare_vault, run by `sovereign "
            "up`; prepare_nation_vault on a nation's own Vault). The operator never writes policies."
        )

    key = vault_client.read_transit_key(vault, mounts.transit, key_name)
    if key is None:
        vault_client.create_transit_key(vault, mounts.transit, key_name, KEY_TYPE)
        kopf.info(dict(body), reason="KeyCreated", message=f"Vault transit key {key_name} ({KEY_TYPE})")
        key = _read_key(vault, mounts.transit, key_name)
    failpoints.reach("provision:after-transit-key")
    if key.get("deletion_allowed"):
        # A living nation's key must not be deletable (only offboarding allows it, just before shredding).
        vault_client.set_transit_key_deletion_allowed(vault, mounts.transit, key_name, False)

    role = build_vault_role_for_tenant(spec)
    live_role = vault_client.read_kubernetes_role(vault, role.mount, role.name)
    if live_role is None or role_drifted(live_role, role.body):
        vault_client.write_kubernetes_role(vault, role.mount, role.name, role.body)
        kopf.info(dict(body), reason="RoleWritten", message=f"Vault Kubernetes auth role {role.name}")
    failpoints.reach("provision:after-vault-role")

    if vault_client.read_kv(vault, mounts.kv, marker_path(nation)) is None:
        marker = {"nation": nation, "managedBy": "sovereign-operator"}
        # A check-and-set lost to a concurrent writer means the marker is there.
        with contextlib.suppress(hvac.exceptions.InvalidRequest):
            vault_client.write_kv(vault, mounts.kv, marker_path(nation), marker, only_if_absent=True)

    before = int(key["latest_version"])
    key = rotate_if_due(vault, spec, body, key, rotation_requested)
    version = int(key["latest_version"])
    rotated_because = None if version == before else ("requested" if rotation_requested else "period")
    created = key.get("keys", {}).get(str(version))
    message = f"transit key {key_name} v{version}, role {role.name} with policy {NATION_VAULT_POLICY}"
    return KeyState(
        condition=Condition(KEYS_READY, True, "Provisioned", message),
        key_version=version,
        last_rotation=_rfc3339(created) if isinstance(created, int | float) else None,
        rotated_because=rotated_because,
    )


def rotate_if_due(
    vault: hvac.Client, spec: TenantSpec, body: kopf.Body, key: dict[str, Any], requested: bool
) -> dict[str, Any]:
    """Rotate on request, or when the latest version is older than spec.keyRotation.period."""
    mounts, key_name = vault_mounts_for_tenant(spec), transit_key_name(spec.nation)
    period = rotation_period_seconds(spec.key_rotation.period)
    created = key.get("keys", {}).get(str(key["latest_version"]))
    due = period is not None and isinstance(created, int | float) and time.time() - created >= period
    if not (requested or due):
        return key
    vault_client.rotate_transit_key(vault, mounts.transit, key_name)
    rotated = _read_key(vault, mounts.transit, key_name)
    why = "on request" if requested else f"after its period {spec.key_rotation.period}"
    kopf.info(
        dict(body),
        reason="KeyRotated",
        message=f"Vault transit key {key_name} rotated {why}: now version {rotated['latest_version']}",
    )
    return rotated


def role_drifted(live: dict[str, Any], desired: dict[str, str]) -> bool:
    """Compare the role body the operator writes (fields as Vault names them, lists as comma strings) with
    the role read back (lists as lists, durations in seconds)."""
    for field, wanted in desired.items():
        have = live.get(field)
        if field in _DURATION_FIELDS:
            if have is None or float(have) != float(rotation_period_seconds(wanted) or 0):
                return True
        elif isinstance(have, list):
            if [str(v) for v in have] != [v.strip() for v in wanted.split(",")]:
                return True
        elif str(have) != wanted:
            return True
    return False


def _read_key(vault: hvac.Client, mount: str, name: str) -> dict[str, Any]:
    key = vault_client.read_transit_key(vault, mount, name)
    if key is None:
        raise kopf.TemporaryError(f"transit key {name} vanished while it was being provisioned", delay=5)
    return key


def _rfc3339(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
