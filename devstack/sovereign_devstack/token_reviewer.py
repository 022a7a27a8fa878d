"""The ServiceAccount Vault calls the cluster's TokenReview API with, as a site with a Vault outside the
cluster sets it up: `kube-system/vault-token-reviewer`, bound to the built-in ClusterRole
`system:auth-delegator` (which allows creating TokenReviews and SubjectAccessReviews).

Vault docs: /vault/docs/auth/kubernetes#use-a-long-lived-token-as-the-reviewer-jwt ;
k8s docs: /docs/reference/access-authn-authz/rbac/#other-component-roles (system:auth-delegator).
Used by `sovereign up` and the tests' `platform` fixture; product code never imports it.
"""

from __future__ import annotations

from kubernetes.client import ApiClient

from sovereign.clients.kubernetes import apply_object, create_namespaced_service_account_token

REVIEWER_NAMESPACE = "kube-system"
REVIEWER_NAME = "vault-token-reviewer"
REVIEWER_BINDING = "vault-token-reviewer-auth-delegator"
# A year: Vault keeps the reviewer JWT in its configuration; `sovereign up` issues a fresh one each run.
REVIEWER_TOKEN_SECONDS = 365 * 24 * 3600


def reviewer_objects() -> list[dict]:
    """The ServiceAccount and its ClusterRoleBinding to `system:auth-delegator`."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": REVIEWER_NAME, "namespace": REVIEWER_NAMESPACE},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": REVIEWER_BINDING},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:auth-delegator",
            },
            "subjects": [{"kind": "ServiceAccount", "name": REVIEWER_NAME, "namespace": REVIEWER_NAMESPACE}],
        },
    ]


def ensure_token_reviewer(api: ApiClient) -> str:
    """Create (or keep) the reviewer ServiceAccount and binding; return a long-lived token of it (a JWT,
    never logged) for Vault's Kubernetes auth `token_reviewer_jwt`."""
    for manifest in reviewer_objects():
        apply_object(api, manifest)
    return create_namespaced_service_account_token(
        api, REVIEWER_NAMESPACE, REVIEWER_NAME, expiration_seconds=REVIEWER_TOKEN_SECONDS
    )
