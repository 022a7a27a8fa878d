"""What applying one TenantPolicy would change: the class-matrix cells it gains and loses (pure, no I/O).

A TenantPolicy of nation X replaces (or joins) X's rules in the bundle; everything else stays. The engine
evaluates a request with the base policies and the rules of the user's and the owner's nation only (see
`verify`), so X's rules can change only the cells of X's users, on any resource, and of every user on X's
resources: those are the cells compared, for every principal class (`principal_classes`), before and after.
Both bundles are enumerated with the strings either of them can tell apart, so their cells align.

The summary groups changed cells by (the user's nation, resource) and says which of the nation's users
change, as precisely as the cells allow: the levels, the groups and compartments every changed class
holds, those none holds, and whether that description covers exactly the changed classes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sovereign.domain.markings import Classification, Resource, ResourceKind
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.engine import PolicyEngine
from sovereign.policy.matrix import MatrixTenant
from sovereign.policy.nation_rules import nation_bundle_rules, problems_with_nation_rules
from sovereign.policy.principal_classes import ClassCell, PrincipalClass, SetAtoms, class_matrix

# An API server may truncate an admission warning over 256 characters (k8s docs: extensible admission
# controllers, "Response": 120 if possible); a group's line is about 100 before its policy ids.
MAX_WARNING_CHARS = 200
MAX_WARNING_LINES = 10
RESOURCES_PER_STEP = 256  # the deadline is checked between steps of this many resources

_CellKey = tuple[PrincipalClass, ResourceKind, str]


class RulesRefused(ValueError):
    """The TenantPolicy's rules fail the checks every nation's rules pass: nothing to compare."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class DiffTooSlow(TimeoutError):
    """The comparison did not finish before its deadline."""


def live_tenant_policies(bodies: Iterable[Mapping[str, Any]], namespace: str) -> dict[str, str]:
    """name → spec.cedar of the TenantPolicies in `namespace` that are not being deleted."""
    return {
        body["metadata"]["name"]: str((body.get("spec") or {}).get("cedar") or "")
        for body in bodies
        if body["metadata"].get("namespace") == namespace and not body["metadata"].get("deletionTimestamp")
    }


def bundle_with_nation_policies(
    bundle: PolicyBundle, nation: str, policies: Mapping[str, str]
) -> PolicyBundle:
    """`bundle` (its schema, base and the other nations' rules) with `nation`'s rules made of `policies`
    (TenantPolicy name → Cedar), leaving out those that fail the checks, as the operator leaves them out."""
    accepted = [
        (name, cedar)
        for name, cedar in policies.items()
        if cedar.strip() and not problems_with_nation_rules(nation, cedar, bundle.schema)
    ]
    rules = {n: text for n, text in bundle.nation_rules if n != nation}
    if accepted:
        rules[nation] = nation_bundle_rules(nation, accepted)
    return bundle.with_nation_rules(rules)


def tenant_policy_change(
    bundle: PolicyBundle, nation: str, live: Mapping[str, str], name: str, cedar: str
) -> tuple[PolicyBundle, PolicyBundle]:
    """The bundle before and after TenantPolicy `name` of `nation` holds `cedar`, on top of `bundle` and
    the nation's other live TenantPolicies `live` (name → Cedar; `name`'s current version if it exists).

    "Before" is rebuilt from `live` rather than taken as published, so the comparison shows this change
    alone even while the operator has not yet published an earlier one. RulesRefused if `cedar` fails the
    checks (the webhook refuses it; there is nothing to compare).
    """
    problems = problems_with_nation_rules(nation, cedar, bundle.schema)
    if problems:
        raise RulesRefused(problems)
    before = bundle_with_nation_policies(bundle, nation, live)
    after = bundle_with_nation_policies(bundle, nation, {**live, name: cedar})
    return before, after


@dataclass(frozen=True)
class ChangedCell:
    """One principal class on one resource whose decision the change flips."""

    principal: PrincipalClass
    resource: Resource
    gained: bool  # deny → allow; False: allow → deny
    deciding_policy_ids: tuple[str, ...]  # after the change
    previous_policy_ids: tuple[str, ...]  # before it

    def as_dict(self) -> dict[str, Any]:
        return {
            "principal": self.principal.as_dict(),
            "resource": self.resource.name,
            "kind": self.resource.kind.value,
            "change": "gained" if self.gained else "lost",
            "decidingPolicyIds": list(self.deciding_policy_ids),
            "previousPolicyIds": list(self.previous_policy_ids),
        }


@dataclass(frozen=True)
class SetCondition:
    """What every changed class holds of one user set, and what none holds."""

    holds: tuple[str, ...] = ()
    lacks: tuple[str, ...] = ()

    def matches(self, values: tuple[str, ...]) -> bool:
        return set(self.holds) <= set(values) and not set(self.lacks) & set(values)

    def describe(self, what: str) -> list[str]:
        parts = []
        if self.holds:
            parts.append(f"{what} {{{', '.join(self.holds)}}}")
        if self.lacks:
            parts.append(f"without {what} {{{', '.join(self.lacks)}}}")
        return parts


