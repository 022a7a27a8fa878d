"""kopf handlers for `tenantpolicies.sovereign.ai`: small functions that hand the work to reconcile/policy.py.

Each pass publishes the policy bundle from every live TenantPolicy (level-based, passes take turns).
- startup (called by the operator's startup handler): one pass, so the bundle exists (base rules only)
  before any TenantPolicy does
- create / update of spec / resume: one pass, an Event `PolicyBundlePublished` when the version changed,
  and `policy-changed` in the nation's admin audit log (not on resume: nothing changed)
- delete (held by kopf's finalizer): one pass without the TenantPolicy; offboarding deletes the namespace,
  which deletes its TenantPolicies, so a nation's rules leave the bundle with it
A pass whose bundle breaks an invariant publishes nothing: a Warning Event `PolicyBundleRefused` on the
TenantPolicy that triggered it says why (the statuses of all of them too). The handler still succeeds: kopf
does not retry it, since the same bundle would be refused again until something changes.
- timer, on refused TenantPolicies only: one pass now and then, so that a refusal whose cause went without a
  TenantPolicy changing (a model or dataset that could not be verified was removed) publishes on its own;
  the same bundle on the same inputs is not verified again (the context keeps the last refusal)
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from sovereign_operator.builders.conditions import READY
from sovereign_operator.builders.policy_bundle import BREAKS_INVARIANT
from sovereign_operator.constants import GROUP, VERSION
from sovereign_operator.handlers.traced import traced_reconcile
from sovereign_operator.reconcile.context import OperatorContext, operator_context
from sovereign_operator.reconcile.policy import Published, publish_policy_bundle, record_policy_changed

TENANT_POLICIES = (GROUP, VERSION, "tenantpolicies")
PUBLISHED = "PolicyBundlePublished"
REFUSED = "PolicyBundleRefused"


@traced_reconcile("TenantPolicy")
def publish_policy_bundle_at_start(context: OperatorContext, logger: logging.Logger) -> None:
    published = publish_policy_bundle(context)
    if published.refused is None:
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


def refused(status: kopf.Status, **_: Any) -> bool:
    """Whether the TenantPolicy's status says the bundle holding it was refused."""
    conditions = status.get("conditions") or []
    return any(c.get("type") == READY and c.get("reason") == BREAKS_INVARIANT for c in conditions)


def retry_refused_bundle(memo: kopf.Memo, **_: Any) -> None:
    publish_policy_bundle(operator_context(memo))  # the statuses say the outcome; no Event every interval


def register_refused_bundle_timer(interval_seconds: float) -> None:
    # kopf docs: /timers — with `when`, the timer runs only for the objects the filter accepts.
    kopf.timer(*TENANT_POLICIES, interval=interval_seconds, initial_delay=interval_seconds, when=refused)(
        traced_reconcile("TenantPolicy")(retry_refused_bundle)
    )


def _announce(body: kopf.Body, published: Published) -> None:
    if published.changed:
        kopf.info(dict(body), reason=PUBLISHED, message=f"policy bundle {published.version} published")
    if published.refused is not None:
        stays = f"bundle {published.version} stays" if published.version else "no bundle is published"
        message = f"policy bundle not published ({stays}): {published.refused.problem}"
        kopf.warn(dict(body), reason=REFUSED, message=message)
