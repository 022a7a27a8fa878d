"""Authorization: kube-apiserver's RBAC authorizer (with its `system:masters` superuser group) over the stored
Roles, ClusterRoles, RoleBindings and ClusterRoleBindings.

# k8s docs: /docs/reference/access-authn-authz/rbac/
# k8s docs: /docs/reference/access-authn-authz/authorization/#determine-the-request-verb
The rule matching, the forbidden message and the escalation check follow kube's plugin/pkg/auth/authorizer/
rbac and pkg/registry/rbac/validation, so that clients see the same decisions and the same texts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sovereign_devstack.kube import errors, selectors
from sovereign_devstack.kube.audit_log import request_verb
from sovereign_devstack.kube.request_routing import ResourcePath
from sovereign_devstack.kube.store import Store

RBAC_GROUP = "rbac.authorization.k8s.io"
ROLES = (RBAC_GROUP, "roles")
CLUSTER_ROLES = (RBAC_GROUP, "clusterroles")
ROLE_BINDINGS = (RBAC_GROUP, "rolebindings")
CLUSTER_ROLE_BINDINGS = (RBAC_GROUP, "clusterrolebindings")
SUPERUSER_GROUP = "system:masters"  # kube's privileged group authorizer: allowed everything
FULL_AUTHORITY = [
    {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
    {"verbs": ["*"], "nonResourceURLs": ["*"]},
]


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do (kube's authorizer.Attributes)."""

    verb: str
    resource_request: bool = True
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""  # non-resource requests only


def request_attributes(
    method: str, path: str, resource_path: ResourcePath | None, params: dict[str, str]
) -> Attributes:
    """The attributes kube's RequestInfoFactory reads from a request. Discovery paths (/api, /apis/<g>/<v>)
    are non-resource requests; a non-resource verb is the lowercased HTTP method."""
    if resource_path is None or resource_path.plural is None:
        return Attributes(verb=method.lower(), resource_request=False, path=path)
    verb = request_verb(method, resource_path, params)
    name = resource_path.name or ""
    if verb in ("list", "watch") and not name:
        # "list/watch with a fieldSelector metadata.name=<n>" is authorized as a request for <n>
        # (k8s docs: /docs/reference/access-authn-authz/rbac/#referring-to-resources).
        for requirement in (params.get("fieldSelector") or "").split(","):
            field, _, value = requirement.strip().replace("==", "=").partition("=")
            if field == "metadata.name" and value:
                name = value
    namespace = resource_path.namespace or ""
    if resource_path.plural == "namespaces" and resource_path.group == "" and resource_path.name:
        namespace = resource_path.name  # /api/v1/namespaces/<n> is in the namespace <n>
    return Attributes(
        verb=verb,
        namespace=namespace,
        api_group=resource_path.group,
        api_version=resource_path.version,
        resource=resource_path.plural,
        subresource=resource_path.subresource or "",
        name=name,
    )


# ---- rule matching (kube's rbac/v1 helpers)
def _resource_matches(rule: dict[str, Any], combined: str, subresource: str) -> bool:
    for resource in rule.get("resources") or []:
        if resource in ("*", combined):
            return True
        if subresource and resource == "*/" + subresource:
            return True
    return False


def _url_matches(rule: dict[str, Any], path: str) -> bool:
    for url in rule.get("nonResourceURLs") or []:
        if url in ("*", path) or (url.endswith("*") and path.startswith(url.rstrip("*"))):
            return True
    return False


