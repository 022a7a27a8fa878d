"""The policy bundle built from every TenantPolicy, and what each TenantPolicy's status says about it.

Pure: TenantPolicy bodies and the nations that have a Tenant in, the bundle, its ConfigMap and the statuses
out. Every policy is checked again here (the rules or the schema may have changed since it was admitted):
one that no longer validates, or that is not in a tenant namespace, is left out of the bundle and its
status says why. A bad policy never reaches the bundle.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import cedarpy

from sovereign.policy.bundle import BUNDLE_CONFIGMAP, PolicyBundle
from sovereign.policy.nation_rules import nation_bundle_rules, problems_with_nation_rules
from sovereign_operator.builders.conditions import READY, Condition, merge_conditions
from sovereign_operator.constants import operator_labels
from sovereign_operator.resource_validation import NOT_IN_TENANT_NAMESPACE, nation_of_namespace

ACCEPTED = "Accepted"


@dataclass(frozen=True)
class PolicyVerdict:
    """One TenantPolicy as the bundle sees it: its nation, how many policies it holds, what keeps it out."""

    nation: str | None
    policies: int
    problems: tuple[str, ...] = ()
    reason: str = "Valid"

    @property
    def accepted(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class BundlePublication:
    bundle: PolicyBundle
    verdicts: dict[tuple[str, str], PolicyVerdict]  # (namespace, name) → verdict


def build_policy_bundle(
    base: PolicyBundle, tenant_policies: Iterable[Mapping[str, Any]], nations: Iterable[str]
) -> BundlePublication:
    """`base` with the rules of every acceptable TenantPolicy, and a verdict on each of them.

    TenantPolicies being deleted (deletionTimestamp set) are left out and get no verdict.
    """
    nations = list(nations)
    verdicts: dict[tuple[str, str], PolicyVerdict] = {}
    accepted: dict[str, list[tuple[str, str]]] = {}
    for body in tenant_policies:
        metadata = body["metadata"]
        if metadata.get("deletionTimestamp"):
            continue
        namespace, name = metadata.get("namespace", ""), metadata["name"]
        cedar = str((body.get("spec") or {}).get("cedar") or "")
        verdict = _verdict(nation_of_namespace(namespace, nations), namespace, cedar, base.schema)
        verdicts[(namespace, name)] = verdict
        if verdict.accepted and verdict.nation is not None:
            accepted.setdefault(verdict.nation, []).append((name, cedar))
    rules = {nation: nation_bundle_rules(nation, policies) for nation, policies in accepted.items()}
    return BundlePublication(base.with_nation_rules(rules), verdicts)


def build_bundle_configmap(bundle: PolicyBundle, namespace: str) -> dict[str, Any]:
    """The ConfigMap the gateway and the CLI read the bundle from (PolicyBundle.from_configmap_data)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": BUNDLE_CONFIGMAP, "namespace": namespace, "labels": operator_labels()},
        "data": bundle.to_configmap_data(),
    }


def build_tenant_policy_status(
    verdict: PolicyVerdict, version: str, live_status: Mapping[str, Any], generation: int | None
) -> dict[str, Any]:
    """The whole status of one TenantPolicy: policy count, published bundle, kstatus conditions."""
    if verdict.accepted:
        message = f"{verdict.policies} policies accepted as rules of {verdict.nation}"
        accepted = Condition(ACCEPTED, True, verdict.reason, message)
        ready = Condition(READY, True, "Published", f"in the published policy bundle {version}")
    else:
        message = "; ".join(verdict.problems)[:1000]
        accepted = Condition(ACCEPTED, False, verdict.reason, message)
        ready = Condition(READY, False, verdict.reason, f"left out of the policy bundle: {message}"[:1000])
    return {
        "policies": verdict.policies,
        "bundleVersion": version,
        "observedGeneration": generation,
        "conditions": merge_conditions(live_status.get("conditions"), [accepted, ready], generation),
    }


def _verdict(nation: str | None, namespace: str, cedar: str, schema: str) -> PolicyVerdict:
    count = _policy_count(cedar)
    if nation is None:
        problem = f"{NOT_IN_TENANT_NAMESPACE}; {namespace} belongs to no Tenant"
        return PolicyVerdict(None, count, (problem,), "NotInTenantNamespace")
    problems = problems_with_nation_rules(nation, cedar, schema) if cedar.strip() else ["holds no policy"]
    if problems:
        return PolicyVerdict(nation, count, tuple(problems), "InvalidRules")
    return PolicyVerdict(nation, count)


def _policy_count(cedar: str) -> int:
    try:
        parsed = json.loads(cedarpy.policies_to_json_str(cedar))
    except Exception:  # noqa: BLE001 — unparsable Cedar holds no usable policy
        return 0
    return len(parsed.get("staticPolicies") or {}) + len(parsed.get("templates") or {})
