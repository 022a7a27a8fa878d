"""Every kind of user a policy set can tell apart, and its decision on every resource: the class matrix.

A user is its nation, clearance, compartments, groups, token subject and Tenant's suspension. The policies
see compartments and groups only as sets, so two users whose sets agree on every string a policy can
distinguish are decided alike. `SetAtoms` reads those strings from the bundle's JSON form: the literals a
policy compares `principal.compartments` / `principal.groups` with, the resource's own compartments where a
policy compares the user's set with them, and one stand-in for "any other string" where a policy can see
more than membership (`isEmpty`, `==`, a set that must contain the user's). A principal class is then a
nation (its Tenant's, issuer = nationality), a clearance level up to the Tenant's, and for each set one
subset of the named strings plus none, some or all of the resource's other compartments (`SetUse.values`):
finite, so every class that can exist is decided, none sampled.

A policy that looks at a user in any other way (its `sub`, an entity named in a principal scope, a user set
used as something else than a set of strings) cannot be covered by classes: `Unanalysable` says which
policy. A verification proves such policies in a form that allows more (`weakened_for_classes`), or fails
closed.

Decisions come from `access_matrix`, so a class's cell is exactly what the gateway decides for such a user.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import cedarpy

from sovereign.domain.markings import Classification, Resource
from sovereign.policy.engine import PolicyEngine
from sovereign.policy.matrix import MatrixCell, MatrixTenant, access_matrix

OTHER = "(any other)"  # stands for every string no policy names (not a literal of any analysed set)
# Strings of both user sets the policies name (with the stand-in for any other): 2**8 classes per level and
# resource. More is refused, not sampled: the work grows with the classes. Only policies add such strings
# (a resource's own compartments add three classes at most), and the admission webhook refuses a rule that
# would go past it, so no resource and no nation's rule can stall the publication of every bundle.
MAX_ATOMS = 8
_USER_SETS = ("compartments", "groups")
_PRINCIPAL = {"Var": "principal"}
_RESOURCE_COMPARTMENTS = {".": {"left": {"Var": "resource"}, "attr": "compartments"}}
_PLAIN_ATTRS = frozenset({"nationality", "issuerNation", "clearance", "tenantSuspended"})


class Unanalysable(ValueError):
    """A policy set whose users cannot be enumerated as classes (the message names the policy)."""


@dataclass(frozen=True)
class SetUse:
    """How the policies use one of the user's sets (compartments or groups)."""

    literals: frozenset[str] = frozenset()
    resource_compartments: bool = False  # compared with the resource's compartments
    beyond_membership: bool = False  # a string no policy names can change a decision

    @property
    def named(self) -> tuple[str, ...]:
        """The strings whose presence is enumerated as such: the literals, and the stand-in for any other."""
        return tuple(sorted(self.literals | ({OTHER} if self.beyond_membership else set())))

    def _unnamed_compartments(self, resource: Resource) -> list[str]:
        if not self.resource_compartments:
            return []
        return sorted(set(resource.markings.compartments) - self.literals)

    def values(self, resource: Resource) -> list[tuple[str, ...]]:
        """One set of strings per class of users on `resource` (each sorted).

        The named strings in every combination; of the resource's compartments no policy names, none, some
        or all: the policies compare the user's set with the resource's only as a whole (containsAll,
        containsAny, ==, either way round), so which of them a user holds beyond how many never matters.
        A resource with many compartments thus adds three classes at most, never 2**n.
        """
        rest = self._unnamed_compartments(resource)
        tails: list[tuple[str, ...]] = [()]
        if len(rest) > 1:
            tails.append((rest[0],))
        if rest:
            tails.append(tuple(rest))
        return [tuple(sorted(named + tail)) for named in subsets(self.named) for tail in tails]

    def class_of(self, held: Iterable[str], resource: Resource) -> tuple[str, ...]:
        """The value of `values(resource)` a user holding `held` is decided as."""
        held = set(held)
        rest = self._unnamed_compartments(resource)
        value = {v for v in held if v in self.literals}
        count = len(held & set(rest))
        if count:
            value.update(rest if count == len(rest) else rest[:1])
        if self.beyond_membership and any(v not in self.literals and v not in rest for v in held):
            value.add(OTHER)
        return tuple(sorted(value))


