"""`decide(principal, action, resources)`: the Cedar decision, fail-closed, with the answer's marking.

Every request and its entities are validated against the schema generated from the domain model; any
error (invalid input, an unknown resource, a Cedar error, a validation failure) is a deny with a reason.
Decisions are cached by the principal's attributes, the action, the resources and the bundle version.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cedarpy
from pydantic import ValidationError

from sovereign.domain.markings import AnswerMarking, Principal, Resource, answer_marking
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.schema import (
    action_uid,
    principal_entity,
    principal_uid,
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


class PolicyEngine:
    """Decides with one bundle; `catalogue` resolves resources given by name (unknown names are denied).

    A request is evaluated against the base policies plus the rules of the nations it involves (the user's,
    its issuer's and every resource owner's), never against the whole bundle.

    Staleness: with `stale_after` set, whoever loads bundles must call `confirm_current(version)` at least
    that often; a bundle not confirmed in time, or superseded by a newer version, denies every request.
    """

    def __init__(
        self,
        bundle: PolicyBundle,
        catalogue: Mapping[str, Resource] | None = None,
        *,
        stale_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        problems = bundle.validate()
        if problems:
            raise ValueError(f"policy bundle does not validate against the schema: {problems}")
        self.bundle = bundle
        self.catalogue = dict(catalogue or {})
        self.stale_after = stale_after
        self._clock = clock
        self._confirmed_at = clock()
        self._superseded_by: str | None = None
        self._schema = cedarpy.Schema.from_json_str(bundle.schema)
        self._policy_sets: dict[frozenset[str], tuple[cedarpy.PolicySet, dict[str, str]]] = {}
        self._cache: OrderedDict[tuple[Any, ...], Decision] = OrderedDict()

    def confirm_current(self, version: str) -> None:
        """The loader saw `version` as the current bundle: fresh again if it is ours, stale if not."""
        if version == self.bundle.version:
            self._confirmed_at = self._clock()
            self._superseded_by = None
        else:
            self._superseded_by = version

    def staleness(self) -> str | None:
        """Why this engine's bundle may no longer be used, or None while it is current."""
        if self._superseded_by is not None:
            return (
                f"stale policy bundle: deciding with {self.bundle.version} but the current bundle is "
                f"{self._superseded_by}"
            )
        if self.stale_after is not None:
            age = self._clock() - self._confirmed_at
            if age > self.stale_after:
                return (
                    f"stale policy bundle: {self.bundle.version} not confirmed current for {age:.0f}s "
                    f"(limit {self.stale_after:g}s)"
                )
        return None

    def policy_set_for(self, nations: Iterable[str]) -> tuple[cedarpy.PolicySet, dict[str, str]]:
        """The parsed base policies plus `nations`' rules, and Cedar's policy ids → @id; cached."""
        key = frozenset(nations) & self.bundle.nations_with_rules
        found = self._policy_sets.get(key)
        if found is None:
            text = self.bundle.policies_for(key)
            found = (cedarpy.PolicySet.from_str(text), _annotation_ids(text))
            self._policy_sets[key] = found
        return found

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
        stale = self.staleness()
        if stale:
            return deny(stale)
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
            involved = {user.nationality, user.issuer_nation, *(r.markings.owner for r in resources)}
            policies, ids = self.policy_set_for(involved)
            results = cedarpy.is_authorized_batch(requests, policies, entities_json, self._schema)
        except Exception as error:  # noqa: BLE001 — any engine failure is a deny
            return deny(f"policy engine error: {error}")
        reasons: list[str] = []
        allow_ids: set[str] = set()
        deny_ids: set[str] = set()
        for resource, result in zip(resources, results, strict=True):
            errors = [str(e) for e in result.diagnostics.errors]
            deciding = [ids.get(p, p) for p in result.diagnostics.reasons]
            if errors:
                return deny(f"{resource.name}: policy evaluation error: {errors[0]}")
            if result.decision == cedarpy.Decision.Allow:
                allow_ids.update(deciding)
                continue
            deny_ids.update(deciding)
            if deciding:
                reasons.append(f"{resource.name}: forbidden by {', '.join(sorted(deciding))}")
            else:
                reasons.append(f"{resource.name}: no policy permits it ({explain(user, resource)})")
        if reasons:
            return Decision(False, reasons, sorted(deny_ids))
        marking = answer_marking([r.markings for r in resources])
        return Decision(True, [f"permitted for {len(resources)} resource(s)"], sorted(allow_ids), marking)


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
