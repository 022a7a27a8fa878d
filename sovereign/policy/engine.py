"""`decide(principal, action, resources)`: the Cedar decision, fail-closed, with the answer's marking.

Every request and its entities are validated against the schema generated from the domain model; any
error (invalid input, an unknown resource, a Cedar error, a validation failure) is a deny with a reason.
Decisions are cached by the principal's attributes, the action, the resources and the bundle version.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cedarpy
from pydantic import ValidationError

from sovereign.domain.markings import AnswerMarking, Principal, Resource, answer_marking
from sovereign.policy.schema import (
    POLICY_DIR,
    action_uid,
    principal_entity,
    principal_uid,
    render_schema,
    resource_entity,
    resource_uid,
)

CACHE_SIZE = 100_000


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reasons: list[str]
    deciding_policy_ids: list[str]
    marking: AnswerMarking | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "reasons": self.reasons,
            "decidingPolicyIds": self.deciding_policy_ids,
            "marking": self.marking.model_dump(mode="json", by_alias=True) if self.marking else None,
        }


def deny(reason: str, deciding: Sequence[str] = ()) -> Decision:
    return Decision(allowed=False, reasons=[reason], deciding_policy_ids=sorted(set(deciding)))


@dataclass(frozen=True)
class PolicyBundle:
    """Schema and policies; the version is a hash of both, so a new bundle never reuses cached decisions."""

    schema: str
    policies: str
    version: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha256(self.schema.encode() + b"\0" + self.policies.encode()).hexdigest()
        object.__setattr__(self, "version", digest[:16])

    @classmethod
    def load(cls, directory: Path = POLICY_DIR) -> PolicyBundle:
        """The base policies (every *.cedar of the folder) with the schema generated from the domain model."""
        policies = "\n".join(p.read_text() for p in sorted(directory.glob("*.cedar")))
        return cls(schema=render_schema(), policies=policies)

    def validate(self) -> list[str]:
        result = cedarpy.validate_policies(self.policies, self.schema)
        return [] if result.validation_passed else [str(e) for e in result.errors]


class PolicyEngine:
    """Decides with one bundle; `catalogue` resolves resources given by name (unknown names are denied)."""

    def __init__(self, bundle: PolicyBundle, catalogue: Mapping[str, Resource] | None = None) -> None:
        problems = bundle.validate()
        if problems:
            raise ValueError(f"policy bundle does not validate against the schema: {problems}")
        self.bundle = bundle
        self.catalogue = dict(catalogue or {})
        self._policies = cedarpy.PolicySet.from_str(bundle.policies)
        self._schema = cedarpy.Schema.from_json_str(bundle.schema)
        self._ids = _annotation_ids(bundle.policies)
        self._cache: OrderedDict[tuple[Any, ...], Decision] = OrderedDict()

    def decide(
        self,
        principal: Principal | Mapping[str, Any],
        action: str,
        resources: Sequence[Resource | Mapping[str, Any] | str],
    ) -> Decision:
        try:
            user = principal if isinstance(principal, Principal) else Principal.model_validate(principal)
        except ValidationError as error:
            return deny(f"invalid principal: {_first_error(error)}")
        if not resources:
            return deny("no resource in the request")
        resolved: list[Resource] = []
        for item in resources:
            if isinstance(item, str):
                if item not in self.catalogue:
                    return deny(f"unknown resource {item!r}")
                resolved.append(self.catalogue[item])
                continue
            try:
                resolved.append(item if isinstance(item, Resource) else Resource.model_validate(item))
            except ValidationError as error:
                return deny(f"invalid resource: {_first_error(error)}")
        seen: dict[tuple[str, str], Resource] = {}
        for resource in resolved:
            if seen.setdefault((resource.kind, resource.name), resource) != resource:
                return deny(f"conflicting markings for {resource.kind.value} {resource.name!r}")
        key = (user.model_dump_json(), action, *(r.model_dump_json() for r in resolved), self.bundle.version)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        decision = self._decide(user, action, resolved)
        self._cache[key] = decision
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return decision

    def _decide(self, user: Principal, action: str, resources: list[Resource]) -> Decision:
        try:
            entities_json = [
                principal_entity(user),
                *{(r.kind, r.name): resource_entity(r) for r in resources}.values(),
            ]
            requests = [
                {
                    "principal": principal_uid(user),
                    "action": action_uid(action),
                    "resource": resource_uid(r),
                    "context": {},
                }
                for r in resources
            ]
            results = cedarpy.is_authorized_batch(requests, self._policies, entities_json, self._schema)
        except Exception as error:  # noqa: BLE001 — any engine failure is a deny
            return deny(f"policy engine error: {error}")
        reasons: list[str] = []
        allow_ids: set[str] = set()
        deny_ids: set[str] = set()
        for resource, result in zip(resources, results, strict=True):
            errors = [str(e) for e in result.diagnostics.errors]
            ids = [self._policy_id(p) for p in result.diagnostics.reasons]
            if errors:
                return deny(f"{resource.name}: policy evaluation error: {errors[0]}")
            if result.decision == cedarpy.Decision.Allow:
                allow_ids.update(ids)
                continue
            deny_ids.update(ids)
            if ids:
                reasons.append(f"{resource.name}: forbidden by {', '.join(sorted(ids))}")
            else:
                reasons.append(f"{resource.name}: no policy permits it ({explain(user, resource)})")
        if reasons:
            return Decision(False, reasons, sorted(deny_ids))
        marking = answer_marking([r.markings for r in resources])
        return Decision(True, [f"permitted for {len(resources)} resource(s)"], sorted(allow_ids), marking)

    def _policy_id(self, policy: str) -> str:
        return self._ids.get(policy, policy)


def explain(user: Principal, resource: Resource) -> str:
    """Which clauses of the rule the request misses, for people; the decision itself is Cedar's."""
    m = resource.markings
    missing = []
    if (
        user.nationality != m.owner
        and user.nationality not in m.releasable_to
        and "NATO" not in m.releasable_to
    ):
        missing.append(f"not releasable to {user.nationality}")
    if user.clearance < m.classification:
        missing.append(f"clearance {user.clearance} below {m.classification}")
    if not set(m.compartments) <= set(user.compartments):
        missing.append(f"missing compartments {sorted(set(m.compartments) - set(user.compartments))}")
    return "; ".join(missing) or "no matching permit"


def _annotation_ids(policies: str) -> dict[str, str]:
    """Cedar's generated policy ids (policy0, …) → their @id annotations."""
    static = json.loads(cedarpy.policies_to_json_str(policies)).get("staticPolicies", {})
    return {pid: body.get("annotations", {}).get("id", pid) for pid, body in static.items()}


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}"


_default: PolicyEngine | None = None


def default_engine() -> PolicyEngine:
    global _default
    if _default is None:
        _default = PolicyEngine(PolicyBundle.load())
    return _default


def decide(
    principal: Principal | Mapping[str, Any],
    action: str,
    resources: Sequence[Resource | Mapping[str, Any] | str],
) -> Decision:
    """Decide with the base bundle in policies/cedar; fail-closed."""
    try:
        engine = default_engine()
    except Exception as error:  # noqa: BLE001
        return deny(f"policy bundle unavailable: {error}")
    try:
        return engine.decide(principal, action, resources)
    except Exception as error:  # noqa: BLE001 — whatever goes wrong, never allow
        return deny(f"policy engine error: {error}")