@dataclass(frozen=True)
class SetAtoms:
    """What the policies can tell apart in the user's compartments and groups (one `SetUse` each)."""

    compartments: SetUse
    groups: SetUse

    @classmethod
    def of(cls, policy_texts: Iterable[str]) -> SetAtoms:
        """Read from every policy of every text (several bundles: what any of them tells apart)."""
        found = {name: _new_use() for name in _USER_SETS}
        for text in policy_texts:
            for policy_id, policy in _static_policies(text):
                _visit_policy(policy_id, policy, found)
        uses = {
            name: SetUse(frozenset(v["literals"]), v["resource"], v["beyond"]) for name, v in found.items()
        }
        return cls(uses["compartments"], uses["groups"])


def weakened_for_classes(text: str) -> tuple[str, tuple[str, ...]]:
    """`text` with every look at a single user taken out so that it only allows more, and the changed ids.

    Classes cannot enumerate single users (a `sub`, a user named in a scope). Taking such a test out of a
    policy so that it allows at least as much as before keeps a proof sound: every invariant that says
    "nothing is allowed beyond ..." and holds for the weaker policies holds for the real ones. A forbid with
    such a test goes (a forbid only removes allowed cells); in a permit, a principal scope naming a user
    becomes `principal`, an `unless` clause with such a test goes, and so does such a `&&` term of a `when`
    clause. What is left must be analysable (`SetAtoms.of` raises if not, e.g. a test on `sub` under `||`).
    """
    return _without_single_users(text, loosened="permit")


def strengthened_for_classes(text: str) -> tuple[str, tuple[str, ...]]:
    """`text` with every look at a single user taken out so that it only allows less, and the changed ids.

    The mirror of `weakened_for_classes`, for what must be proven denied (what a cell was before a nation's
    rules, which they must not widen): a permit with such a test goes; in a forbid, the scope, `unless`
    clause or `when` term goes, so it forbids at least as much.
    """
    return _without_single_users(text, loosened="forbid")


def _without_single_users(text: str, loosened: str) -> tuple[str, tuple[str, ...]]:
    """Policies testing single users: those of effect `loosened` lose the tests (match more), others go."""
    parsed = json.loads(_policies_json(text))
    static: dict[str, Any] = parsed.get("staticPolicies", {})
    changed: list[str] = []
    kept: dict[str, Any] = {}
    for key, policy in static.items():
        policy_id = (policy.get("annotations") or {}).get("id", key)
        if _analysable_policy(policy_id, policy):
            kept[key] = policy
            continue
        changed.append(policy_id)
        if policy.get("effect") == loosened:
            kept[key] = _without_user_tests(policy_id, policy)
    if not changed:
        return text, ()
    return str(cedarpy.policies_from_json_str(json.dumps({**parsed, "staticPolicies": kept}))), tuple(changed)


def _without_user_tests(policy_id: str, policy: dict[str, Any]) -> dict[str, Any]:
    """The policy matching more requests: its scope, `unless` clauses and `when` terms on single users go."""
    scope = dict(policy.get("principal", {}))
    if scope.get("op") not in ("All", "is"):
        scope = {"op": "All"}
    scope.pop("in", None)
    conditions = []
    for condition in policy.get("conditions", []):
        if condition.get("kind") == "unless":
            if _analysable(policy_id, {"conditions": [condition]}):
                conditions.append(condition)
            continue
        terms = [
            t for t in _conjuncts(condition["body"]) if _analysable(policy_id, {"conditions": [{"body": t}]})
        ]
        if terms:
            body = terms[0]
            for term in terms[1:]:
                body = {"&&": {"left": body, "right": term}}
            conditions.append({"kind": "when", "body": body})
    return {**policy, "principal": scope, "conditions": conditions}


def _conjuncts(expression: dict[str, Any]) -> list[dict[str, Any]]:
    if set(expression) == {"&&"}:
        return _conjuncts(expression["&&"]["left"]) + _conjuncts(expression["&&"]["right"])
    return [expression]