@dataclass(frozen=True)
class ChangeGroup:
    """The changed cells of one nation's users on one resource, in one direction."""

    nation: str
    resource: str
    kind: ResourceKind
    gained: bool
    levels: tuple[Classification, ...]  # the clearance levels of the changed classes, lowest first
    upward: bool  # every level from the lowest one up to the tenant's clearance
    compartments: SetCondition
    groups: SetCondition
    exact: bool  # the description covers the changed classes and no other class of the nation
    cells: int
    policy_ids: tuple[str, ...]  # deciding after the change (a loss to the default deny: what allowed before)
    denied_by_policy: bool = False  # a loss decided by a forbid, not by the default deny

    @property
    def verb(self) -> str:
        return "gains" if self.gained else "loses"

    def users(self) -> str:
        """Which of the nation's users change: `at NATO SECRET and above, groups {liaison}`."""
        if self.upward and len(self.levels) > 1:
            where = f"at {self.levels[0].value} and above"
        else:
            where = "at " + ", ".join(level.value for level in self.levels)
        parts = [where, *self.compartments.describe("compartments"), *self.groups.describe("groups")]
        return ", ".join(parts) + ("" if self.exact else " (some of these users only)")

    def deciders(self) -> str:
        """The policies behind the change: what allows now, what denies now, or what no longer allows."""
        if not self.policy_ids:
            return ""
        if self.gained:
            return f"allowed by {', '.join(self.policy_ids)}"
        return ("denied by " if self.denied_by_policy else "no longer allowed by ") + ", ".join(
            self.policy_ids
        )

    def describe(self) -> str:
        """E.g. `POL gains fra/analyst (Model) at NATO SECRET and above, groups {liaison}`."""
        return f"{self.nation} {self.verb} {self.resource} ({self.kind.value}) {self.users()}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "nation": self.nation,
            "resource": self.resource,
            "kind": self.kind.value,
            "change": "gained" if self.gained else "lost",
            "levels": [level.value for level in self.levels],
            "compartments": {"holds": list(self.compartments.holds), "lacks": list(self.compartments.lacks)},
            "groups": {"holds": list(self.groups.holds), "lacks": list(self.groups.lacks)},
            "exact": self.exact,
            "cells": self.cells,
            "policyIds": list(self.policy_ids),
            "summary": self.describe(),
            "policies": self.deciders(),
        }


@dataclass(frozen=True)
class PolicyDiff:
    nation: str
    before_version: str
    after_version: str
    compared: int  # cells compared (every class of the rows and resources the nation's rules can change)
    gained: tuple[ChangedCell, ...]
    lost: tuple[ChangedCell, ...]
    groups: tuple[ChangeGroup, ...]

    @property
    def changed(self) -> bool:
        return bool(self.gained or self.lost)

    def headline(self, subject: str) -> str:
        """One line: `TenantPolicy tenant-fra/liaison: grants 6 cells, removes 0`, or that nothing changes."""
        if not self.changed:
            return f"{subject}: changes no decision ({self.compared} cells compared)"
        cells = "cell" if len(self.gained) == 1 else "cells"
        return f"{subject}: grants {len(self.gained)} {cells}, removes {len(self.lost)}"

    def warning_lines(self, subject: str) -> list[str]:
        """The headline, then one line per nation's users and change (resources that change alike share
        it), each short enough for an admission warning: at most MAX_WARNING_LINES, then how many more."""
        alike: dict[tuple[str, bool, ResourceKind, str, str], list[str]] = defaultdict(list)
        for group in self.groups:
            key = (group.nation, group.gained, group.kind, group.users(), group.deciders())
            alike[key].append(group.resource)
        lines = []
        for (nation, gained, kind, users, deciders), names in alike.items():
            verb = "gains" if gained else "loses"
            if len(names) == 1:
                what = f"{names[0]} ({kind.value})"
            else:
                listed = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
                what = f"{len(names)} {kind.value}s ({listed})"
            line = f"{nation} {verb} {what} {users}"
            with_deciders = f"{line} [{deciders}]" if deciders else line
            lines.append(with_deciders if len(with_deciders) <= MAX_WARNING_CHARS else line)
        shown = lines[:MAX_WARNING_LINES]
        if len(lines) > len(shown):
            shown.append(f"… and {len(lines) - len(shown)} more (sovereign policy diff -f FILE)")
        return [_clip(line) for line in [self.headline(subject), *shown]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "nation": self.nation,
            "beforeVersion": self.before_version,
            "afterVersion": self.after_version,
            "changed": self.changed,
            "compared": self.compared,
            "gained": len(self.gained),
            "lost": len(self.lost),
            "summary": [group.as_dict() for group in self.groups],
            "cells": [cell.as_dict() for cell in (*self.gained, *self.lost)],
        }


