"""`decide(principal, action, resources)`: the Cedar decision, fail-closed, with the answer's marking.

Every request and its entities are validated against the schema generated from the domain model; any
error (invalid input, an unknown resource, a Cedar error, a validation failure) is a deny with a reason.
Decisions are cached by the principal's attributes, the action, the resources and the bundle version.

An allowed decision's marking never excludes the user's nation (the recipient rule, policies/cedar/README.md):
a resource its markings do not release to that nation was permitted by a rule of its owner, whose id goes into
`disclosed_by_owner`, and the marking adds the nation (`answer_marking`); otherwise the request is denied.

Hot path: a cache key is a tuple of the attribute values themselves (never a serialisation), and each resource
set's entities are parsed and validated against the schema once (`cedarpy.Entities`, cached); a request adds
only its principal's entity to that handle, validated against the schema again as a whole.
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

from sovereign.domain.markings import (
    AnswerMarking,
    ExcludesRecipient,
    Principal,
    Resource,
    answer_marking,
    releases_to,
)
from sovereign.domain.nations import nation_rule_prefix
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.schema import (
    action_uid,
    fast_principal_entity,
    principal_uid,
    resource_entity,
    resource_uid,
)
from sovereign.policy.verdict import verdict

CACHE_SIZE = 100_000
ENTITIES_CACHE_SIZE = 10_000
NO_CONTEXT = (
    "{}"  # a request's (empty) context, already as the JSON cedarpy would otherwise encode per request
)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reasons: list[str]
    deciding_policy_ids: list[str]
    marking: AnswerMarking | None = None
    # The owners' own rules (ids) that let the user read a resource its markings do not release to the
    # user's nation: the marking adds that nation (the recipient rule, `answer_marking`).
    disclosed_by_owner: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "reasons": self.reasons,
            "decidingPolicyIds": self.deciding_policy_ids,
            "marking": self.marking.model_dump(mode="json", by_alias=True) if self.marking else None,
            "disclosedByOwner": list(self.disclosed_by_owner),
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
        self._catalogue_keys = {name: resource_key(r) for name, r in self.catalogue.items()}
        self.stale_after = stale_after
        self._clock = clock
        self._confirmed_at = clock()
        self._superseded_by: str | None = None
        self._schema = cedarpy.Schema.from_json_str(bundle.schema)
        self._policy_sets: dict[frozenset[str], tuple[cedarpy.PolicySet, dict[str, str]]] = {}
        self._cache: OrderedDict[tuple[Any, ...], Decision] = OrderedDict()
        self._resource_json: dict[tuple[Any, ...], str] = {}
        self._principal_json: dict[tuple[Any, ...], str] = {}
        self._markings: dict[tuple[Any, ...], AnswerMarking] = {}
        self._resource_entities: OrderedDict[tuple[Any, ...], cedarpy.Entities] = OrderedDict()

    @property
    def schema(self) -> cedarpy.Schema:
        """The parsed schema every request and entity is validated against."""
        return self._schema

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
        resource_keys: list[tuple[Any, ...]] = []
        for item in resources:
            if isinstance(item, str):
                named = self.catalogue.get(item)
                if named is None:
                    return deny(f"unknown resource {item!r}")
                resolved.append(named)
                resource_keys.append(self._catalogue_keys[item])
                continue
            try:
                resource = item if isinstance(item, Resource) else Resource.model_validate(item)
            except ValidationError as error:
                return deny(f"invalid resource: {_first_error(error)}")
            resolved.append(resource)
            resource_keys.append(resource_key(resource))
        if len(resolved) > 1:
            seen: dict[tuple[str, str], tuple[Any, ...]] = {}
            for resource, rkey in zip(resolved, resource_keys, strict=True):
                if seen.setdefault(rkey[:2], rkey) != rkey:
                    return deny(f"conflicting markings for {resource.kind.value} {resource.name!r}")
        if self._superseded_by is not None or self.stale_after is not None:  # else never stale
            stale = self.staleness()
            if stale:
                return deny(stale)
        user_key = principal_key(user)
        key = (user_key, action, *resource_keys, self.bundle.version)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        decision = self._decide(user, user_key, action, resolved, resource_keys)
        self._cache[key] = decision
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return decision

    def resource_entity_json(self, resource: Resource, key: tuple[Any, ...] | None = None) -> str:
        """The resource's Cedar entity as JSON, cached by its attribute values."""
        key = key or resource_key(resource)
        found = self._resource_json.get(key)
        if found is None:
            if len(self._resource_json) >= ENTITIES_CACHE_SIZE:
                self._resource_json.clear()
            found = self._resource_json[key] = json.dumps(resource_entity(resource))
        return found

    def _entities_for(
        self,
        user: Principal,
        user_key: tuple[Any, ...],
        resources: list[Resource],
        keys: list[tuple[Any, ...]],
    ) -> Any:
        """The request's entities: the resources' handle (parsed and validated once) plus the principal."""
        unique = tuple(dict.fromkeys(keys))
        handle = self._resource_entities.get(unique)
        if handle is None:
            by_key = dict(zip(keys, resources, strict=True))
            text = "[" + ",".join(self.resource_entity_json(by_key[k], k) for k in unique) + "]"
            handle = cedarpy.Entities.from_json_str(text, self._schema)
            self._resource_entities[unique] = handle
            if len(self._resource_entities) > ENTITIES_CACHE_SIZE:
                self._resource_entities.popitem(last=False)
        else:
            self._resource_entities.move_to_end(unique)
        return handle.with_added_json_str(self._principal_entities_json(user, user_key), self._schema)

    def _principal_entities_json(self, user: Principal, key: tuple[Any, ...]) -> str:
        found = self._principal_json.get(key)
        if found is None:
            if len(self._principal_json) >= ENTITIES_CACHE_SIZE:
                self._principal_json.clear()
            found = self._principal_json[key] = "[" + json.dumps(fast_principal_entity(user)) + "]"
        return found

    def _marking(self, resources: list[Resource], keys: list[tuple[Any, ...]]) -> AnswerMarking:
        """The answer's marking; for one resource it depends on its markings only, so it is cached."""
        if len(resources) > 1:
            return answer_marking([r.markings for r in resources])
        found = self._markings.get(keys[0])
        if found is None:
            if len(self._markings) >= ENTITIES_CACHE_SIZE:
                self._markings.clear()
            found = self._markings[keys[0]] = answer_marking([resources[0].markings])
        return found

    def _decide(
        self,
        user: Principal,
        user_key: tuple[Any, ...],
        action: str,
        resources: list[Resource],
        keys: list[tuple[Any, ...]],
    ) -> Decision:
        try:
            entities = self._entities_for(user, user_key, resources, keys)
            user_uid, action_id = principal_uid(user), action_uid(action)
            requests = [
                {
                    "principal": user_uid,
                    "action": action_id,
                    "resource": resource_uid(r),
                    "context": NO_CONTEXT,
                }
                for r in resources
            ]
            involved = {user.nationality, user.issuer_nation, *(r.markings.owner for r in resources)}
            policies, ids = self.policy_set_for(involved)
            results = cedarpy.is_authorized_batch(requests, policies, entities, self._schema)
        except Exception as error:  # noqa: BLE001 — any engine failure is a deny
            return deny(f"policy engine error: {error}")
        reasons: list[str] = []
        allow_ids: set[str] = set()
        deny_ids: set[str] = set()
        disclosing: dict[str, set[str]] = {}  # owner → its rules that permitted a resource not released
        for resource, result in zip(resources, results, strict=True):
            outcome = verdict(user, resource, result, ids)
            if outcome.error is not None:
                return deny(outcome.error)
            if outcome.allowed:
                allow_ids.update(outcome.deciding)
                owner = resource.markings.owner
                if not releases_to(resource.markings, user.nationality):
                    own_rules = {i for i in outcome.deciding if i.startswith(nation_rule_prefix(owner))}
                    disclosing.setdefault(owner, set()).update(own_rules)
                continue
            deny_ids.update(outcome.deciding)
            reasons.append(outcome.reason(resource.name))
        if reasons:
            return Decision(False, reasons, sorted(deny_ids))
        permitted = [f"permitted for {len(resources)} resource(s)"]
        if not disclosing:
            return Decision(True, permitted, sorted(allow_ids), self._marking(resources, keys))
        disclosed_by = frozenset(owner for owner, rules in disclosing.items() if rules)
        try:  # the recipient rule: the marking adds the user's nation, or the answer is refused
            marking = answer_marking(
                [r.markings for r in resources], recipient=user.nationality, disclosed_by=disclosed_by
            )
        except ExcludesRecipient as error:
            return deny(f"the answer's marking would exclude its recipient: {error}")
        rules = tuple(sorted(set().union(*disclosing.values())))
        return Decision(True, permitted, sorted(allow_ids), marking, disclosed_by_owner=rules)


def principal_key(user: Principal) -> tuple[Any, ...]:
    """Every attribute of the principal, as a hashable tuple (a cache key). Computed per call on purpose:
    memoizing it on the instance would survive `model_copy(update=...)` and key a changed principal
    with its old attributes."""
    return (
        user.sub,
        user.nationality,
        user.clearance,
        tuple(user.compartments),
        tuple(user.groups),
        user.issuer_nation,
        user.tenant_suspended,
    )


def resource_key(resource: Resource) -> tuple[Any, ...]:
    """Kind, name and every marking of the resource, as a hashable tuple; (kind, name) first."""
    m = resource.markings
    return (
        resource.kind,
        resource.name,
        m.owner,
        m.classification,
        tuple(m.releasable_to),
        tuple(m.compartments),
        tuple(m.denied_nations),
    )


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