def _analysable(policy_id: str, expression: Any) -> bool:
    try:
        _visit(expression, {name: _new_use() for name in _USER_SETS}, policy_id)
    except Unanalysable:
        return False
    return True


def _analysable_policy(policy_id: str, policy: dict[str, Any]) -> bool:
    try:
        _visit_policy(policy_id, policy, {name: _new_use() for name in _USER_SETS})
    except Unanalysable:
        return False
    return True


def _new_use() -> dict[str, Any]:
    return {"literals": set(), "resource": False, "beyond": False}


def _visit_policy(policy_id: str, policy: dict[str, Any], found: dict[str, dict[str, Any]]) -> None:
    scope = policy.get("principal", {})
    if scope.get("op") not in ("All", "is") or "in" in scope:
        raise Unanalysable(f"policy {policy_id!r} names a user or a user group in its scope")
    for condition in policy.get("conditions", []):
        _visit(condition.get("body"), found, policy_id)


class PrincipalClass(NamedTuple):
    """Every user of `nation` at `clearance` whose sets hold exactly these of the policies' strings."""

    nation: str
    clearance: Classification
    compartments: tuple[str, ...]
    groups: tuple[str, ...]

    def describe(self) -> str:
        def shown(values: tuple[str, ...]) -> str:
            return "{" + ", ".join(values) + "}"

        return (
            f"{self.nation} user at {self.clearance.value}, compartments {shown(self.compartments)}, "
            f"groups {shown(self.groups)}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "nation": self.nation,
            "clearance": self.clearance.value,
            "compartments": list(self.compartments),
            "groups": list(self.groups),
        }


class ClassCell(NamedTuple):
    principal: PrincipalClass
    resource: Resource
    allowed: bool
    deciding_policy_ids: tuple[str, ...]
    reason: str


def subsets(atoms: Sequence[str]) -> Iterator[tuple[str, ...]]:
    for size in range(len(atoms) + 1):
        yield from itertools.combinations(atoms, size)


def class_matrix(
    engine: PolicyEngine,
    tenants: Sequence[MatrixTenant],
    resources: Sequence[Resource],
    atoms: SetAtoms | None = None,
) -> list[ClassCell]:
    """Every principal class of `tenants` against every resource it can be told apart on.

    Resources are grouped by their classes' values; each group is decided once per pair of values (one
    `access_matrix` call: every tenant and level at once). `atoms` defaults to the engine's
    bundle; pass the atoms of several bundles to compare their class matrices cell by cell.
    """
    atoms = atoms or SetAtoms.of([engine.bundle.policies])
    named = len(atoms.compartments.named) + len(atoms.groups.named)
    if named > MAX_ATOMS:
        raise Unanalysable(
            f"{named} compartment and group strings can change a decision (the policies' literals, and any "
            f"other string where a policy sees more than membership): at most {MAX_ATOMS} are enumerated, "
            f"{2**MAX_ATOMS} classes per level"
        )
    by_values: dict[tuple[tuple[tuple[str, ...], ...], ...], list[Resource]] = defaultdict(list)
    for resource in resources:
        key = (tuple(atoms.compartments.values(resource)), tuple(atoms.groups.values(resource)))
        by_values[key].append(resource)
    cells: list[ClassCell] = []
    for (compartment_values, group_values), group in by_values.items():
        for compartments in compartment_values:
            for groups in group_values:
                matrix = access_matrix(engine, tenants, group, compartments, groups)
                cells.extend(_class_cells(matrix, group, compartments, groups))
    return cells


def _class_cells(
    matrix: list[MatrixCell],
    resources: Sequence[Resource],
    compartments: tuple[str, ...],
    groups: tuple[str, ...],
) -> Iterator[ClassCell]:
    # access_matrix orders cells by row, then resource as given
    count = len(resources)
    principal: PrincipalClass | None = None
    for position, cell in enumerate(matrix):
        nation, clearance, _, _, allowed, deciding, reason = cell
        if principal is None or principal[0] != nation or principal[1] is not clearance:
            principal = _new(PrincipalClass, (nation, clearance, compartments, groups))
        # tuple.__new__ with the fields in order: the NamedTuple without its keyword handling (per cell, hot)
        yield _new(ClassCell, (principal, resources[position % count], allowed, deciding, reason))


