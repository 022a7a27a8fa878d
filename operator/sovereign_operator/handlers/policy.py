"""kopf handlers for `tenantpolicies.sovereign.ai`: publish the policy bundle whenever a TenantPolicy changes.

Every pass is level-based: it reads ALL TenantPolicies and Tenants, builds the bundle (builders/policy_bundle,
pure), writes ConfigMap `sovereign-policy-bundle` in the platform namespace only when its version changed, and
brings every TenantPolicy's status up to date (policies, bundleVersion, Accepted/Ready). Passes take turns
(one lock), so the last one always publishes what is live now.

- startup: one pass, so the bundle exists (base rules only) before any TenantPolicy does
- create / update of spec / resume: one pass, an Event `PolicyBundlePublished` when the version changed
- delete (held by kopf's finalizer): one pass without the TenantPolicy; offboarding deletes the namespace,
  which deletes its TenantPolicies, so a nation's rules leave the bundle with it
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import kopf
from kubernetes.dynamic import DynamicClient

from sovereign.clients import kubernetes as kube
from sovereign.clients.vault import VAULT_ERRORS
from sovereign.domain.nations import tenant_namespace
from sovereign.policy.bundle import BUNDLE_CONFIGMAP, VERSION_KEY, PolicyBundle
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.builders.policy_bundle import (
    build_bundle_configmap,
    build_policy_bundle,
    build_tenant_policy_status,
)
from sovereign_operator.builders.vault import vault_mounts_for_tenant
from sovereign_operator.constants import GROUP, VERSION
from sovereign_operator.handlers.traced import traced_reconcile
from sovereign_operator.reconcile.conditions import status_changes
from sovereign_operator.reconcile.tenant_audit import (
    AUDIT_RETRY_SECONDS,
    AuditWriteFailed,
    record_policy_change,
)
from sovereign_operator.resource_validation import tenant_facts_by_nation

TENANT_POLICIES = (GROUP, VERSION, "tenantpolicies")
API_VERSION = f"{GROUP}/{VERSION}"
PUBLISHED = "PolicyBundlePublished"


@dataclass
class PolicyPublisher:
    dynamic: DynamicClient
    namespace: str  # the platform namespace, where the bundle's ConfigMap lives
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Published:
    version: str
    changed: bool  # whether this pass wrote a new version


@kopf.on.startup()
@traced_reconcile("TenantPolicy")
def publish_policy_bundle_at_start(memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    publisher = PolicyPublisher(kube.dynamic_client(kube.load_api_client()), memo.config.platform_namespace)
    memo.policy_publisher = publisher
    published = publish_policy_bundle(publisher)
    logger.info(f"policy bundle {published.version} {'published' if published.changed else 'is current'}")


@kopf.on.resume(*TENANT_POLICIES, backoff=5)
@kopf.on.create(*TENANT_POLICIES, backoff=5)
@kopf.on.update(*TENANT_POLICIES, field="spec", backoff=5)
@traced_reconcile("TenantPolicy")
def publish_on_change(memo: kopf.Memo, body: kopf.Body, reason: kopf.Reason, **_: Any) -> None:
    published = publish_policy_bundle(memo.policy_publisher)
    _announce(body, published)
    if reason in (kopf.Reason.CREATE, kopf.Reason.UPDATE):  # resume: nothing changed
        _audit(memo, body, "created" if reason == kopf.Reason.CREATE else "updated", published.version)


@kopf.on.delete(*TENANT_POLICIES, backoff=5)
@traced_reconcile("TenantPolicy", deleting=True)
def publish_without_deleted(memo: kopf.Memo, body: kopf.Body, **_: Any) -> None:
    published = publish_policy_bundle(memo.policy_publisher)
    _announce(body, published)
    _audit(memo, body, "deleted", published.version)


def _audit(memo: kopf.Memo, body: kopf.Body, change: str, version: str) -> None:
    """policy-changed in the log of the nation whose namespace holds the TenantPolicy.

    Not for a nation being offboarded (its TenantPolicies go with its namespace, after its key was shredded:
    its log can take no more records) nor for a namespace without a Tenant. A failed record retries the
    handler (the bundle pass is idempotent), so no change goes unrecorded.
    """
    clients = getattr(memo, "clients", None)
    if clients is None or not clients.audit.enabled:
        return
    namespace = body["metadata"].get("namespace", "")
    tenants = kube.list_objects(memo.policy_publisher.dynamic, API_VERSION, "Tenant") or []
    owners = [
        t for t in tenants if tenant_namespace(str((t.get("spec") or {}).get("nation", ""))) == namespace
    ]
    if not owners or owners[0]["metadata"].get("deletionTimestamp"):
        return
    spec = TenantSpec.model_validate(owners[0]["spec"])
    try:
        vault = clients.vaults.for_tenant(spec)
    except VAULT_ERRORS as error:
        message = f"no Vault for {spec.nation}'s audit log: {error}"
        raise AuditWriteFailed(message, delay=AUDIT_RETRY_SECONDS) from error
    transit = vault_mounts_for_tenant(spec).transit
    record_policy_change(clients.audit, vault, transit, spec.nation, body, change, version)


def publish_policy_bundle(publisher: PolicyPublisher) -> Published:
    """One level-based pass: bundle from every live TenantPolicy, ConfigMap, then every status."""
    with publisher.lock:
        tenants = kube.list_objects(publisher.dynamic, API_VERSION, "Tenant") or []
        policies = kube.list_objects(publisher.dynamic, API_VERSION, "TenantPolicy") or []
        publication = build_policy_bundle(PolicyBundle.load(), policies, tenant_facts_by_nation(tenants))
        version = publication.bundle.version
        changed = _write_configmap(publisher, publication.bundle)
        for body in policies:
            metadata = body["metadata"]
            verdict = publication.verdicts.get((metadata.get("namespace", ""), metadata["name"]))
            if verdict is None:
                continue  # being deleted
            live_status = dict(body.get("status") or {})
            wanted = build_tenant_policy_status(verdict, version, live_status, metadata.get("generation"))
            changes = status_changes(live_status, wanted)
            if changes:
                kube.merge_patch_status(
                    publisher.dynamic,
                    API_VERSION,
                    "TenantPolicy",
                    metadata["name"],
                    metadata["namespace"],
                    changes,
                )
        return Published(version, changed)


def _write_configmap(publisher: PolicyPublisher, bundle: PolicyBundle) -> bool:
    desired = build_bundle_configmap(bundle, publisher.namespace)
    live = kube.read_object(publisher.dynamic, "v1", "ConfigMap", BUNDLE_CONFIGMAP, publisher.namespace)
    if live is None:
        kube.create_object(publisher.dynamic, desired)
        return True
    if (live.get("data") or {}).get(VERSION_KEY) == bundle.version:
        return False
    kube.replace_object(publisher.dynamic, desired)  # a nation's file that is gone must go from the data too
    return True


def _announce(body: kopf.Body, published: Published) -> None:
    if published.changed:
        kopf.info(dict(body), reason=PUBLISHED, message=f"policy bundle {published.version} published")
