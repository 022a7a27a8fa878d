"""User impersonation (`kubectl --as`, `--as-group`): the `Impersonate-*` headers, each authorized with the
`impersonate` verb before the request is served as the impersonated user.

# k8s docs: /docs/reference/access-authn-authz/authentication/#user-impersonation
"""

from __future__ import annotations

from typing import Any

from multidict import CIMultiDictProxy

from sovereign_devstack.kube import errors, rbac
from sovereign_devstack.kube.authn import AUTHENTICATED

SA_PREFIX = "system:serviceaccount:"
EXTRA_PREFIX = "impersonate-extra-"


def _check(
    authorizer: rbac.RBACAuthorizer,
    user: dict[str, Any],
    group: str,
    resource: str,
    name: str,
    namespace: str = "",
    subresource: str = "",
) -> None:
    attrs = rbac.Attributes(
        verb="impersonate",
        api_group=group,
        resource=resource,
        subresource=subresource,
        name=name,
        namespace=namespace,
    )
    if not authorizer.authorize(user, attrs):
        raise rbac.forbidden(user, attrs)


def impersonated_user(
    user: dict[str, Any], headers: CIMultiDictProxy[str], authorizer: rbac.RBACAuthorizer
) -> dict[str, Any]:
    """`user` itself without impersonation headers; else the impersonated user, if `user` may be it."""
    names = headers.getall("Impersonate-User", [])
    groups = headers.getall("Impersonate-Group", [])
    uids = headers.getall("Impersonate-Uid", [])
    extras = {k[len(EXTRA_PREFIX) :]: v for k, v in headers.items() if k.lower().startswith(EXTRA_PREFIX)}
    if not names:
        if groups or uids or extras:
            raise errors.bad_request("requested impersonation of groups, uid or extra without a user")
        return user
    username = names[0]
    if username.startswith(SA_PREFIX) and username.count(":") == 3:
        namespace, name = username[len(SA_PREFIX) :].split(":")
        _check(authorizer, user, "", "serviceaccounts", name, namespace)
        implied = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    else:
        _check(authorizer, user, "", "users", username)
        implied = []
    for group in groups:
        _check(authorizer, user, "", "groups", group)
    for uid in uids:
        _check(authorizer, user, "authentication.k8s.io", "uids", uid)
    for key, value in extras.items():
        _check(authorizer, user, "authentication.k8s.io", "userextras", value, subresource=key)
    all_groups = list(dict.fromkeys([*groups, *implied]))
    if username != "system:anonymous" and AUTHENTICATED not in all_groups:
        all_groups.append(AUTHENTICATED)
    result: dict[str, Any] = {"username": username, "groups": all_groups}
    if uids:
        result["uid"] = uids[0]
    if extras:
        result["extra"] = {key: [value] for key, value in extras.items()}
    return result