_new = tuple.__new__


def _policies_json(text: str) -> str:
    try:
        return str(cedarpy.policies_to_json_str(text))
    except Exception as error:  # noqa: BLE001 — cedarpy raises ValueError with the parser's message
        raise Unanalysable(f"the policies do not parse: {error}") from None


def _static_policies(text: str) -> list[tuple[str, dict[str, Any]]]:
    parsed = json.loads(_policies_json(text))
    if parsed.get("templates") or parsed.get("templateLinks"):
        raise Unanalysable("the policies hold templates, whose slots could name any user")
    return [
        ((policy.get("annotations") or {}).get("id", generated), policy)
        for generated, policy in parsed.get("staticPolicies", {}).items()
    ]


def _user_set(expression: Any) -> str | None:
    """The set's name ("compartments" or "groups") when `expression` is principal.compartments or .groups."""
    if isinstance(expression, dict) and set(expression) == {"."}:
        access = expression["."]
        if access.get("left") == _PRINCIPAL and access.get("attr") in _USER_SETS:
            return str(access["attr"])
    return None


def _string_set(expression: Any) -> list[str] | None:
    """The strings of a literal string or set of literal strings; None for anything else."""
    if isinstance(expression, dict) and set(expression) == {"Value"} and isinstance(expression["Value"], str):
        return [expression["Value"]]
    if isinstance(expression, dict) and set(expression) == {"Set"}:
        items = [_string_set(item) for item in expression["Set"]]
        if all(item is not None and len(item) == 1 for item in items):
            return [item[0] for item in items if item is not None]
    return None


def _visit(expression: Any, found: dict[str, dict[str, Any]], policy_id: str) -> None:
    if isinstance(expression, list):
        for item in expression:
            _visit(item, found, policy_id)
        return
    if not isinstance(expression, dict):
        return
    if expression == _PRINCIPAL:
        raise Unanalysable(f"policy {policy_id!r} compares the user itself, not its attributes")
    if len(expression) != 1:
        for value in expression.values():
            _visit(value, found, policy_id)
        return
    ((op, arg),) = expression.items()
    if op == "." and isinstance(arg, dict) and arg.get("left") == _PRINCIPAL:
        if arg.get("attr") in _PLAIN_ATTRS:
            return  # enumerated exactly (nation, every level, the Tenant's suspension)
        if arg.get("attr") in _USER_SETS:
            raise Unanalysable(
                f"policy {policy_id!r} uses principal.{arg['attr']} other than by comparing it with strings "
                "or the resource's compartments"
            )
        raise Unanalysable(
            f"policy {policy_id!r} uses principal.{arg.get('attr')} in a way the verification cannot "
            "enumerate (a rule about one user: name a group instead)"
        )
    if op in ("has", "is") and isinstance(arg, dict) and arg.get("left") == _PRINCIPAL:
        return  # every attribute is required; the principal is always a User
    if op == "isEmpty" and isinstance(arg, dict) and _user_set(arg.get("arg")):
        found[str(_user_set(arg["arg"]))]["beyond"] = True
        return
    if op in ("contains", "containsAll", "containsAny", "==", "!=") and isinstance(arg, dict):
        left, right = arg.get("left"), arg.get("right")
        for own, other, user_on_left in ((left, right, True), (right, left, False)):
            name = _user_set(own)
            if name is None:
                continue
            use = found[name]
            strings = _string_set(other)
            if strings is not None:
                use["literals"].update(strings)
            elif other == _RESOURCE_COMPARTMENTS:
                use["resource"] = True
            else:
                raise Unanalysable(
                    f"policy {policy_id!r} compares principal.{name} with something other than strings or "
                    "the resource's compartments"
                )
            # Membership of the named strings decides `contains`, `containsAny` and the user's
            # `containsAll`; a set that must contain the user's, or equal it, also sees any other string.
            if op in ("==", "!=") or (op == "containsAll" and not user_on_left):
                use["beyond"] = True
            if op == "contains" and not user_on_left:
                raise Unanalysable(f"policy {policy_id!r} tests principal.{name} as an element of a set")
            return
    _visit(arg, found, policy_id)
