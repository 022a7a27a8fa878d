"""Proving a policy bundle keeps the alliance's invariants, for every user that can exist and every resource.

The markings domain is finite: the nations with a Tenant, five levels, and the compartment and group
strings the policies can tell apart (`principal_classes`). So each invariant is checked on every cell of
the class matrix (every principal class against every model and dataset), decided by the same engine as
the gateway, and a violation comes with its counterexample: the class, the resource, the deciding policies.

- no read-up: nothing is allowed above the user's clearance, nor outside its compartments;
- releasability: nothing is allowed to a nation that is not the owner, not in releasableTo (NATO covers
  every member) and not disclosed to by a rule of the owner's own; a denied nation never;
- originator control: a nation's rules only change cells of its own resources, or narrow others' (a cell
  of another nation's resource never goes from deny to allow because of them). The engine evaluates a
  request with the base policies and the rules of the nations involved (the user's and the owner's), so
  the rules of a nation X can only change cells whose user or owner is X: each row of X on resources it
  does not own is decided again without X's rules and compared. Every rule's id must also carry its own
  nation's prefix, and no base policy a nation's, since a decision's ids are how a disclosure is credited;
- markings: the marking of an answer is never below any input's classification and always includes its
  recipient. Checked on every allowed cell with the engine's marking rule (`answer_marking` with the
  recipient and the disclosing owner); an answer from several resources is the same rule's fold (highest
  level, intersection of REL TO), so it holds for every combination when it holds for each resource.

A test of a single user (`principal.sub == "…"`) cannot be enumerated as classes: it is taken out of its
policy so that the policy allows more (a forbid goes, a permit loses that term), and the weaker bundle is
proven: what holds for it holds for the real one. Where it cannot be taken out that way (under `||`), the
bundle is unanalysable, which fails the verification (fail closed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import cedarpy

from sovereign.domain.markings import (
    NATO,
    AnswerMarking,
    Classification,
    ExcludesRecipient,
    Markings,
    Resource,
    answer_marking,
    releases_to,
)
from sovereign.domain.nations import is_nation_code, nation_rule_prefix
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.engine import PolicyEngine
from sovereign.policy.matrix import MatrixTenant
from sovereign.policy.principal_classes import (
    ClassCell,
    PrincipalClass,
    SetAtoms,
    Unanalysable,
    class_matrix,
    strengthened_for_classes,
    weakened_for_classes,
)

_RANK = {level: level.rank for level in Classification}
COUNTEREXAMPLES_KEPT = 20  # per invariant; the count of violations is always complete
MarkingRule = Callable[..., AnswerMarking]


class Invariant(StrEnum):
    no_read_up = "no-read-up"
    releasability = "releasability"
    originator_control = "originator-control"
    markings = "markings"


STATEMENTS = {
    Invariant.no_read_up: "nothing is allowed above the user's clearance, nor outside its compartments",
    Invariant.releasability: (
        "nothing is allowed to a nation that is not the owner, not in releasableTo and not disclosed to by "
        "the owner's own rule; a denied nation never"
    ),
    Invariant.originator_control: (
        "a nation's rules change only cells of its own resources, or narrow others'"
    ),
    Invariant.markings: (
        "an answer's marking is never below any input's classification and always includes its recipient"
    ),
}


@dataclass(frozen=True)
class Counterexample:
    invariant: Invariant
    principal: PrincipalClass | None  # None: a fault of the policy set itself (a rule's id)
    resource: str
    kind: str
    deciding_policy_ids: tuple[str, ...]
    why: str

    def describe(self) -> str:
        who = self.principal.describe() if self.principal else "the policy set"
        where = f" → {self.kind} {self.resource}" if self.resource else ""
        ids = ", ".join(self.deciding_policy_ids) or "(none)"
        return f"{who}{where}: {self.why} [deciding: {ids}]"

    def as_dict(self) -> dict[str, Any]:
        return {
            "invariant": self.invariant.value,
            "principal": self.principal.as_dict() if self.principal else None,
            "resource": self.resource,
            "kind": self.kind,
            "decidingPolicyIds": list(self.deciding_policy_ids),
            "why": self.why,
        }


@dataclass
class InvariantResult:
    invariant: Invariant
    checked: int = 0  # cells (or rules) the invariant was checked on
    violations: int = 0
    counterexamples: list[Counterexample] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return self.violations == 0

    def add(self, counterexample: Counterexample) -> None:
        self.violations += 1
        if len(self.counterexamples) < COUNTEREXAMPLES_KEPT:
            self.counterexamples.append(counterexample)

    def as_dict(self) -> dict[str, Any]:
        return {
            "invariant": self.invariant.value,
            "statement": STATEMENTS[self.invariant],
            "holds": self.holds,
            "checked": self.checked,
            "violations": self.violations,
            "counterexamples": [c.as_dict() for c in self.counterexamples],
        }


@dataclass(frozen=True)
class Verification:
    bundle_version: str
    nations: int
    resources: int
    classes: int
    cells: int
    results: tuple[InvariantResult, ...]
    unanalysable: str | None = None  # why no class could be enumerated: the bundle is not proven
    seconds: float = 0.0
    # Policies that test single users, proven in a weaker form that allows more (`weakened_for_classes`).
    weakened: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.unanalysable is None and all(r.holds for r in self.results)

    def result(self, invariant: Invariant) -> InvariantResult:
        return next(r for r in self.results if r.invariant is invariant)

    def as_dict(self) -> dict[str, Any]:
        return {
            "bundleVersion": self.bundle_version,
            "ok": self.ok,
            "nations": self.nations,
            "resources": self.resources,
            "principalClasses": self.classes,
            "cells": self.cells,
            "unanalysable": self.unanalysable,
            "weakenedPolicies": list(self.weakened),
            "seconds": round(self.seconds, 3),
            "invariants": [r.as_dict() for r in self.results],
        }

    def first_problem(self) -> str | None:
        """One line naming what fails first (for a status condition or an Event), None when proven."""
        if self.unanalysable is not None:
            return f"cannot be verified: {self.unanalysable}"
        for result in self.results:
            if result.counterexamples:
                more = f" (and {result.violations - 1} more)" if result.violations > 1 else ""
                return f"breaks {result.invariant.value}: {result.counterexamples[0].describe()}{more}"
        return None


def verify_bundle(
    bundle: PolicyBundle,
    tenants: Sequence[MatrixTenant],
    resources: Sequence[Resource],
    *,
    nation: str | None = None,
    marking: MarkingRule = answer_marking,
) -> Verification:
    """Every invariant on every principal class of `tenants` against every resource (pure, no I/O).

    With `nation`, only the cells that nation's rules can change (its users on every resource, every user
    on its resources): what a change of its rules needs proven when the rest of the bundle already is.
    """
    started = time.perf_counter()
    results = tuple(InvariantResult(invariant) for invariant in Invariant)
    by_invariant = {r.invariant: r for r in results}
    try:
        checked, weakened = _without_single_users(bundle, weakened_for_classes)
        # Allowing less, for what must be proven denied (originator control's cells before a nation's rules).
        stronger = _without_single_users(bundle, strengthened_for_classes)[0] if weakened else checked
        engine = PolicyEngine(checked)
        atoms = SetAtoms.of([checked.policies, *([stronger.policies] if weakened else [])])
        if nation is None:
            cells = class_matrix(engine, tenants, resources, atoms)
        else:
            own = [r for r in resources if r.markings.owner == nation]
            cells = class_matrix(engine, [t for t in tenants if t.nation == nation], resources, atoms)
            cells += class_matrix(engine, [t for t in tenants if t.nation != nation], own, atoms)
    except (Unanalysable, ValueError) as error:
        return Verification(
            bundle.version, len(tenants), len(resources), 0, 0, results, str(error),
            time.perf_counter() - started,
        )  # fmt: skip
    _check_rule_ids(bundle, _rules_by_nation(bundle), by_invariant[Invariant.originator_control])
    own_rules = _rules_by_nation(checked)
    markings_cache: dict[tuple[Any, ...], str | None] = {}
    for cell in cells:
        by_invariant[Invariant.no_read_up].checked += 1
        by_invariant[Invariant.releasability].checked += 1
        if not cell.allowed:
            continue
        _check_no_read_up(cell, by_invariant[Invariant.no_read_up])
        disclosed = _disclosing_rules(cell, own_rules, weakened)
        _check_releasability(cell, disclosed, by_invariant[Invariant.releasability])
        _check_marking(cell, disclosed, marking, markings_cache, by_invariant[Invariant.markings])
    if nation is not None:
        tenants = [t for t in tenants if t.nation == nation]
    _check_originator_control(checked, stronger, tenants, resources, atoms, cells, by_invariant)
    classes = len({cell.principal for cell in cells})
    return Verification(
        bundle.version, len(tenants), len(resources), classes, len(cells), results, None,
        time.perf_counter() - started, weakened,
    )  # fmt: skip


def _without_single_users(
    bundle: PolicyBundle, rewrite: Callable[[str], tuple[str, tuple[str, ...]]]
) -> tuple[PolicyBundle, tuple[str, ...]]:
    """The bundle with its tests of single users taken out by `rewrite` (`weakened_for_classes`: allows
    more; `strengthened_for_classes`: allows less), and the ids changed."""
    base, changed = rewrite(bundle.base)
    rules = []
    for nation, text in bundle.nation_rules:
        rewritten, ids = rewrite(text)
        rules.append((nation, rewritten))
        changed += ids
    if not changed:
        return bundle, ()
    return PolicyBundle(bundle.schema, base, tuple(rules)), tuple(sorted(changed))


def _counterexample(invariant: Invariant, cell: ClassCell, why: str) -> Counterexample:
    return Counterexample(
        invariant, cell.principal, cell.resource.name, cell.resource.kind.value, cell.deciding_policy_ids, why
    )


def _check_no_read_up(cell: ClassCell, result: InvariantResult) -> None:
    markings, user = cell.resource.markings, cell.principal
    if _RANK[user.clearance] < _RANK[markings.classification]:
        why = f"allowed at {user.clearance.value} to a resource marked {markings.classification.value}"
        result.add(_counterexample(Invariant.no_read_up, cell, why))
    missing = sorted(set(markings.compartments) - set(user.compartments))
    if missing:
        why = f"allowed without the compartment(s) {', '.join(missing)} the resource requires"
        result.add(_counterexample(Invariant.no_read_up, cell, why))


def _disclosing_rules(
    cell: ClassCell, own_rules: dict[str, frozenset[str]], weakened: tuple[str, ...]
) -> tuple[str, ...]:
    """The owner's own rules among the deciding policies (what credits a disclosure), when they do for
    every user of the class. A weakened rule (for single users) may hold for some users only, so it credits
    the class only when nothing else allows it: then every user it allows satisfies one of the owner's rules.
    """
    owner_rules = own_rules.get(cell.resource.markings.owner, frozenset())
    disclosing = tuple(i for i in cell.deciding_policy_ids if i in owner_rules)
    if len(disclosing) == len(cell.deciding_policy_ids) or any(i not in weakened for i in disclosing):
        return disclosing
    return ()


def _check_releasability(cell: ClassCell, disclosed: tuple[str, ...], result: InvariantResult) -> None:
    markings, nation = cell.resource.markings, cell.principal.nation
    if nation in markings.denied_nations:
        why = f"allowed to {nation}, which {markings.owner} denies (deniedNations)"
        result.add(_counterexample(Invariant.releasability, cell, why))
    elif not releases_to(markings, nation) and not disclosed:
        released = ", ".join([markings.owner, *markings.releasable_to])
        why = (
            f"allowed to {nation}: the resource is releasable to {released} only, and no rule of "
            f"{markings.owner} discloses it"
        )
        result.add(_counterexample(Invariant.releasability, cell, why))


def _check_marking(
    cell: ClassCell,
    disclosed: tuple[str, ...],
    marking: MarkingRule,
    cache: dict[tuple[Any, ...], str | None],
    result: InvariantResult,
) -> None:
    result.checked += 1
    markings, recipient = cell.resource.markings, cell.principal.nation
    key = (_markings_key(markings), recipient, bool(disclosed))
    if key not in cache:
        cache[key] = _marking_problem(markings, recipient, bool(disclosed), marking)
    problem = cache[key]
    if problem is not None:
        result.add(_counterexample(Invariant.markings, cell, problem))


def _marking_problem(markings: Markings, recipient: str, disclosed: bool, marking: MarkingRule) -> str | None:
    disclosed_by = frozenset({markings.owner}) if disclosed else frozenset()
    try:
        answer = marking([markings], recipient=recipient, disclosed_by=disclosed_by)
    except ExcludesRecipient as error:
        return f"the answer's marking would exclude its recipient {recipient}: {error}"
    if _RANK[answer.classification] < _RANK[markings.classification]:
        return (
            f"the answer is marked {answer.classification.value}, below its input's "
            f"{markings.classification.value}"
        )
    if recipient not in answer.releasable_to and NATO not in answer.releasable_to:
        rel = ", ".join(answer.releasable_to) or "nobody"
        return f"the answer is marked REL TO {rel}, which excludes its recipient {recipient}"
    return None


def _markings_key(markings: Markings) -> tuple[Any, ...]:
    return (
        markings.owner,
        markings.classification,
        tuple(markings.releasable_to),
        tuple(markings.compartments),
        tuple(markings.denied_nations),
    )


def _check_originator_control(
    bundle: PolicyBundle,
    stronger: PolicyBundle,
    tenants: Sequence[MatrixTenant],
    resources: Sequence[Resource],
    atoms: SetAtoms,
    cells: list[ClassCell],
    by_invariant: dict[Invariant, InvariantResult],
) -> None:
    """Cells of `bundle` (the weakened one: `cells`) against the same cells without one nation's rules.

    With tests of single users in the bundle, a class's cell is proven allowed after (weakened: allows
    more) and denied before (`stronger`: allows less), so no user of the class can be widened unseen. A
    rule can only widen a cell through a permit of its own that the user satisfies (forbids only narrow),
    so a cell counts when one of the nation's rules is among its deciding policies: another nation's
    permit for single users, allowed after and denied before for the class, is not the nation's doing.
    """
    result = by_invariant[Invariant.originator_control]
    rules = dict(bundle.nation_rules)
    own = _rules_by_nation(bundle)
    stronger_rules = dict(stronger.nation_rules)
    with_rules = {tenant.nation for tenant in tenants if tenant.nation in rules}
    decided = {(c.principal, c.resource.name): c for c in cells if c.principal.nation in with_rules}
    for tenant in tenants:
        nation = tenant.nation
        if nation not in rules:
            continue
        others = [r for r in resources if r.markings.owner != nation]
        if not others:
            continue
        without = PolicyEngine(
            stronger.with_nation_rules({n: t for n, t in stronger_rules.items() if n != nation})
        )
        for before in class_matrix(without, [tenant], others, atoms):
            result.checked += 1
            after = decided[(before.principal, before.resource.name)]
            ids = [i for i in after.deciding_policy_ids if i in own[nation]]
            if after.allowed and not before.allowed and ids:
                why = (
                    f"{nation}'s rules ({', '.join(ids)}) allow a resource of "
                    f"{after.resource.markings.owner} that is denied without them"
                )
                result.add(_counterexample(Invariant.originator_control, after, why))


def _rules_by_nation(bundle: PolicyBundle) -> dict[str, frozenset[str]]:
    """Each nation's rule ids, as they are in its own part of the bundle."""
    return {nation: frozenset(_policy_ids(text)) for nation, text in bundle.nation_rules}


