"""The policy bundle pass: every live TenantPolicy → the published bundle, and each TenantPolicy's status.

Every pass is level-based: it reads ALL TenantPolicies and Tenants, builds the bundle (builders/policy_bundle,
pure), writes ConfigMap `sovereign-policy-bundle` in the platform namespace only when its version changed, and
brings every TenantPolicy's status up to date (policies, bundleVersion, Accepted/Ready). Passes take turns
(the context's policy lock), so the last one always publishes what is live now.

A new version is verified first (every invariant, for every Tenant's users against every ModelDeployment and
DataSet listed; milliseconds on a small catalogue, seconds on a big one, so here in the handler's thread and
never in the admission webhook). A bundle that breaks one is not written: the published one stays (or none,
and gateways deny), the statuses say why, and the pass does not fail, so nothing retries it in a loop; the
next pass (a TenantPolicy changed, the operator restarted with a repaired base) verifies and publishes again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import kopf

from sovereign.clients import kubernetes as kube
from sovereign.clients.vault import VAULT_ERRORS
from sovereign.domain.nations import tenant_namespace
from sovereign.policy.bundle import BUNDLE_CONFIGMAP, VERSION_KEY, PolicyBundle
from sovereign.policy.verify import verify_bundle
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.builders.conditions import status_changes
from sovereign_operator.builders.policy_bundle import (
    BundleRefusal,
    build_bundle_configmap,
    build_bundle_refusal,
    build_policy_bundle,
    build_refused_policy_status,
    build_tenant_policy_status,
    build_verification_inputs,
)
from sovereign_operator.builders.vault import vault_mounts_for_tenant
from sovereign_operator.constants import GROUP, VERSION
from sovereign_operator.reconcile.context import OperatorContext
from sovereign_operator.reconcile.tenant_audit import (
    AUDIT_RETRY_SECONDS,
    AuditWriteFailed,
    record_policy_change,
)
from sovereign_operator.resource_validation import tenant_facts_by_nation

API_VERSION = f"{GROUP}/{VERSION}"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    version: str | None  # the bundle in force: None when none was ever published (gateways deny)
    changed: bool  # whether this pass wrote a new version
    refused: BundleRefusal | None = None  # why this pass's bundle was not published


def publish_policy_bundle(context: OperatorContext) -> Published:
    """One level-based pass: bundle from every live TenantPolicy, verified, ConfigMap, then every status."""
    dynamic = context.dynamic
    with context.policy_lock:
        tenants = kube.list_objects(dynamic, API_VERSION, "Tenant") or []
        policies = kube.list_objects(dynamic, API_VERSION, "TenantPolicy") or []
        publication = build_policy_bundle(PolicyBundle.load(), policies, tenant_facts_by_nation(tenants))
        bundle = publication.bundle
        live = _live_version(context)
        refusal = None if live == bundle.version else _refusal(context, bundle, live, tenants)
        if refusal is None:
            published = Published(bundle.version, _write_configmap(context, bundle))
        else:
            published = Published(live, False, refusal)
        for body in policies:
            metadata = body["metadata"]
            verdict = publication.verdicts.get((metadata.get("namespace", ""), metadata["name"]))
            if verdict is None:
                continue  # being deleted
            live_status = dict(body.get("status") or {})
            generation = metadata.get("generation")
            if refusal is None:
                wanted = build_tenant_policy_status(verdict, bundle.version, live_status, generation)
            else:
                wanted = build_refused_policy_status(
                    verdict, metadata["name"], refusal, live, live_status, generation
                )
            changes = status_changes(live_status, wanted)
            if changes:
                kube.merge_patch_status(
                    dynamic, API_VERSION, "TenantPolicy", metadata["name"], metadata["namespace"], changes
                )
        return published


def record_policy_changed(
    context: OperatorContext, body: kopf.Body, change: str, version: str | None
) -> None:
    """policy-changed in the log of the nation whose namespace holds the TenantPolicy.

    Not for a nation being offboarded (its TenantPolicies go with its namespace, after its key was shredded:
    its log can take no more records) nor for a namespace without a Tenant. A failed record retries the
    handler (the bundle pass is idempotent), so no change goes unrecorded.
    """
    if not context.audit.enabled:
        return
    namespace = body["metadata"].get("namespace", "")
    tenants = kube.list_objects(context.dynamic, API_VERSION, "Tenant") or []
    owners = [
        t for t in tenants if tenant_namespace(str((t.get("spec") or {}).get("nation", ""))) == namespace
    ]
    if not owners or owners[0]["metadata"].get("deletionTimestamp"):
        return
    spec = TenantSpec.model_validate(owners[0]["spec"])
    try:
        vault = context.vaults.for_tenant(spec)
    except VAULT_ERRORS as error:
        message = f"no Vault for {spec.nation}'s audit log: {error}"
        raise AuditWriteFailed(message, delay=AUDIT_RETRY_SECONDS) from error
    transit = vault_mounts_for_tenant(spec).transit
    record_policy_change(context.audit, vault, transit, spec.nation, body, change, version)


def _live_version(context: OperatorContext) -> str | None:
    namespace = context.config.platform_namespace
    live = kube.read_object(context.dynamic, "v1", "ConfigMap", BUNDLE_CONFIGMAP, namespace)
    return None if live is None else (live.get("data") or {}).get(VERSION_KEY)


def _refusal(
    context: OperatorContext, bundle: PolicyBundle, live: str | None, tenants: list[dict[str, Any]]
) -> BundleRefusal | None:
    """Verify a bundle about to be published (on the Tenants of this pass, the resources listed now)."""
    models = kube.list_objects(context.dynamic, API_VERSION, "ModelDeployment") or []
    datasets = kube.list_objects(context.dynamic, API_VERSION, "DataSet") or []
    inputs = build_verification_inputs(tenants, models, datasets)
    key = inputs.key(bundle)
    if context.refused_bundle is not None and context.refused_bundle[0] == key:
        return context.refused_bundle[1]
    refusal = build_bundle_refusal(verify_bundle(bundle, inputs.users, inputs.resources))
    context.refused_bundle = None if refusal is None else (key, refusal)
    if refusal is not None:  # once per refused bundle and inputs, with policy ids only (no markings, users)
        log.warning(
            "policy bundle %s refused, %s: it breaks an invariant or cannot be verified "
            "(deciding policies of the counterexamples: %s)",
            bundle.version,
            f"bundle {live} stays published" if live else "none is published",
            ", ".join(sorted(refusal.policy_ids)) or "none",
        )
    return refusal


def _write_configmap(context: OperatorContext, bundle: PolicyBundle) -> bool:
    namespace = context.config.platform_namespace  # where the bundle's ConfigMap lives
    desired = build_bundle_configmap(bundle, namespace)
    live = kube.read_object(context.dynamic, "v1", "ConfigMap", BUNDLE_CONFIGMAP, namespace)
    if live is None:
        kube.create_object(context.dynamic, desired)
        return True
    if (live.get("data") or {}).get(VERSION_KEY) == bundle.version:
        return False
    kube.replace_object(context.dynamic, desired)  # a nation's file that is gone must go from the data too
    return True
