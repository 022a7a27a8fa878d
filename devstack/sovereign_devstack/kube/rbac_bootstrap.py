"""The default roles and bindings kube-apiserver creates at start when they are absent.

# k8s docs: /docs/reference/access-authn-authz/rbac/#default-roles-and-role-bindings
(The user-facing admin/edit/view are aggregated from the `system:aggregate-to-*` roles, as in kube, so a
CRD's own ClusterRoles labelled `rbac.authorization.k8s.io/aggregate-to-view: "true"` join them; their
rules are the commonly used part of kube's bootstrap policy.)
"""

from __future__ import annotations

from typing import Any

from sovereign_devstack.kube import rbac
from sovereign_devstack.kube.store import Store, new_uid, now_rfc3339

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
DISCOVERY_URLS = [
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
    "/version/",
]
PUBLIC_INFO_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]
ISSUER_DISCOVERY_URLS = [
    "/.well-known/openid-configuration",
    "/.well-known/openid-configuration/",
    "/openid/v1/jwks",
    "/openid/v1/jwks/",
]
WORKLOADS = {
    "apps": [
        "daemonsets",
        "deployments",
        "deployments/scale",
        "replicasets",
        "replicasets/scale",
        "statefulsets",
        "statefulsets/scale",
    ],
    "autoscaling": ["horizontalpodautoscalers"],
    "batch": ["cronjobs", "jobs"],
    "policy": ["poddisruptionbudgets"],
    "networking.k8s.io": ["ingresses", "networkpolicies"],
}
CORE_VIEW = [
    "configmaps",
    "endpoints",
    "persistentvolumeclaims",
    "pods",
    "replicationcontrollers",
    "replicationcontrollers/scale",
    "serviceaccounts",
    "services",
    "bindings",
    "events",
    "limitranges",
    "namespaces",
    "namespaces/status",
    "pods/log",
    "pods/status",
    "resourcequotas",
    "resourcequotas/status",
    "services/status",
]
CORE_EDIT = [
    "configmaps",
    "endpoints",
    "persistentvolumeclaims",
    "pods",
    "pods/attach",
    "pods/exec",
    "pods/portforward",
    "pods/proxy",
    "replicationcontrollers",
    "replicationcontrollers/scale",
    "secrets",
    "serviceaccounts",
    "services",
    "services/proxy",
    "events",
]


def _rule(verbs: list[str], groups: list[str], resources: list[str]) -> dict[str, Any]:
    return {"verbs": verbs, "apiGroups": groups, "resources": resources}


def _urls(verbs: list[str], urls: list[str]) -> dict[str, Any]:
    return {"verbs": verbs, "nonResourceURLs": urls}


def _aggregate_label(target: str) -> dict[str, str]:
    return {f"rbac.authorization.k8s.io/aggregate-to-{target}": "true"}


def cluster_roles() -> list[tuple[str, list[dict[str, Any]], dict[str, Any] | None, dict[str, str]]]:
    """(name, rules, aggregationRule, labels) of each default ClusterRole."""
    view = [_rule(READ, [""], CORE_VIEW)] + [_rule(READ, [g], rs) for g, rs in WORKLOADS.items()]
    view.append(_rule(READ, ["discovery.k8s.io"], ["endpointslices"]))
    edit = [
        _rule(WRITE, [""], CORE_EDIT),
        _rule(READ, [""], ["secrets"]),
        _rule(["impersonate"], [""], ["serviceaccounts"]),
        _rule(["create"], [""], ["serviceaccounts/token"]),
    ]
    edit += [_rule(WRITE, [g], rs) for g, rs in WORKLOADS.items()]
    admin = [
        _rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
        _rule(READ + WRITE, [rbac.RBAC_GROUP], ["rolebindings", "roles"]),
    ]

    def aggregated(*targets: str) -> dict[str, Any]:
        return {"clusterRoleSelectors": [{"matchLabels": _aggregate_label(t)} for t in targets]}

    return [
        ("cluster-admin", rbac.FULL_AUTHORITY, None, {}),
        ("admin", [], aggregated("admin"), {}),
        ("edit", [], aggregated("edit"), _aggregate_label("admin")),
        ("view", [], aggregated("view"), {**_aggregate_label("edit")}),
        ("system:aggregate-to-admin", admin, None, _aggregate_label("admin")),
        ("system:aggregate-to-edit", edit, None, _aggregate_label("edit")),
        ("system:aggregate-to-view", view, None, _aggregate_label("view")),
        ("system:discovery", [_urls(["get"], DISCOVERY_URLS)], None, {}),
        ("system:public-info-viewer", [_urls(["get"], PUBLIC_INFO_URLS)], None, {}),
        (
            "system:basic-user",
            [
                _rule(
                    ["create"],
                    ["authorization.k8s.io"],
                    ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                _rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
            ],
            None,
            {},
        ),
        (
            "system:auth-delegator",
            [
                _rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
                _rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
            ],
            None,
            {},
        ),
        ("system:service-account-issuer-discovery", [_urls(["get"], ISSUER_DISCOVERY_URLS)], None, {}),
    ]


def cluster_role_bindings() -> list[tuple[str, str, list[str]]]:
    """(binding and role name, role name, groups bound) of each default ClusterRoleBinding."""
    return [
        ("cluster-admin", "cluster-admin", ["system:masters"]),
        ("system:discovery", "system:discovery", ["system:authenticated"]),
        ("system:basic-user", "system:basic-user", ["system:authenticated"]),
        (
            "system:public-info-viewer",
            "system:public-info-viewer",
            ["system:authenticated", "system:unauthenticated"],
        ),
        (
            "system:service-account-issuer-discovery",
            "system:service-account-issuer-discovery",
            ["system:serviceaccounts"],
        ),
    ]


def _metadata(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "uid": new_uid(),
        "creationTimestamp": now_rfc3339(),
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults", **labels},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    }


def ensure_bootstrap_policy(store: Store) -> None:
    """Create each default ClusterRole and ClusterRoleBinding that is not stored yet."""
    for name, rules, aggregation, labels in cluster_roles():
        if store.get(rbac.CLUSTER_ROLES, None, name) is None:
            role: dict[str, Any] = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": _metadata(name, labels),
                "rules": rules,
            }
            if aggregation is not None:
                role["aggregationRule"] = aggregation
            store.put(rbac.CLUSTER_ROLES, role, "ADDED")
    for name, role_name, groups in cluster_role_bindings():
        if store.get(rbac.CLUSTER_ROLE_BINDINGS, None, name) is None:
            binding = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": _metadata(name, {}),
                "roleRef": {"apiGroup": rbac.RBAC_GROUP, "kind": "ClusterRole", "name": role_name},
                "subjects": [{"apiGroup": rbac.RBAC_GROUP, "kind": "Group", "name": g} for g in groups],
            }
            store.put(rbac.CLUSTER_ROLE_BINDINGS, binding, "ADDED")