def _check_rule_ids(bundle: PolicyBundle, own: dict[str, frozenset[str]], result: InvariantResult) -> None:
    """A nation's rule must carry its own prefix, and no base policy a nation's: ids credit disclosures."""
    for nation, ids in sorted(own.items()):
        for policy_id in sorted(ids):
            result.checked += 1
            if not policy_id.startswith(nation_rule_prefix(nation)):
                why = f"a rule of {nation} has the id {policy_id!r}, without {nation_rule_prefix(nation)!r}"
                result.add(Counterexample(Invariant.originator_control, None, "", "", (policy_id,), why))
    claimed = {nation_rule_prefix(nation) for nation in own}
    for policy_id in _policy_ids(bundle.base):
        result.checked += 1
        prefix = policy_id.split("/", 1)[0] + "/"
        if prefix in claimed or (len(prefix) == 4 and is_nation_code(prefix[:3].upper())):
            why = f"the base policy {policy_id!r} carries a nation's prefix: it would count as that nation's"
            result.add(Counterexample(Invariant.originator_control, None, "", "", (policy_id,), why))


def _policy_ids(text: str) -> list[str]:
    static = json.loads(cedarpy.policies_to_json_str(text)).get("staticPolicies", {})
    return [(body.get("annotations") or {}).get("id", pid) for pid, body in static.items()]
