"""Privilege escalation prevention on writes of Roles, ClusterRoles and their bindings.

# k8s docs: /docs/reference/access-authn-authz/rbac/#privilege-escalation-prevention-and-bootstrapping
- A Role or ClusterRole is written only by a user who holds every permission in it (in the Role's namespace,
  or cluster-wide), or who may `escalate` it; an aggregationRule needs full authority (cluster-admin).
- A binding is written only by a user who may `bind` the referenced role, or who holds its permissions.
- `system:masters` is exempt (kube's EscalationAllowed).
Runs as an admission step on the final object, so patches and applies are checked like creates.
"""

from __future__ import annotations

from typing import Any

from sovereign_devstack.kube import errors, rbac
from sovereign_devstack.kube.admission import CURRENT_USER
from sovereign_devstack.kube.resource_types import ResourceType

ROLE_KINDS = {rbac.ROLES, rbac.CLUSTER_ROLES}
BINDING_KINDS = {rbac.ROLE_BINDINGS, rbac.CLUSTER_ROLE_BINDINGS}


SERVER_FIELDS = ("ownerReferences", "finalizers", "resourceVersion", "managedFields", "generation")


def _only_gc_fields_differ(old: dict[str, Any], new: dict[str, Any]) -> bool:
    def without(obj: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_FIELDS}
        return {**obj, "metadata": meta}

    return without(old) == without(new)


class EscalationCheck:
    def __init__(self, authorizer: rbac.RBACAuthorizer) -> None:
        self.authorizer = authorizer

    async def review(
        self,
        operation: str,
        rt: ResourceType,
        version: str,
        subresource: str | None,
        new: dict[str, Any] | None,
        old: dict[str, Any] | None,
        dry_run: bool,
    ) -> None:
        if new is None or operation not in ("CREATE", "UPDATE") or rt.key not in ROLE_KINDS | BINDING_KINDS:
            return
        user = CURRENT_USER.get()
        if rbac.SUPERUSER_GROUP in (user.get("groups") or []):
            return
        if old is not None and _only_gc_fields_differ(old, new):
            return  # kube's IsOnlyMutatingGCFields: the garbage collector may always do its part
        meta = new.get("metadata") or {}
        namespace = meta.get("namespace") or ""
        name = meta.get("name") or ""
        if rt.key in ROLE_KINDS:
            self._check_role(user, rt, namespace, name, new, old)
        else:
            self._check_binding(user, rt, namespace, name, new)

    def _allowed(self, user: dict[str, Any], verb: str, plural: str, namespace: str, name: str) -> bool:
        attrs = rbac.Attributes(
            verb=verb, namespace=namespace, api_group=rbac.RBAC_GROUP, resource=plural, name=name
        )
        return self.authorizer.authorize(user, attrs)

    def _confirm_no_escalation(
        self, user: dict[str, Any], rt: ResourceType, namespace: str, name: str, rules: list[dict[str, Any]]
    ) -> None:
        missing = rbac.missing_rules(self.authorizer.rules_for(user, namespace), rules)
        if not missing:
            return
        groups = " ".join(f'"{g}"' for g in user.get("groups") or [])
        lines = "\n".join(sorted({rbac.compact_string(rule) for rule in missing}))
        raise errors.forbidden(
            rt.group,
            rt.plural,
            name,
            f'user "{user.get("username", "")}" (groups=[{groups}]) is attempting to grant RBAC permissions '
            f"not currently held:\n{lines}",
        )

    def _check_role(
        self,
        user: dict[str, Any],
        rt: ResourceType,
        namespace: str,
        name: str,
        new: dict[str, Any],
        old: dict[str, Any] | None,
    ) -> None:
        if self._allowed(user, "escalate", rt.plural, namespace, name):
            return
        self._confirm_no_escalation(user, rt, namespace, name, list(new.get("rules") or []))
        # An aggregationRule can gather anything: it needs full authority.
        if new.get("aggregationRule") and rbac.missing_rules(
            self.authorizer.rules_for(user, namespace), rbac.FULL_AUTHORITY
        ):
            raise errors.forbidden(
                rt.group, rt.plural, name, "must have cluster-admin privileges to use the aggregationRule"
            )

    def _check_binding(
        self, user: dict[str, Any], rt: ResourceType, namespace: str, name: str, new: dict[str, Any]
    ) -> None:
        ref = new.get("roleRef") or {}
        role_plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
        if self._allowed(user, "bind", role_plural, namespace, ref.get("name", "")):
            return
        rules = self.authorizer.role_ref_rules(ref, namespace)
        if rules is None:
            raise errors.not_found(rbac.RBAC_GROUP, role_plural, ref.get("name", ""))
        self._confirm_no_escalation(user, rt, namespace, name, rules)