def rule_allows(rule: dict[str, Any], attrs: Attributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.resource_request:
        return _url_matches(rule, attrs.path)
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attrs.api_group not in groups:
        return False
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    if not _resource_matches(rule, combined, attrs.subresource):
        return False
    names = rule.get("resourceNames") or []
    # An empty request name (create, list without a name selector) never matches a resourceNames rule.
    return not names or attrs.name in names


def applies_to(subject: dict[str, Any], user: dict[str, Any], binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return bool(user.get("username") == name)
    if kind == "Group":
        return name in (user.get("groups") or [])
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and user.get("username") == f"system:serviceaccount:{namespace}:{name}"
    return False


class RBACAuthorizer:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _cluster_role_rules(self, name: str, seen: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
        role = self.store.get(CLUSTER_ROLES, None, name)
        if role is None or name in seen:
            return []
        rules = list(role.get("rules") or [])
        # Aggregated ClusterRoles hold the rules of every ClusterRole their selectors match
        # (k8s docs: /docs/reference/access-authn-authz/rbac/#aggregated-clusterroles).
        for selector in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
            matches = selectors.match_label_selector_object(selector)
            for other in self.store.list(CLUSTER_ROLES):
                other_name = other["metadata"]["name"]
                if other_name != name and matches(other["metadata"].get("labels") or {}):
                    rules += self._cluster_role_rules(other_name, seen | {name})
        return rules

    def role_ref_rules(self, ref: dict[str, Any], namespace: str) -> list[dict[str, Any]] | None:
        """The rules a binding's roleRef grants; None if the role does not exist."""
        if ref.get("kind") == "ClusterRole":
            if self.store.get(CLUSTER_ROLES, None, ref.get("name", "")) is None:
                return None
            return self._cluster_role_rules(ref.get("name", ""))
        if ref.get("kind") == "Role" and namespace:
            role = self.store.get(ROLES, namespace, ref.get("name", ""))
            return None if role is None else list(role.get("rules") or [])
        return None

    def _rules(self, user: dict[str, Any], namespace: str) -> Iterator[dict[str, Any]]:
        """Every rule granted to `user` in `namespace` ("" : cluster-wide only), as kube's VisitRulesFor."""
        for binding in self.store.list(CLUSTER_ROLE_BINDINGS):
            if any(applies_to(s, user, "") for s in binding.get("subjects") or []):
                yield from self._cluster_role_rules((binding.get("roleRef") or {}).get("name", ""))
        if not namespace:
            return
        for binding in self.store.list(ROLE_BINDINGS, namespace):
            if any(applies_to(s, user, namespace) for s in binding.get("subjects") or []):
                yield from self.role_ref_rules(binding.get("roleRef") or {}, namespace) or []

    def rules_for(self, user: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
        return list(self._rules(user, namespace))

    def authorize(self, user: dict[str, Any], attrs: Attributes) -> bool:
        if SUPERUSER_GROUP in (user.get("groups") or []):
            return True
        return any(rule_allows(rule, attrs) for rule in self._rules(user, attrs.namespace))


def forbidden_message(user: dict[str, Any], attrs: Attributes) -> str:
    """kube's `forbiddenMessage` (apiserver/pkg/endpoints/handlers/responsewriters)."""
    username = user.get("username", "")
    if not attrs.resource_request:
        return f'User "{username}" cannot {attrs.verb} path "{attrs.path}"'
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    group = attrs.api_group
    return f'User "{username}" cannot {attrs.verb} resource "{resource}" in API group "{group}" {where}'


def forbidden(user: dict[str, Any], attrs: Attributes, reason: str = "") -> errors.StatusError:
    """The 403 Status kube-apiserver answers a refused request with (apierrors.NewForbidden)."""
    why = forbidden_message(user, attrs) + (f": {reason}" if reason else "")
    if not attrs.resource_request:
        return errors.StatusError(403, "Forbidden", f"forbidden: {why}", {})
    qualified = errors.qualified(attrs.api_group, attrs.resource)
    details: dict[str, Any] = {"kind": attrs.resource}
    if attrs.api_group:
        details["group"] = attrs.api_group
    if attrs.name:
        details["name"] = attrs.name
        return errors.StatusError(
            403, "Forbidden", f'{qualified} "{attrs.name}" is forbidden: {why}', details
        )
    return errors.StatusError(403, "Forbidden", f"{qualified} is forbidden: {why}", details)


# ---- does one set of rules cover another (kube's pkg/registry/rbac/validation `Covers`)
def _breakdown(rule: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A rule split into rules of one verb, group, resource and name (or one verb and one URL)."""
    for verb in rule.get("verbs") or []:
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                names = rule.get("resourceNames") or []
                for name in names or [None]:
                    single: dict[str, Any] = {"verbs": [verb], "apiGroups": [group], "resources": [resource]}
                    if name is not None:
                        single["resourceNames"] = [name]
                    yield single
        for url in rule.get("nonResourceURLs") or []:
            yield {"verbs": [verb], "nonResourceURLs": [url]}


def _has_all(owner: list[str], wanted: list[str]) -> bool:
    return "*" in owner or all(w in owner for w in wanted)


def _resources_covered(owner: list[str], wanted: list[str]) -> bool:
    if "*" in owner:
        return True
    for resource in wanted:
        if resource in owner:
            continue
        if "/" not in resource or "*/" + resource.split("/", 1)[1] not in owner:
            return False
    return True


def _urls_covered(owner: list[str], wanted: list[str]) -> bool:
    return all(any(_url_matches({"nonResourceURLs": [o]}, w) for o in owner) for w in wanted)


def _rule_covers(owner: dict[str, Any], sub: dict[str, Any]) -> bool:
    owner_names = owner.get("resourceNames") or []
    sub_names = sub.get("resourceNames") or []
    names_ok = not owner_names or (bool(sub_names) and all(n in owner_names for n in sub_names))
    return (
        _has_all(owner.get("verbs") or [], sub.get("verbs") or [])
        and (_has_all(owner.get("apiGroups") or [], sub.get("apiGroups") or []))
        and _resources_covered(owner.get("resources") or [], sub.get("resources") or [])
        and _urls_covered(owner.get("nonResourceURLs") or [], sub.get("nonResourceURLs") or [])
        and names_ok
    )


def missing_rules(owner: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The single-permission rules of `wanted` that no rule of `owner` covers."""
    return [
        single
        for rule in wanted
        for single in _breakdown(rule)
        if not any(_rule_covers(o, single) for o in owner)
    ]


def compact_string(rule: dict[str, Any]) -> str:
    """kube's rbacv1helpers.CompactString: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`."""
    fields = [
        ("APIGroups", "apiGroups"),
        ("Resources", "resources"),
        ("ResourceNames", "resourceNames"),
        ("NonResourceURLs", "nonResourceURLs"),
        ("Verbs", "verbs"),
    ]
    parts = []
    for label, key in fields:
        if rule.get(key):
            parts.append(label + ":[" + " ".join(f'"{v}"' for v in rule[key]) + "]")
    return "{" + ", ".join(parts) + "}"
