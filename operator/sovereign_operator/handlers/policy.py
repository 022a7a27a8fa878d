"""kopf handlers for `tenantpolicies.sovereign.ai`: small functions that hand the work to reconcile/policy.py.

Each pass publishes the policy bundle from every live TenantPolicy (level-based, passes take turns).
- startup (called by the operator's startup handler): one pass, so the bundle exists (base rules only)
  before any TenantPolicy does
- create / update of spec / resume: one pass, an Event `PolicyBundlePublished` when the version changed,
  and `policy-changed` in the nation's admin audit log (not on resume: nothing changed)
- delete (held by kopf's finalizer): one pass without the TenantPolicy; offboarding deletes the namespace,
  which deletes its TenantPolicies, so a nation's rules leave the bundle with it
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from sovereign_operator.constants import GROUP, VERSION
from sovereign_operator.handlers.traced import traced_reconcile
from sovereign_operator.reconcile.context import OperatorContext, operator_context
from sovereign_operator.reconcile.policy import Published, publish_policy_bundle, record_policy_changed

TENANT_POLICIES = (GROUP, VERSION, "tenantpolicies")
PUBLISHED = "PolicyBundlePublished"


@traced_reconcile("TenantPolicy")
def publish_policy_bundle_at_start(context: OperatorContext, logger: logging.Logger) -> None:
    published = publish_policy_bundle(context)
    logger.info(f"policy bundle {published.version} {'published' if published.changed else 'is current'}")


@kopf.on.resume(*TENANT_POLICIES, backoff=5)
@kopf.on.create(*TENANT_POLICIES, backoff=5)
@kopf.on.update(*TENANT_POLICIES, field="spec", backoff=5)
@traced_reconcile("TenantPolicy")
def publish_on_change(memo: kopf.Memo, body: kopf.Body, reason: kopf.Reason, **_: Any) -> None:
    context = operator_context(memo)
    published = publish_policy_bundle(context)
    _announce(body, published)
    if reason in (kopf.Reason.CREATE, kopf.Reason.UPDATE):  # resume: nothing changed
        change = "created" if reason == kopf.Reason.CREATE else "updated"
        record_policy_changed(context, body, change, published.version)


@kopf.on.delete(*TENANT_POLICIES, backoff=5)
@traced_reconcile("TenantPolicy", deleting=True)
def publish_without_deleted(memo: kopf.Memo, body: kopf.Body, **_: Any) -> None:
    context = operator_context(memo)
    published = publish_policy_bundle(context)
    _announce(body, published)
    record_policy_changed(context, body, "deleted", published.version)


def _announce(body: kopf.Body, published: Published) -> None:
    if published.changed:
        kopf.info(dict(body), reason=PUBLISHED, message=f"policy bundle {published.version} published")
