"""Who may do what in a nation's namespace: its serving ServiceAccount and its administrators' RoleBinding.

The ClusterRole NAMESPACE_ADMIN_ROLE is one shared definition that the Helm chart installs
(charts/sovereign/templates/clusterrole-namespace-admin.yaml), never the operator: its rules cannot be widened
by the operator's credentials. A RoleBinding in each namespace grants it there only.
k8s docs: /docs/reference/access-authn-authz/rbac/#rolebinding-and-clusterrolebinding
"""

from __future__ import annotations

from typing import Any

from sovereign.domain.nations import SERVING_SERVICE_ACCOUNT, tenant_namespace
from sovereign.specs.tenant import AdminSubject, TenantSpec
from sovereign_operator.constants import NAMESPACE_ADMIN_ROLE, TENANT_ADMINS_ROLE_BINDING, tenant_labels

RBAC_GROUP = "rbac.authorization.k8s.io"


def build_serving_service_account_for_tenant(spec: TenantSpec) -> dict[str, Any]:
    # The identity the nation's model servers log in to Vault with (bound by its Kubernetes auth role).
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": SERVING_SERVICE_ACCOUNT,
            "namespace": tenant_namespace(spec.nation),
            "labels": tenant_labels(spec.nation),
        },
    }


def _subject(admin: AdminSubject, namespace: str) -> dict[str, Any]:
    # k8s docs: /docs/reference/access-authn-authz/rbac/#referring-to-subjects (ServiceAccounts have a
    # namespace and the core group; users and groups belong to rbac.authorization.k8s.io).
    if admin.kind == "ServiceAccount":
        # A ServiceAccount subject must name its namespace; without one we mean the nation's own.
        return {"kind": "ServiceAccount", "name": admin.name, "namespace": admin.namespace or namespace}
    return {"kind": admin.kind, "name": admin.name, "apiGroup": RBAC_GROUP}


def build_admin_role_binding_for_tenant(spec: TenantSpec) -> dict[str, Any]:
    namespace = tenant_namespace(spec.nation)
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": TENANT_ADMINS_ROLE_BINDING,
            "namespace": namespace,
            "labels": tenant_labels(spec.nation),
        },
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": NAMESPACE_ADMIN_ROLE},
        # Always present, even empty: the binding exists from day one and admins are added by updating it.
        "subjects": [_subject(admin, namespace) for admin in spec.admins],
    }
