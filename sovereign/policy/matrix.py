"""The access matrix: for every tenant, every clearance level it may grant and every resource, the decision.

A row's user is the tenant's own (nationality = issuer nation = the tenant's), at one clearance level up to
the tenant's clearance, holding the compartments and groups asked for. Models are decided for `invoke`,
datasets for `read`. Decisions come from the same Cedar policies, schema and reasons as `engine.decide`, so
the matrix shows exactly what the gateway enforces (`exhaustive_matrix` decides every cell through it).

Fast and sound: each cell is evaluated against the policies `engine.decide` would use (the base plus the
rules of the nations involved: the tenant's and the resource owner's), one Cedar batch per policy set with
entities parsed and validated against the schema once. Cells that no policy can tell apart share one
evaluation:
- resources: for a user of nation N, resources whose kind, classification and compartments are equal, and
  whose nation-valued attributes (owner, releasableTo, deniedNations) are equal once N is written SELF and
  every nation code other than the nation literals the policies compare them with is replaced by one
  placeholder. Sound only when the policies use those attributes in the forms `resource.owner == X` / `!=`
  and `resource.releasableTo.contains(X)` / `resource.deniedNations.contains(X)`, X being
  principal.nationality, principal.issuerNation or a string literal, and never name a resource entity
  (`nation_literals`, on each policy set's JSON form); a policy set that does not qualify is evaluated
  resource by resource.
- rows: users of different nations at the same level (same suspension, compartments and groups), when
  neither nation has rules or is a string literal of the policy set and the set only tests strings for
  equality (`string_literals`): renaming one nation to the other changes no decision.
A cell gets its evaluation's decision and deciding policies, with a reason built for its own resource and
user, as `decide` words it. Errors are never shared: such cells are decided one by one by `engine.decide`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import cedarpy

from sovereign.domain.markings import NATO, Classification, Principal, Resource, ResourceKind
from sovereign.policy.engine import NO_CONTEXT, PolicyEngine, Verdict, explain, verdict
from sovereign.policy.schema import action_uid, principal_entity, principal_uid, resource_uid

ACTION_FOR_KIND = {ResourceKind.model: "invoke", ResourceKind.dataset: "read"}
MATRIX_USER_PREFIX = "access-matrix/"
PERMITTED = "permitted for 1 resource(s)"  # decide's reason for one allowed resource
OTHER_NATION = "*"  # stands for every nation code no evaluated policy tells apart (not a valid code)
SELF = "="  # stands for the user's own nation (not a valid code)
_RANK = {level: level.rank for level in Classification}

_RESOURCE = {"Var": "resource"}
_NATION_OPERANDS = (
    {".": {"left": {"Var": "principal"}, "attr": "nationality"}},
    {".": {"left": {"Var": "principal"}, "attr": "issuerNation"}},
)
_EXACT_ATTRS = frozenset({"classification", "compartments"})  # part of a group's key as they are


@dataclass(frozen=True)
class MatrixTenant:
    """What the matrix needs of a Tenant."""

    nation: str
    clearance: Classification
    suspended: bool = False


class MatrixCell(NamedTuple):
    nation: str
    clearance: Classification
    resource: str
    kind: ResourceKind
    allowed: bool
    deciding_policy_ids: tuple[str, ...]
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "nation": self.nation,
            "clearance": self.clearance.value,
            "resource": self.resource,
            "kind": self.kind.value,
            "allowed": self.allowed,
            "decidingPolicyIds": list(self.deciding_policy_ids),
            "reason": self.reason,
        }


def matrix_principal(
    tenant: MatrixTenant,
    clearance: Classification,
    compartments: Sequence[str] = (),
    groups: Sequence[str] = (),
) -> Principal:
    return Principal(
        sub=f"{MATRIX_USER_PREFIX}{tenant.nation.lower()}/{clearance.rank}",
        nationality=tenant.nation,
        clearance=clearance,
        compartments=list(compartments),
        groups=list(groups),
        issuerNation=tenant.nation,
        tenantSuspended=tenant.suspended,
    )


def clearance_levels(tenant: MatrixTenant) -> list[Classification]:
    """The levels a tenant's users can hold: every one up to the tenant's clearance."""
    return [level for level in Classification if level <= tenant.clearance]


def exhaustive_matrix(
    engine: PolicyEngine,
    tenants: Sequence[MatrixTenant],
    resources: Sequence[Resource],
    compartments: Sequence[str] = (),
    groups: Sequence[str] = (),
) -> list[MatrixCell]:
    """The matrix by one `engine.decide` per cell: the reference `access_matrix` must equal."""
    cells = []
    for tenant in tenants:
        for level in clearance_levels(tenant):
            user = matrix_principal(tenant, level, compartments, groups)
            cells.extend(_decided_cell(engine, tenant, level, user, resource) for resource in resources)
    return cells


def access_matrix(
    engine: PolicyEngine,
    tenants: Sequence[MatrixTenant],
    resources: Sequence[Resource],
    compartments: Sequence[str] = (),
    groups: Sequence[str] = (),
) -> list[MatrixCell]:
    """Cells ordered by tenant, clearance level (lowest first), then resource as given."""
    uids = {(r.kind, r.name) for r in resources}
    if engine.staleness() or len(uids) != len(resources):
        # Stale: every cell is denied by decide. Two markings under one name: no single entity set holds both.
        return exhaustive_matrix(engine, tenants, resources, compartments, groups)
    rules = engine.bundle.nations_with_rules
    analyses: dict[frozenset[str], _Analysis] = {}
    rows = [
        (tenant, level, matrix_principal(tenant, level, compartments, groups))
        for tenant in tenants
        for level in clearance_levels(tenant)
    ]
    # Per nation: each resource's group (an int), and the first resource of each group.
    group_ids: dict[tuple[Any, ...], int] = {}
    policy_key_of: list[frozenset[str]] = []
    plans: dict[str, tuple[list[int], dict[int, int]]] = {}
    for tenant in tenants:
        nation = tenant.nation
        if nation in plans:
            continue
        plan: list[int] = []
        first: dict[int, int] = {}
        for index, resource in enumerate(resources):
            policy_key = frozenset({nation, resource.markings.owner}) & rules
            analysis = analyses.get(policy_key)
            if analysis is None:
                analysis = analyses[policy_key] = _Analysis.of(engine.bundle.policies_for(policy_key))
            key = (policy_key, *analysis.group(nation, index, resource, rules))
            group = group_ids.get(key)
            if group is None:
                group = group_ids[key] = len(policy_key_of)
                policy_key_of.append(policy_key)
            plan.append(group)
            first.setdefault(group, index)
        plans[nation] = (plan, first)
    # A cell's evaluation is its row's level and suspension with its resource's group; the first such
    # (row, resource) is evaluated, in one Cedar batch per policy set.
    representative: dict[tuple[int, bool, int], tuple[int, int]] = {}
    pairs: dict[frozenset[str], list[tuple[int, int]]] = defaultdict(list)
    for row, (tenant, level, _) in enumerate(rows):
        for group, index in plans[tenant.nation][1].items():
            evaluation = (_RANK[level], tenant.suspended, group)
            if evaluation not in representative:
                representative[evaluation] = (row, index)
                pairs[policy_key_of[group]].append((row, index))
    results: dict[tuple[int, int], Verdict | None] = {}
    for policy_key, batch in pairs.items():
        results.update(_evaluate(engine, policy_key, batch, rows, resources))
    cells = []
    for row, (tenant, level, user) in enumerate(rows):
        plan, first = plans[tenant.nation]
        # Per group: (allowed, deciding ids, why, whose verdict); None where cells are decided one by one.
        outcomes: dict[int, tuple[bool, tuple[str, ...], str, tuple[int, int]] | None] = {}
        for group in first:
            evaluated = representative[(_RANK[level], tenant.suspended, group)]
            found = results.get(evaluated)
            if found is None or found.error is not None:
                outcomes[group] = None
            else:
                deciding = tuple(sorted(set(found.deciding)))
                outcomes[group] = (found.allowed, deciding, found.why, evaluated)
        explained: dict[int, str] = {}
        for index, resource in enumerate(resources):
            group = plan[index]
            outcome = outcomes[group]
            if outcome is None:
                evaluated = representative[(_RANK[level], tenant.suspended, group)]
                found = results.get(evaluated)
                if found is not None and found.error is not None and evaluated == (row, index):
                    cells.append(_cell(tenant, level, resource, False, (), found.error))
                else:
                    cells.append(_decided_cell(engine, tenant, level, user, resource))
                continue
            allowed, deciding, why, _ = outcome
            if allowed:
                reason = PERMITTED
            elif deciding:
                reason = f"{resource.name}: {why}"
            else:  # explained for this row's user: the same for every resource of the group
                if group not in explained:
                    explained[group] = explain(user, resource)
                reason = f"{resource.name}: no policy permits it ({explained[group]})"
            cells.append(_cell(tenant, level, resource, allowed, deciding, reason))
    return cells


@dataclass(frozen=True)
class _Analysis:
    """What one policy set lets the matrix group.

    `resource_literals`: the nation literals resources' nation attributes are compared with, None if the
    set does not qualify for grouping resources (see `nation_literals`). `row_literals`: every string
    literal of the set, None unless rows of different nations may share evaluations: the set only
    compares strings for equality (no `like`, no extension function, no entity literal, no principal or
    resource scope naming an entity), so renaming two nations that are neither literals nor have rules
    (and their users' ids) changes no decision.
    """

    resource_literals: frozenset[str] | None
    row_literals: frozenset[str] | None

    @classmethod
    def of(cls, policies: str) -> _Analysis:
        resource_literals = nation_literals(policies)
        return cls(resource_literals, string_literals(policies) if resource_literals is not None else None)

    def group(self, nation: str, index: int, resource: Resource, rules: frozenset[str]) -> tuple[Any, ...]:
        """The key of `resource` for users of `nation`, without the policy set's."""
        if self.resource_literals is None:
            return (nation, "exact", index)
        merged = self.row_literals is not None and nation not in self.row_literals and nation not in rules
        row = OTHER_NATION if merged else nation
        return (row, *group_key(resource, self.resource_literals | {NATO}, nation))


def group_key(resource: Resource, kept: frozenset[str] | set[str], own: str | None = None) -> tuple[Any, ...]:
    """What the qualifying policies can see of a resource, for a user of nation `own`.

    Nations in `kept` stay as they are, `own` becomes SELF (so that users of other nations may share the
    key), and every other nation becomes one placeholder.
    """
    m = resource.markings

    def seen(nation: str) -> str:
        if nation == own:
            return SELF
        return nation if nation in kept else OTHER_NATION

    return (
        resource.kind,
        m.classification,
        tuple(m.compartments),
        seen(m.owner),
        frozenset(map(seen, m.releasable_to)),
        frozenset(map(seen, m.denied_nations)),
    )


def _static_policies(policies: str) -> list[dict[str, Any]] | None:
    """The policies' JSON form, static policies only; None when cedarpy cannot parse them or any is a
    template (a template's slots could name anything)."""
    try:
        parsed = json.loads(cedarpy.policies_to_json_str(policies))
    except Exception:  # noqa: BLE001 — cedarpy raises ValueError with the parser's message
        return None
    if parsed.get("templates") or parsed.get("templateLinks"):
        return None
    return list(parsed.get("staticPolicies", {}).values())


def nation_literals(policies: str) -> frozenset[str] | None:
    """The nation literals `policies` compare resources' nation attributes with; None if they do not qualify.

    They qualify when the resource's owner, releasableTo and deniedNations are used only as
    `resource.owner ==`/`!=` X and `resource.releasableTo`/`deniedNations`.contains(X), X being
    principal.nationality, principal.issuerNation or a string literal, the resource is otherwise seen only
    through classification, compartments, `is` and `has`, and no resource entity is named.
    """
    static = _static_policies(policies)
    if static is None:  # not understood, or templates: evaluate exactly
        return None
    literals: set[str] = set()
    for policy in static:
        scope = policy.get("resource", {})
        if scope.get("op") not in ("All", "is") or "in" in scope:
            return None
        if not _qualifies(policy.get("principal"), literals) or not _qualifies(
            policy.get("action"), literals
        ):
            return None
        for condition in policy.get("conditions", []):
            if not _qualifies(condition.get("body"), literals):
                return None
    return frozenset(literals)


_PLAIN_OPERATORS = frozenset(
    {"Value", "Var", "!", "neg", "==", "!=", "in", "<", "<=", ">", ">=", "&&", "||", "+", "-", "*"}
    | {"contains", "containsAll", "containsAny", "isEmpty", ".", "has", "is", "if-then-else", "Set", "Record"}
)


def string_literals(policies: str) -> frozenset[str] | None:
    """Every string literal of `policies`; None if they do more with strings than test them for equality.

    Also None if a literal could be a matrix user's id, and when a policy uses `like`, an extension
    function, a template, an entity literal, or a principal or resource scope naming an entity: then
    renaming a string the policies never mention could change a decision. (Action scopes name actions
    only, which are the same for every row.)
    """
    static = _static_policies(policies)
    if static is None:  # not understood, or templates: no renaming
        return None
    literals: set[str] = set()
    for policy in static:
        for scope in (policy.get("principal", {}), policy.get("resource", {})):
            if scope.get("op") not in ("All", "is") or "in" in scope:
                return None
        for condition in policy.get("conditions", []):
            if not _plain(condition.get("body"), literals):
                return None
    if any(MATRIX_USER_PREFIX in literal for literal in literals):
        return None
    return frozenset(literals)


def _plain(expression: Any, literals: set[str]) -> bool:
    if isinstance(expression, list):
        return all(_plain(item, literals) for item in expression)
    if not isinstance(expression, dict) or len(expression) != 1:
        return False
    ((op, arg),) = expression.items()
    if op not in _PLAIN_OPERATORS:
        return False
    if op == "Value":
        if isinstance(arg, str):
            literals.add(arg)
        return isinstance(arg, str | bool | int)  # no entity or extension value
    if op == "Var":
        return isinstance(arg, str)
    if op == "Record":
        return isinstance(arg, dict) and all(_plain(value, literals) for value in arg.values())
    if op == "Set":
        return _plain(arg, literals)
    if not isinstance(arg, dict):
        return False
    return all(_plain(value, literals) for key, value in arg.items() if key not in ("attr", "entity_type"))


def _qualifies(expression: Any, literals: set[str]) -> bool:
    if isinstance(expression, list):
        return all(_qualifies(item, literals) for item in expression)
    if not isinstance(expression, dict):
        return True
    if len(expression) != 1:
        return all(_qualifies(value, literals) for value in expression.values())
    ((op, arg),) = expression.items()
    if op == "Value":
        return True  # a literal: names no resource attribute (an entity literal alone decides nothing here)
    if op == "Var" and isinstance(arg, str):
        return arg != "resource"  # the resource itself, compared or tested for membership
    if op == "Record" and isinstance(arg, dict):
        return all(_qualifies(value, literals) for value in arg.values())
    if isinstance(arg, dict) and arg.get("left") == _RESOURCE:
        if op == ".":
            return arg.get("attr") in _EXACT_ATTRS
        if op == "has":
            return True  # every attribute is required by the schema
        if op == "is":
            return "in" not in arg
        return False
    if op in ("==", "!=") and isinstance(arg, dict):
        for side, other in ((arg.get("left"), arg.get("right")), (arg.get("right"), arg.get("left"))):
            if _is_resource_attr(side, ("owner",)):
                return _nation_operand(other, literals)
    if (
        op == "contains"
        and isinstance(arg, dict)
        and _is_resource_attr(arg.get("left"), ("releasableTo", "deniedNations"))
    ):
        return _nation_operand(arg.get("right"), literals)
    return _qualifies(arg, literals)


def _is_resource_attr(expression: Any, attrs: Sequence[str]) -> bool:
    if not isinstance(expression, dict) or set(expression) != {"."}:
        return False
    access = expression["."]
    return access.get("left") == _RESOURCE and access.get("attr") in attrs


def _nation_operand(expression: Any, literals: set[str]) -> bool:
    if expression in _NATION_OPERANDS:
        return True
    if isinstance(expression, dict) and set(expression) == {"Value"} and isinstance(expression["Value"], str):
        literals.add(expression["Value"])
        return True
    return False


def _evaluate(
    engine: PolicyEngine,
    policy_key: frozenset[str],
    batch: list[tuple[int, int]],
    rows: Sequence[tuple[MatrixTenant, Classification, Principal]],
    resources: Sequence[Resource],
) -> dict[tuple[int, int], Verdict | None]:
    """One Cedar batch; None for every pair when it fails (those cells are then decided one by one)."""
    try:
        policies, ids = engine.policy_set_for(policy_key)
        row_ids = sorted({row for row, _ in batch})
        resource_ids = sorted({index for _, index in batch})
        entities = cedarpy.Entities.from_json_str(
            "["
            + ",".join(
                [json.dumps(principal_entity(rows[row][2])) for row in row_ids]
                + [engine.resource_entity_json(resources[index]) for index in resource_ids]
            )
            + "]",
            engine.schema,
        )
        user_uids = {row: principal_uid(rows[row][2]) for row in row_ids}
        requests = [
            {
                "principal": user_uids[row],
                "action": action_uid(ACTION_FOR_KIND[resources[index].kind]),
                "resource": resource_uid(resources[index]),
                "context": NO_CONTEXT,
            }
            for row, index in batch
        ]
        answers = cedarpy.is_authorized_batch(requests, policies, entities, engine.schema)
        return {
            (row, index): verdict(rows[row][2], resources[index], answer, ids)
            for (row, index), answer in zip(batch, answers, strict=True)
        }
    except Exception:  # noqa: BLE001 — fail closed by deciding these cells through engine.decide
        return dict.fromkeys(batch)


def _cell(
    tenant: MatrixTenant,
    level: Classification,
    resource: Resource,
    allowed: bool,
    deciding: tuple[str, ...],
    reason: str,
) -> MatrixCell:
    # tuple.__new__ with the fields in order: the NamedTuple without its keyword handling (per cell, hot)
    return _new_cell(
        MatrixCell, (tenant.nation, level, resource.name, resource.kind, allowed, deciding, reason)
    )


_new_cell = tuple.__new__


def _decided_cell(
    engine: PolicyEngine, tenant: MatrixTenant, level: Classification, user: Principal, resource: Resource
) -> MatrixCell:
    decision = engine.decide(user, ACTION_FOR_KIND[resource.kind], [resource])
    return MatrixCell(
        nation=tenant.nation,
        clearance=level,
        resource=resource.name,
        kind=resource.kind,
        allowed=decision.allowed,
        deciding_policy_ids=tuple(decision.deciding_policy_ids),
        reason="; ".join(decision.reasons),
    )
