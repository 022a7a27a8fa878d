"""Whether an admission rule (operations, apiGroups, apiVersions, resources, scope) matches a request: the
same matching for webhooks and for ValidatingAdmissionPolicies' resourceRules.

# k8s docs: /docs/reference/access-authn-authz/extensible-admission-controllers/#matching-requests-rules
"""

from __future__ import annotations

from typing import Any

from sovereign_devstack.kube.resource_types import ResourceType


def matches_rule(
    rule: dict[str, Any], operation: str, rt: ResourceType, version: str, subresource: str | None
) -> bool:
    ops = rule.get("operations") or []
    if "*" not in ops and operation not in ops:
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and rt.group not in groups:
        return False
    versions = rule.get("apiVersions") or []
    if "*" not in versions and version not in versions:
        return False
    target = f"{rt.plural}/{subresource}" if subresource else rt.plural
    resource_ok = False
    for pattern in rule.get("resources") or []:
        res, _, sub = pattern.partition("/")
        if (
            pattern == "*/*"
            or pattern == target
            or not sub
            and res == "*"
            and not subresource
            or sub
            and res == "*"
            and sub == subresource
            or sub == "*"
            and res == rt.plural
            and subresource
        ):
            resource_ok = True
    scope = rule.get("scope") or "*"
    scope_ok = scope == "*" or (scope == "Namespaced") == rt.namespaced
    return resource_ok and scope_ok
