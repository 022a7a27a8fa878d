"""One reconcile pass for a Tenant: every step in order, then the status — written only if it changed.

The change handlers and the drift timer both run this; it is level-based (it looks at what exists, not at
what changed), so it also finishes whatever a crashed pass left half done.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import kopf

from sovereign.clients.vault import VAULT_ERRORS, VaultSealed, classify_vault_error, is_permission_denied
from sovereign.domain.nations import tenant_namespace, vault_role_name
from sovereign.specs.tenant import TenantSpec
from sovereign_operator import failpoints
from sovereign_operator.builders import vault_mounts_for_tenant
from sovereign_operator.builders.conditions import (
    IDENTITY_READY,
    KEYS_READY,
    NAMESPACE_READY,
    NATION_POLICY_MISSING,
    READY,
    VAULT_ERROR,
    VAULT_LOGIN_FAILED,
    VAULT_SEALED,
    VAULT_UNREACHABLE,
    Condition,
    merge_conditions,
    ready_from_steps,
    status_changes,
)
from sovereign_operator.constants import ROTATE_KEY_ANNOTATION
from sovereign_operator.reconcile.context import OperatorContext
from sovereign_operator.reconcile.tenant_audit import AuditWriteFailed, record_tenant_events
from sovereign_operator.reconcile.tenant_identity import reconcile_gateway_key, reconcile_identity
from sovereign_operator.reconcile.tenant_keys import NationPolicyMissing, reconcile_keys
from sovereign_operator.reconcile.tenant_namespace import reconcile_namespace
from sovereign_operator.reconcile.vault_access import VaultLoginFailed

VAULT_RETRY_SECONDS = 10
DUPLICATE_NATION = "DuplicateNation"
ISSUER_CONFLICT = "IssuerConflict"


@dataclass(frozen=True)
class TenantOutcome:
    status: dict[str, Any]  # the status fields to write (empty: nothing changed)
    retry: kopf.TemporaryError | None = None  # raise it after writing the status


def owner_of_nation(entries: Iterable[tuple[str, str]]) -> str | None:
    """The Tenant that owns a nation: the oldest by creationTimestamp, then by name."""
    ordered = sorted(entries)
    return ordered[0][1] if ordered else None


def reconcile_duplicate(body: kopf.Body, status: dict[str, Any], owner: str) -> TenantOutcome:
    """A later Tenant for a nation that already has one: provision nothing, say so once."""
    spec = TenantSpec.model_validate(dict(body["spec"]))
    message = f"nation {spec.nation} already belongs to Tenant {owner}; this Tenant is not provisioned"
    wanted = [Condition(READY, False, DUPLICATE_NATION, message)]
    changes = _changes(body, status, wanted, {})
    if changes:
        kopf.warn(dict(body), reason=DUPLICATE_NATION, message=message)
    return TenantOutcome(changes)


def issuer_conflict(spec: TenantSpec, keeper: str, issuer: str) -> Condition:
    """Ready=False for a Tenant whose token issuer an older Tenant names (admitted anyway: the webhook was
    down, or both were created at once): it is provisioned as usual but left out of every gateway's
    configuration until it names an issuer of its own; the older Tenant keeps being served. Every pass
    checks again (the drift timer too): once its issuer is its own, or the older Tenant is gone, it is
    Ready."""
    message = (
        f"token issuer {issuer} is already the issuer of Tenant {keeper}; {spec.nation}'s users are not "
        "served until this Tenant names an issuer of its own"
    )
    return Condition(READY, False, ISSUER_CONFLICT, message)


def reconcile_tenant(
    clients: OperatorContext, body: kopf.Body, status: dict[str, Any], conflict: Condition | None = None
) -> TenantOutcome:
    """One pass; `conflict` (issuer_conflict) replaces the Ready its steps would give."""
    spec = TenantSpec.model_validate(dict(body["spec"]))
    requested_at = (body["metadata"].get("annotations") or {}).get(ROTATE_KEY_ANNOTATION)
    fields: dict[str, Any] = {"namespace": tenant_namespace(spec.nation)}
    steps: list[Condition] = []
    retry = None
    with clients.nation_lock(spec.nation):
        if body["metadata"]["uid"] in clients.offboarding or body["metadata"].get("deletionTimestamp"):
            return TenantOutcome({})
        handled = (status.get("rotationRequestHandled"), clients.handled_rotations.get(spec.nation))
        rotation_requested = bool(requested_at) and requested_at not in handled
        steps.append(reconcile_namespace(clients, spec, body))
        try:
            # The platform's Vault, or the nation's own (spec.vault): everything below goes to that one.
            vault = clients.vaults.for_tenant(spec)
            keys = reconcile_keys(clients, vault, spec, body, rotation_requested)
            steps.append(keys.condition)
            fields.update(vaultRole=vault_role_name(spec.nation), keyVersion=keys.key_version)
            fields["lastKeyRotation"] = keys.last_rotation
            if requested_at:
                fields["rotationRequestHandled"] = clients.handled_rotations[spec.nation] = requested_at
            identity_condition, fields["identity"] = reconcile_identity(clients, vault, spec, body)
            fields["federation"] = reconcile_gateway_key(vault, spec, body)
            steps.append(identity_condition)
            provisioned = all(step.status is True for step in steps)
            transit = vault_mounts_for_tenant(spec).transit
            record_tenant_events(
                clients.audit,
                vault,
                transit,
                body,
                spec.nation,
                keys.key_version,
                keys.rotated_because,
                provisioned,
            )
        except AuditWriteFailed as error:
            kopf.warn(dict(body), reason="AuditWriteFailed", message=str(error)[:500])
            retry = error  # the status is still written; the record is made on the retry
        except NationPolicyMissing as error:
            steps.append(Condition(KEYS_READY, False, NATION_POLICY_MISSING, str(error)))
            kopf.warn(dict(body), reason=NATION_POLICY_MISSING, message=str(error))
            retry = kopf.TemporaryError(str(error), delay=VAULT_RETRY_SECONDS)
        except VAULT_ERRORS as error:
            if is_permission_denied(error):
                clients.vaults.forget(spec)  # a nation's Vault token expired or was revoked: log in again
            reason, message = vault_failure(clients.vaults.address_for(spec), error)
            steps.append(Condition(KEYS_READY, False, reason, message))
            kopf.warn(dict(body), reason=reason, message=message)
            retry = kopf.TemporaryError(f"Vault failed: {message}", delay=VAULT_RETRY_SECONDS)
            retry.__cause__ = error  # raised later: the reconcile metrics count it by the Vault error's type
    _fill_unknown(steps)
    failpoints.reach("provision:before-status")
    ready = ready_from_steps(steps) if conflict is None else conflict
    if conflict is not None and _ready_reason(status) != conflict.reason:
        kopf.warn(dict(body), reason=conflict.reason, message=conflict.message)
    return TenantOutcome(_changes(body, status, [ready, *steps], fields), retry)


def _ready_reason(status: dict[str, Any]) -> str | None:
    found = [c for c in status.get("conditions") or [] if c.get("type") == READY]
    return found[0].get("reason") if found else None


def vault_failure(address: str, error: BaseException) -> tuple[str, str]:
    """The KeysReady reason and message for a failed Vault call: VaultSealed or VaultUnreachable (an outage
    that heals by itself once Vault is back: the message says what to do), VaultLoginFailed, else
    VaultError. The message quotes what Vault answered (hvac errors carry the URL and Vault's message,
    never a token); the operator retries every VAULT_RETRY_SECONDS either way."""
    detail = f"{type(error).__name__}: {error}"
    outage = classify_vault_error(error, address)
    if outage is not None:
        reason = VAULT_SEALED if isinstance(outage, VaultSealed) else VAULT_UNREACHABLE
        return reason, f"{outage}; retrying every {VAULT_RETRY_SECONDS} s ({detail})"[:500]
    reason = VAULT_LOGIN_FAILED if isinstance(error, VaultLoginFailed) else VAULT_ERROR
    return reason, f"Vault at {address}: {detail}"[:500]


def _fill_unknown(steps: list[Condition]) -> None:
    reached = {step.type for step in steps}
    for kind in (NAMESPACE_READY, KEYS_READY, IDENTITY_READY):
        if kind not in reached:
            steps.append(Condition(kind, None, "NotReached", "an earlier step did not complete"))


def _changes(
    body: kopf.Body, status: dict[str, Any], conditions: list[Condition], fields: dict[str, Any]
) -> dict[str, Any]:
    generation = body["metadata"].get("generation")
    wanted = {
        **fields,
        "conditions": merge_conditions(status.get("conditions"), conditions, generation),
        "observedGeneration": generation,
    }
    return status_changes(dict(status), wanted)
