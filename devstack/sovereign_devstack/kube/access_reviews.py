"""Who-am-I and authorization reviews (`kubectl auth whoami|can-i`, SubjectAccessReview).

# k8s docs: /docs/reference/access-authn-authz/authorization/#checking-api-access
# k8s docs: /docs/reference/access-authn-authz/authentication/#self-subject-review
The devstack does not authorize requests (every caller is treated as cluster-admin, see server.py), so every
review is allowed, with a reason saying why; RBAC objects are stored but not evaluated.
"""

from __future__ import annotations

from typing import Any

from sovereign_devstack.kube.admission import CURRENT_USER
from sovereign_devstack.kube.resource_types import ResourceType

REASON = "devstack API server: every caller is cluster-admin (RBAC objects are stored, not enforced)"


def _create_only(group: str, plural: str, kind: str, namespaced: bool = False) -> ResourceType:
    return ResourceType(
        group=group,
        versions=["v1"],
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        verbs=("create",),
    )


def access_review_types() -> list[ResourceType]:
    return [
        _create_only("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview"),
        _create_only("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview"),
        _create_only("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview"),
        _create_only("authorization.k8s.io", "localsubjectaccessreviews", "LocalSubjectAccessReview", True),
    ]


async def handle_access_review(
    rt: ResourceType, path: Any, body: Any, request: Any
) -> tuple[int, dict[str, Any]]:
    body = body if isinstance(body, dict) else {}
    meta = {"creationTimestamp": None}
    if rt.kind == "SelfSubjectReview":
        return 201, {
            "kind": rt.kind,
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": meta,
            "status": {"userInfo": CURRENT_USER.get()},
        }
    return 201, {
        "kind": rt.kind,
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": meta,
        "spec": body.get("spec") or {},
        "status": {"allowed": True, "reason": REASON},
    }
