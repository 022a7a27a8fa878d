"""Which cells of the access matrix no policy can tell apart, read from a policy set's JSON form.

`access_matrix` evaluates one cell per group: resources whose nation-valued attributes differ only in nations
the policies never name (`nation_literals`, `group_key`), and rows of nations that neither have rules nor are
named (`string_literals`). `PolicySetAnalysis` holds both answers for one policy set.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cedarpy

from sovereign.domain.markings import NATO, Resource

MATRIX_USER_PREFIX = "access-matrix/"  # the matrix users' ids: no literal of a set whose rows are grouped
OTHER_NATION = "*"  # stands for every nation code no evaluated policy tells apart (not a valid code)
SELF = "="  # stands for the user's own nation (not a valid code)

_RESOURCE = {"Var": "resource"}
_NATION_OPERANDS = (
    {".": {"left": {"Var": "principal"}, "attr": "nationality"}},
    {".": {"left": {"Var": "principal"}, "attr": "issuerNation"}},
)
_EXACT_ATTRS = frozenset({"classification", "compartments"})  # part of a group's key as they are


@dataclass(frozen=True)
class PolicySetAnalysis:
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
    def of(cls, policies: str) -> PolicySetAnalysis:
        return _analysis(policies)

    def group(self, nation: str, index: int, resource: Resource, rules: frozenset[str]) -> tuple[Any, ...]:
        """The key of `resource` for users of `nation`, without the policy set's."""
        if self.resource_literals is None:
            return (nation, "exact", index)
        merged = self.row_literals is not None and nation not in self.row_literals and nation not in rules
        row = OTHER_NATION if merged else nation
        return (row, *group_key(resource, self.resource_literals | {NATO}, nation))


@functools.lru_cache(maxsize=256)  # pure in the policies' text; a verification asks for each set many times
def _analysis(policies: str) -> PolicySetAnalysis:
    resource_literals = nation_literals(policies)
    return PolicySetAnalysis(
        resource_literals, string_literals(policies) if resource_literals is not None else None
    )


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
