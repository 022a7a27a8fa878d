"""The access matrix: for every tenant, every clearance level it may grant and every resource, the decision.

A row's user is the tenant's own (nationality = issuer nation = the tenant's), at one clearance level up to
the tenant's clearance, holding the compartments and groups asked for. Models are decided for `invoke`,
datasets for `read`. Decisions come from the same Cedar policies, schema and reasons as `engine.decide`, so
the matrix shows exactly what the gateway enforces (`exhaustive_matrix` decides every cell through it).

Fast and sound: each cell is evaluated against the policies `engine.decide` would use (the base plus the
rules of the nations involved: the tenant's and the resource owner's), one Cedar batch per policy set with
entities parsed and validated against the schema once. Cells that no policy can tell apart share one
evaluation (`matrix_grouping`):
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

from sovereign.domain.markings import Classification, Principal, Resource, ResourceKind
from sovereign.policy.engine import NO_CONTEXT, PolicyEngine
from sovereign.policy.matrix_grouping import MATRIX_USER_PREFIX, PolicySetAnalysis
from sovereign.policy.schema import action_uid, principal_entity, principal_uid, resource_uid
from sovereign.policy.verdict import Verdict, explain, verdict

ACTION_FOR_KIND = {ResourceKind.model: "invoke", ResourceKind.dataset: "read"}
PERMITTED = "permitted for 1 resource(s)"  # decide's reason for one allowed resource
_RANK = {level: level.rank for level in Classification}


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
        issuer_nation=tenant.nation,
        tenant_suspended=tenant.suspended,
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
    cells: list[MatrixCell] = []
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
    analyses: dict[frozenset[str], PolicySetAnalysis] = {}
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
                analysis = analyses[policy_key] = PolicySetAnalysis.of(engine.bundle.policies_for(policy_key))
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
