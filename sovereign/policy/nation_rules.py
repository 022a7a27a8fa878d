"""A nation's own Cedar rules (a TenantPolicy): what may join the bundle, as pure functions.

A nation may only `forbid`, or `permit` on resources it owns. "Owns" is checked on the text: every permit
must hold `resource.owner == "<NATION>"` as one of the `&&`-joined terms of a `when` clause, so the permit
can never match another nation's resource. Clearance and compartments still hold for such a permit: the base
bundle forbids below either (markings/limit-clearance, markings/limit-compartments). Everything must also
validate against the schema generated from the domain model.

Ids: every policy needs an `@id`; in the bundle it becomes `<nation lowercase>/<TenantPolicy name>/<id>`, so
a decision names the nation and the object that decided it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import cedarpy

from sovereign.domain.nations import nation_rule_prefix
from sovereign.policy.schema import render_schema

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def problems_with_nation_rules(nation: str, cedar: str, schema: str | None = None) -> list[str]:
    """Everything that keeps `cedar` out of `nation`'s rules, each naming the policy; [] when acceptable."""
    try:
        parsed = json.loads(cedarpy.policies_to_json_str(cedar))
    except Exception as error:  # noqa: BLE001 — cedarpy raises ValueError with the parser's message
        return [f"not valid Cedar: {error}"]
    problems: list[str] = []
    if parsed.get("templates"):
        problems.append("templates (policies with ?principal or ?resource slots) are not accepted")
    policies: dict[str, Any] = parsed.get("staticPolicies", {})
    if not policies:
        return [*problems, "holds no policy"]
    seen: set[str] = set()
    for generated_id, policy in _in_source_order(policies):
        annotations = policy.get("annotations") or {}
        policy_id = annotations.get("id")
        name = f"policy {policy_id!r}" if policy_id else f"policy #{int(generated_id[6:]) + 1}"
        if not policy_id:
            problems.append(f'{name}: needs an @id("...") annotation')
        elif not ID_PATTERN.match(policy_id):
            problems.append(f"{name}: @id must be 1-63 letters, digits, '.', '_' or '-'")
        elif policy_id in seen:
            problems.append(f"{name}: @id is used twice")
        seen.add(policy_id or generated_id)
        if policy["effect"] == "permit" and not _requires_owner(policy, nation):
            problems.append(
                f"{name}: a nation may only forbid, or permit on resources it owns: add "
                f'`resource.owner == "{nation}"` to its when clause'
            )
    if problems:
        return problems
    result = cedarpy.validate_policies(cedar, schema if schema is not None else render_schema())
    if not result.validation_passed:
        ids = {gid: (p.get("annotations") or {}).get("id", gid) for gid, p in policies.items()}
        for validation_error in result.errors:
            text = str(validation_error)
            match = re.match(r"\[(policy\d+)\]", text)
            if match:
                text = f"policy {ids.get(match.group(1), match.group(1))!r}: " + _schema_message(text)
            problems.append(f"does not validate against the schema: {text}")
    return problems


def qualified_rules(nation: str, policy_name: str, cedar: str) -> str:
    """The rules with each `@id` prefixed `<nation>/<policy_name>/`; call only on accepted rules."""
    parsed = json.loads(cedarpy.policies_to_json_str(cedar))
    for policy in parsed.get("staticPolicies", {}).values():
        annotations = policy.setdefault("annotations", {})
        annotations["id"] = f"{nation_rule_prefix(nation)}{policy_name}/{annotations['id']}"
    return cedarpy.policies_from_json_str(json.dumps(parsed))


def nation_bundle_rules(nation: str, policies: Iterable[tuple[str, str]]) -> str:
    """One nation's accepted TenantPolicies, (name, cedar) pairs, as the bundle's text for that nation."""
    return "\n".join(qualified_rules(nation, name, cedar) for name, cedar in sorted(policies))


def _in_source_order(policies: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return sorted(policies.items(), key=lambda item: int(item[0].removeprefix("policy")))


def _requires_owner(policy: Mapping[str, Any], nation: str) -> bool:
    """Whether some `when` clause holds `resource.owner == "<nation>"` as an `&&` term."""
    for condition in policy.get("conditions", []):
        if condition.get("kind") == "when" and any(
            _is_owner_test(term, nation) for term in _conjuncts(condition["body"])
        ):
            return True
    return False


def _conjuncts(expression: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if "&&" in expression:
        return _conjuncts(expression["&&"]["left"]) + _conjuncts(expression["&&"]["right"])
    return [expression]


def _is_owner_test(term: Mapping[str, Any], nation: str) -> bool:
    if "==" not in term:
        return False
    owner = {".": {"left": {"Var": "resource"}, "attr": "owner"}}
    sides = (term["=="]["left"], term["=="]["right"])
    return owner in sides and {"Value": nation} in sides


def _schema_message(text: str) -> str:
    return re.sub(r"^\[policy\d+\] for policy `policy\d+`, ", "", text)
