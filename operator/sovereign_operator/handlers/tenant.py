"""kopf handlers for `tenants.sovereign.ai`: small functions that hand the work to `reconcile/`.

- create / update of spec / resume, and the drift timer: one level-based reconcile pass (reconcile/tenant.py)
- the ROTATE_KEY_ANNOTATION changes: the same pass, which rotates the key first
- delete: offboarding, held by the OFFBOARDING_FINALIZER until complete
Each handler reads the operator's context from memo (`operator_context`); the timer is registered by
`register_drift_timer` because its interval comes from the configuration read at start.
"""

from __future__ import annotations

from typing import Any

import kopf

from sovereign.clients.vault import VAULT_ERRORS, is_permission_denied
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.constants import GROUP, ROTATE_KEY_ANNOTATION, VERSION
from sovereign_operator.handlers.traced import traced_reconcile
from sovereign_operator.reconcile.context import OperatorContext, operator_context
from sovereign_operator.reconcile.offboarding import offboard
from sovereign_operator.reconcile.tenant import (
    issuer_conflict,
    owner_of_nation,
    reconcile_duplicate,
    reconcile_tenant,
    vault_failure,
)
from sovereign_operator.tenant_validation import intended_issuer

TENANTS = (GROUP, VERSION, "tenants")
VAULT_RETRY_SECONDS = 10


@kopf.index(*TENANTS)
def tenants_by_nation(name: str, spec: kopf.Spec, meta: kopf.Meta, **_: Any) -> dict[str, tuple[str, str]]:
    """nation → (creationTimestamp, Tenant name) of every Tenant; the oldest owns the nation."""
    return {str(spec.get("nation")): (str(meta.get("creationTimestamp", "")), name)}


@kopf.index(*TENANTS)
def tenants_by_issuer(
    name: str, spec: kopf.Spec, meta: kopf.Meta, **_: Any
) -> dict[str, tuple[str, str, str]]:
    """token issuer → (creationTimestamp, Tenant name, nation) of every Tenant; the oldest keeps it."""
    return {
        intended_issuer(dict(spec)): (str(meta.get("creationTimestamp", "")), name, str(spec.get("nation")))
    }


def _owner(tenants_by_nation: kopf.Index, spec: kopf.Spec) -> str | None:
    return owner_of_nation(tenants_by_nation.get(str(spec.get("nation")), []))


def _issuer_keeper(tenants_by_nation: kopf.Index, tenants_by_issuer: kopf.Index, issuer: str) -> str | None:
    """The Tenant that keeps a token issuer: the oldest naming it, among the Tenants that own their nation
    (a duplicate of a nation keeps nothing)."""
    claimants = [
        (created, name)
        for created, name, nation in tenants_by_issuer.get(issuer, [])
        if owner_of_nation(tenants_by_nation.get(nation, [])) == name
    ]
    return owner_of_nation(claimants)


def _reconcile(
    context: OperatorContext,
    body: kopf.Body,
    status: kopf.Status,
    patch: kopf.Patch,
    tenants_by_nation: kopf.Index,
    tenants_by_issuer: kopf.Index,
) -> None:
    spec, name = body["spec"], body["metadata"]["name"]
    owner = _owner(tenants_by_nation, spec)
    if owner is not None and owner != name:
        outcome = reconcile_duplicate(body, dict(status), owner)
    else:
        issuer = intended_issuer(dict(spec))
        keeper = _issuer_keeper(tenants_by_nation, tenants_by_issuer, issuer)
        conflict = None
        if keeper is not None and keeper != name:
            conflict = issuer_conflict(TenantSpec.model_validate(dict(spec)), keeper, issuer)
        outcome = reconcile_tenant(context, body, dict(status), conflict)
    patch.status.update(outcome.status)  # empty when nothing changed: kopf then writes nothing
    if outcome.retry is not None:
        raise outcome.retry


# backoff: retry a failed pass after 5 s rather than kopf's default 60 s (kopf docs: /errors).
@kopf.on.resume(*TENANTS, backoff=5)
@kopf.on.create(*TENANTS, backoff=5)
@kopf.on.update(*TENANTS, field="spec", backoff=5)
@traced_reconcile("Tenant")
def reconcile_on_change(
    memo: kopf.Memo,
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    patch: kopf.Patch,
    tenants_by_nation: kopf.Index,
    tenants_by_issuer: kopf.Index,
    **_: Any,
) -> None:
    _reconcile(operator_context(memo), body, status, patch, tenants_by_nation, tenants_by_issuer)


@kopf.on.field(*TENANTS, field=("metadata", "annotations", ROTATE_KEY_ANNOTATION), backoff=5)
@traced_reconcile("Tenant")
def rotate_on_request(
    memo: kopf.Memo,
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    patch: kopf.Patch,
    tenants_by_nation: kopf.Index,
    tenants_by_issuer: kopf.Index,
    new: str | None,
    **_: Any,
) -> None:
    if new:  # removing the annotation asks for nothing
        _reconcile(operator_context(memo), body, status, patch, tenants_by_nation, tenants_by_issuer)


def reconcile_periodically(
    memo: kopf.Memo,
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    patch: kopf.Patch,
    tenants_by_nation: kopf.Index,
    tenants_by_issuer: kopf.Index,
    **_: Any,
) -> None:
    """Level-based drift repair and period-based key rotation; writes nothing when nothing drifted."""
    if meta.get("deletionTimestamp"):
        return  # offboarding owns it now
    _reconcile(operator_context(memo), body, status, patch, tenants_by_nation, tenants_by_issuer)


def register_drift_timer(interval_seconds: float) -> None:
    # kopf docs: /timers — a timer runs every `interval` seconds for each existing object.
    kopf.timer(*TENANTS, interval=interval_seconds, initial_delay=interval_seconds)(
        traced_reconcile("Tenant")(reconcile_periodically)
    )


@kopf.on.delete(*TENANTS, backoff=5)
@traced_reconcile("Tenant", deleting=True)
def offboard_tenant(
    memo: kopf.Memo, body: kopf.Body, spec: kopf.Spec, tenants_by_nation: kopf.Index, **_: Any
) -> dict[str, Any] | None:
    owner = _owner(tenants_by_nation, spec)
    if owner is not None and owner != body["metadata"]["name"]:
        kopf.info(dict(body), reason="Released", message=f"duplicate of Tenant {owner}: nothing to offboard")
        return None
    context = operator_context(memo)
    tenant_spec = TenantSpec.model_validate(dict(spec))
    try:
        with context.nation_lock(tenant_spec.nation):
            context.offboarding.add(body["metadata"]["uid"])
            return offboard(context, tenant_spec, body)
    except VAULT_ERRORS as error:
        if is_permission_denied(error):
            context.vaults.forget(tenant_spec)  # a nation's Vault token expired or was revoked: log in again
        reason, message = vault_failure(context.vaults.address_for(tenant_spec), error)
        kopf.warn(dict(body), reason=reason, message=f"offboarding waits for Vault: {message}"[:500])
        raise kopf.TemporaryError(
            f"Vault failed during offboarding: {error}", delay=VAULT_RETRY_SECONDS
        ) from error
