"""What a client did (the devstack's audit log) against what RBAC grants it (the chart's rendered roles).

A call is one audit event reduced to what RBAC authorizes: API group, resource (with `/subresource`, as RBAC
names subresources: "Referring to resources"), verb ("Determine the Request Verb"), namespace and name.
A grant is one (group, resource, verb) of a rule, with the rule's resourceNames and, for a Role, the
namespace it is in; a ClusterRole bound by a ClusterRoleBinding grants in every namespace.

k8s docs: /docs/reference/access-authn-authz/rbac/#referring-to-resources
k8s docs: /docs/reference/access-authn-authz/authorization/#determine-the-request-verb
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"


@dataclass(frozen=True, order=True)
class Call:
    group: str
    resource: str  # "tenants" or "tenants/status"
    verb: str
    namespace: str | None
    name: str | None

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.verb} {self.group or 'core'}/{self.resource}{where}"


@dataclass(frozen=True, order=True)
class Grant:
    group: str
    resource: str
    verb: str
    namespace: str | None  # None: cluster-wide (ClusterRole)
    resource_names: tuple[str, ...] = ()

    def allows(self, call: Call) -> bool:
        return (
            (self.group, self.resource, self.verb) == (call.group, call.resource, call.verb)
            and (self.namespace is None or self.namespace == call.namespace)
            and (not self.resource_names or call.name in self.resource_names)
        )

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else " (cluster)"
        names = f" names={list(self.resource_names)}" if self.resource_names else ""
        return f"{self.verb} {self.group or 'core'}/{self.resource}{where}{names}"


def calls_by_credential(audit_log: Path, credential_id: str, offset: int = 0) -> set[Call]:
    """The calls made with one credential (a ServiceAccount token's `JTI=...`), from byte `offset` on."""
    with audit_log.open("rb") as log:
        log.seek(offset)
        lines = log.read().splitlines()
    calls = set()
    for line in lines:
        event = json.loads(line)
        if credential_id not in (event["user"].get("extra") or {}).get(CREDENTIAL_ID, []):
            continue
        ref = event["objectRef"]
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        calls.add(Call(ref["apiGroup"], resource, event["verb"], ref.get("namespace"), ref.get("name")))
    return calls


def grants_of(objects: Iterable[dict[str, Any]], subject: dict[str, str]) -> set[Grant]:
    """Everything the bindings in `objects` grant `subject` through the roles in `objects`."""
    objects = list(objects)
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}
    grants: set[Grant] = set()
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(_same_subject(s, subject, binding) for s in binding.get("subjects") or []):
            continue
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        role_namespace = namespace if ref["kind"] == "Role" else None
        role = roles.get((ref["kind"], role_namespace, ref["name"]))
        assert role is not None, f"{binding['kind']} {binding['metadata']['name']} refers to a missing {ref}"
        for rule in role.get("rules") or []:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        names = tuple(rule.get("resourceNames") or ())
                        grants.add(Grant(group, resource, verb, namespace, names))
    return grants


def _same_subject(entry: dict[str, str], subject: dict[str, str], binding: dict[str, Any]) -> bool:
    namespace = entry.get("namespace") or binding["metadata"].get("namespace")
    return (entry["kind"], entry["name"], namespace) == tuple(
        subject[k] for k in ("kind", "name", "namespace")
    )


def wildcards(objects: Iterable[dict[str, Any]]) -> list[str]:
    found = []
    for obj in objects:
        for rule in obj.get("rules") or []:
            for field in ("apiGroups", "resources", "verbs", "nonResourceURLs"):
                if any("*" in value for value in rule.get(field) or []):
                    found.append(f"{obj['kind']} {obj['metadata']['name']}: {field} {rule[field]}")
    return found


def missing_and_unused(calls: set[Call], grants: set[Grant]) -> tuple[list[Call], list[Grant]]:
    """Calls no grant allows, and grants that allowed no call."""
    missing = sorted(call for call in calls if not any(grant.allows(call) for grant in grants))
    unused = sorted(grant for grant in grants if not any(grant.allows(call) for call in calls))
    return missing, unused
