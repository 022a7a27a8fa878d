"""The policy bundle built from every TenantPolicy, and what each TenantPolicy's status says about it.

Pure: TenantPolicy bodies and the nations that have a Tenant in, the bundle, its ConfigMap and the statuses
out. Every policy is checked again here (the rules or the schema may have changed since it was admitted):
one that no longer validates, or that is not in a tenant namespace, is left out of the bundle and its
status says why. A bad policy never reaches the bundle.

A bundle is then verified as a whole (sovereign.policy.verify, on the Tenants, ModelDeployments and
DataSets as listed) before it is published: one that breaks an invariant, or cannot be verified, is
refused, and every TenantPolicy's status says so (`build_refused_policy_status`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import cedarpy

from sovereign.catalogue import matrix_tenants, resources_from_objects
from sovereign.domain.markings import Resource
from sovereign.domain.nations import nation_rule_prefix
from sovereign.policy.bundle import BUNDLE_CONFIGMAP, PolicyBundle
from sovereign.policy.matrix import MatrixTenant
from sovereign.policy.nation_rules import nation_bundle_rules, problems_with_nation_rules
from sovereign.policy.verify import Verification, verify_bundle
from sovereign_operator.builders.conditions import READY, Condition, merge_conditions
from sovereign_operator.constants import operator_labels
from sovereign_operator.resource_validation import NOT_IN_TENANT_NAMESPACE, nation_of_namespace

ACCEPTED = "Accepted"
BREAKS_INVARIANT = "BreaksInvariant"  # the bundle holding this TenantPolicy was refused
MESSAGE_LIMIT = 1000


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
    verdict: PolicyVerdict, version: str | None, live_status: Mapping[str, Any], generation: int | None
) -> dict[str, Any]:
    """The whole status of one TenantPolicy: policy count, published bundle, kstatus conditions."""
    if verdict.accepted:
        accepted = Condition(ACCEPTED, True, verdict.reason, _accepted_message(verdict))
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


@dataclass(frozen=True)
class BundleRefusal:
    """Why a bundle was not published: its verification's first problem, and the policy ids that decided
    the counterexamples found (a TenantPolicy whose rules are among them is blamed)."""

    problem: str
    policy_ids: frozenset[str]

    def blames(self, nation: str | None, name: str) -> bool:
        if nation is None:
            return False
        prefix = f"{nation_rule_prefix(nation)}{name}/"
        return any(policy_id.startswith(prefix) for policy_id in self.policy_ids)


@dataclass(frozen=True)
class VerificationInputs:
    """Who and what a bundle is verified for: every Tenant's users, every model and dataset listed."""

    users: tuple[MatrixTenant, ...]
    resources: tuple[Resource, ...]

    def key(self, bundle: PolicyBundle) -> str:
        """Equal for the same bundle on the same inputs: a refusal that stands needs no verifying again."""
        text = repr((bundle.version, self.users, [r.model_dump(mode="json") for r in self.resources]))
        return hashlib.sha256(text.encode()).hexdigest()


def build_verification_inputs(
    tenants: Iterable[Mapping[str, Any]],
    model_deployments: Iterable[Mapping[str, Any]],
    datasets: Iterable[Mapping[str, Any]],
) -> VerificationInputs:
    tenant_bodies = [dict(tenant) for tenant in tenants]
    resources, _ = resources_from_objects(tenant_bodies, model_deployments, datasets)
    users, _ = matrix_tenants(tenant_bodies)
    return VerificationInputs(tuple(users), tuple(resources.values()))


def verify_publication(
    bundle: PolicyBundle,
    tenants: Iterable[Mapping[str, Any]],
    model_deployments: Iterable[Mapping[str, Any]],
    datasets: Iterable[Mapping[str, Any]],
) -> Verification:
    """The bundle verified for every Tenant's users against every model and dataset the objects describe."""
    inputs = build_verification_inputs(tenants, model_deployments, datasets)
    return verify_bundle(bundle, inputs.users, inputs.resources)


def build_bundle_refusal(verification: Verification) -> BundleRefusal | None:
    """None when the bundle is proven; else why it must not be published."""
    problem = verification.first_problem()
    if problem is None:
        return None
    ids = frozenset(
        policy_id
        for result in verification.results
        for example in result.counterexamples
        for policy_id in example.deciding_policy_ids
    )
    return BundleRefusal(problem[:MESSAGE_LIMIT], ids)


def build_refused_policy_status(
    verdict: PolicyVerdict,
    name: str,
    refusal: BundleRefusal,
    published_version: str | None,
    live_status: Mapping[str, Any],
    generation: int | None,
) -> dict[str, Any]:
    """The status of one TenantPolicy while the bundle holding it is refused: the published bundle (if any)
    stays. Not Ready; Accepted=False too when its own rules decided a counterexample."""
    if not verdict.accepted:  # left out of the bundle for its own reasons: that is what it must fix
        return build_tenant_policy_status(verdict, published_version, live_status, generation)
    stays = f"bundle {published_version} stays" if published_version else "no bundle is published"
    ready = Condition(
        READY, False, BREAKS_INVARIANT, f"the new policy bundle was refused ({stays}): {refusal.problem}"
    )
    if refusal.blames(verdict.nation, name):
        accepted = Condition(ACCEPTED, False, BREAKS_INVARIANT, refusal.problem)
    else:
        accepted = Condition(ACCEPTED, True, verdict.reason, _accepted_message(verdict))
    return {
        "policies": verdict.policies,
        "bundleVersion": published_version,
        "observedGeneration": generation,
        "conditions": merge_conditions(
            live_status.get("conditions"), [accepted, _limited(ready)], generation
        ),
    }


def _accepted_message(verdict: PolicyVerdict) -> str:
    return f"{verdict.policies} policies accepted as rules of {verdict.nation}"


def _limited(condition: Condition) -> Condition:
    return Condition(condition.type, condition.status, condition.reason, condition.message[:MESSAGE_LIMIT])


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
