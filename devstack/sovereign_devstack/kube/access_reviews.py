"""Who-am-I and authorization reviews (`kubectl auth whoami|can-i [--list]`, SubjectAccessReview).

# k8s docs: /docs/reference/access-authn-authz/authorization/#checking-api-access
# k8s docs: /docs/reference/access-authn-authz/authentication/#self-subject-review
Every review asks the same RBAC authorizer that authorizes requests; creating a review is itself authorized
like any request (system:basic-user lets every authenticated user review itself; SubjectAccessReview needs
system:auth-delegator or the like).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sovereign_devstack.kube import errors, rbac
from sovereign_devstack.kube.admission import CURRENT_USER
from sovereign_devstack.kube.resource_types import ResourceType


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
        _create_only("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview"),
    ]


def _attributes(spec: dict[str, Any]) -> rbac.Attributes:
    resource = spec.get("resourceAttributes")
    if resource is not None:
        return rbac.Attributes(
            verb=resource.get("verb") or "",
            namespace=resource.get("namespace") or "",
            api_group=resource.get("group") or "",
            api_version=resource.get("version") or "",
            resource=resource.get("resource") or "",
            subresource=resource.get("subresource") or "",
            name=resource.get("name") or "",
        )
    non_resource = spec.get("nonResourceAttributes") or {}
    return rbac.Attributes(
        verb=non_resource.get("verb") or "", resource_request=False, path=non_resource.get("path") or ""
    )


def _rules_review(authorizer: rbac.RBACAuthorizer, user: dict[str, Any], namespace: str) -> dict[str, Any]:
    """SelfSubjectRulesReview status: the user's rules in `namespace` (cluster-wide ones included)."""
    rules = authorizer.rules_for(user, namespace)
    resource_rules, non_resource_rules = [], []
    for rule in rules:
        if rule.get("nonResourceURLs"):
            non_resource_rules.append({"verbs": rule["verbs"], "nonResourceURLs": rule["nonResourceURLs"]})
        if rule.get("resources"):
            kept = {k: rule[k] for k in ("verbs", "apiGroups", "resources", "resourceNames") if rule.get(k)}
            kept.setdefault("apiGroups", [])
            resource_rules.append(kept)
    return {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": False}


def review_handler(
    authorizer: rbac.RBACAuthorizer,
) -> Callable[[ResourceType, Any, Any, Any], Awaitable[tuple[int, dict[str, Any]]]]:
    async def handle(rt: ResourceType, path: Any, body: Any, request: Any) -> tuple[int, dict[str, Any]]:
        body = body if isinstance(body, dict) else {}
        spec = dict(body.get("spec") or {})
        answer: dict[str, Any] = {
            "kind": rt.kind,
            "apiVersion": f"{rt.group}/v1",
            "metadata": {"creationTimestamp": None},
        }
        user = CURRENT_USER.get()
        if rt.kind == "SelfSubjectReview":
            return 201, {**answer, "status": {"userInfo": user}}
        if rt.kind == "SelfSubjectRulesReview":
            namespace = spec.get("namespace") or ""
            return 201, {**answer, "spec": spec, "status": _rules_review(authorizer, user, namespace)}
        if rt.kind in ("SubjectAccessReview", "LocalSubjectAccessReview"):
            if not spec.get("user") and not spec.get("groups"):
                raise errors.invalid(
                    rt.group,
                    rt.kind,
                    "",
                    [
                        errors.field_cause(
                            "spec.user", "Invalid value: at least one of user or group must be specified"
                        )
                    ],
                )
            user = {"username": spec.get("user") or "", "groups": list(spec.get("groups") or [])}
        if rt.kind == "LocalSubjectAccessReview":
            wanted = (spec.get("resourceAttributes") or {}).get("namespace")
            if wanted != path.namespace:
                raise errors.bad_request(
                    f"spec.resourceAttributes.namespace must match namespace: {path.namespace}"
                )
        if not spec.get("resourceAttributes") and not spec.get("nonResourceAttributes"):
            raise errors.invalid(
                rt.group,
                rt.kind,
                "",
                [
                    errors.field_cause(
                        "spec.resourceAttributes",
                        "Required value: exactly one of nonResourceAttributes or "
                        "resourceAttributes must be specified",
                        "FieldValueRequired",
                    )
                ],
            )
        allowed = authorizer.authorize(user, _attributes(spec))
        status: dict[str, Any] = {"allowed": allowed}
        if allowed:
            status["reason"] = "RBAC: allowed"
        return 201, {**answer, "spec": spec, "status": status}

    return handle