def policy_diff(
    before: PolicyBundle,
    after: PolicyBundle,
    tenants: Sequence[MatrixTenant],
    resources: Sequence[Resource],
    nation: str,
    *,
    deadline: float | None = None,
) -> PolicyDiff:
    """Every cell `nation`'s rules can change, decided with `before` and with `after`, compared.

    `deadline` (time.monotonic) raises DiffTooSlow when passed; Unanalysable when a bundle's users cannot
    be enumerated as classes; ValueError when a bundle does not validate against its schema.
    """
    atoms = SetAtoms.of([before.policies, after.policies])
    parts = [
        ([t for t in tenants if t.nation == nation], list(resources)),
        ([t for t in tenants if t.nation != nation], [r for r in resources if r.markings.owner == nation]),
    ]
    old = _cells(PolicyEngine(before), parts, atoms, deadline)
    new = _cells(PolicyEngine(after), parts, atoms, deadline)
    gained: list[ChangedCell] = []
    lost: list[ChangedCell] = []
    for key, cell in new.items():
        previous = old[key]
        if cell.allowed != previous.allowed:
            changed = ChangedCell(
                cell.principal, cell.resource, cell.allowed, cell.deciding_policy_ids,
                previous.deciding_policy_ids,
            )  # fmt: skip
            (gained if cell.allowed else lost).append(changed)
    levels = {t.nation: [level for level in Classification if level <= t.clearance] for t in tenants}
    groups = _groups(gained, new, levels) + _groups(lost, new, levels)
    return PolicyDiff(nation, before.version, after.version, len(new), tuple(gained), tuple(lost), groups)


def _cells(
    engine: PolicyEngine,
    parts: Sequence[tuple[list[MatrixTenant], list[Resource]]],
    atoms: SetAtoms,
    deadline: float | None,
) -> dict[_CellKey, ClassCell]:
    cells: dict[_CellKey, ClassCell] = {}
    for tenants, resources in parts:
        if not tenants:
            continue
        for start in range(0, len(resources), RESOURCES_PER_STEP):
            if deadline is not None and time.monotonic() > deadline:
                raise DiffTooSlow("the comparison did not finish in time")
            for cell in class_matrix(engine, tenants, resources[start : start + RESOURCES_PER_STEP], atoms):
                cells[(cell.principal, cell.resource.kind, cell.resource.name)] = cell
    return cells


def _groups(
    changed: Sequence[ChangedCell],
    decided: Mapping[_CellKey, ClassCell],
    levels: Mapping[str, list[Classification]],
) -> tuple[ChangeGroup, ...]:
    by_row: dict[tuple[str, ResourceKind, str], list[ChangedCell]] = defaultdict(list)
    for cell in changed:
        by_row[(cell.principal.nation, cell.resource.kind, cell.resource.name)].append(cell)
    universe: dict[tuple[str, ResourceKind, str], list[PrincipalClass]] = defaultdict(list)
    for principal, kind, name in decided:
        if (principal.nation, kind, name) in by_row:
            universe[(principal.nation, kind, name)].append(principal)
    groups = [_group(cells, universe[key], levels[key[0]]) for key, cells in by_row.items()]
    return tuple(sorted(groups, key=lambda g: (g.nation, g.resource, g.kind.value)))


def _group(
    cells: list[ChangedCell], universe: list[PrincipalClass], tenant_levels: list[Classification]
) -> ChangeGroup:
    first = cells[0]
    principals = [cell.principal for cell in cells]
    found = sorted({p.clearance for p in principals}, key=lambda level: level.rank)
    upward = found == tenant_levels[tenant_levels.index(found[0]) :]
    compartments = _condition([p.compartments for p in principals], [p.compartments for p in universe])
    groups = _condition([p.groups for p in principals], [p.groups for p in universe])
    covered = [
        p
        for p in universe
        if p.clearance in found and compartments.matches(p.compartments) and groups.matches(p.groups)
    ]
    ids: set[str] = set()
    for cell in cells:
        ids.update(cell.deciding_policy_ids or (() if cell.gained else cell.previous_policy_ids))
    denied_by_policy = not first.gained and all(cell.deciding_policy_ids for cell in cells)
    return ChangeGroup(
        first.principal.nation, first.resource.name, first.resource.kind, first.gained, tuple(found), upward,
        compartments, groups, len(covered) == len(cells), len(cells), tuple(sorted(ids)), denied_by_policy,
    )  # fmt: skip


def _condition(changed: list[tuple[str, ...]], every: list[tuple[str, ...]]) -> SetCondition:
    """The strings every changed class holds, and those none holds, among the strings that vary at all."""
    varying = set().union(*every) if every else set()
    holds = set.intersection(*(set(values) for values in changed)) if changed else set()
    present = set().union(*changed) if changed else set()
    return SetCondition(tuple(sorted(holds & varying)), tuple(sorted(varying - present)))


def _clip(line: str) -> str:
    return line if len(line) <= MAX_WARNING_CHARS else line[: MAX_WARNING_CHARS - 1] + "…"
