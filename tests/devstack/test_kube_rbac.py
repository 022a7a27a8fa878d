"""RBAC on the devstack API server, driven with kubectl and the kubernetes client as a user would: what
Roles, ClusterRoles and their bindings grant (and nothing more), with kube's own refusal messages."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes
import pytest
from sovereign_devstack.pki import CertificateAuthority

from tests.devstack.kube_users import (
    KubeUser,
    apply,
    binding,
    certificate_user,
    new_namespace,
    role,
    service_account_subject,
    service_account_user,
    unique,
)
from tests.helpers import kubectl
from tests.servers import KubeAPI


def _refused(user: KubeUser | KubeAPI, *args: str) -> str:
    result = kubectl(user, *args, check=False)
    assert result.returncode != 0, f"kubectl {' '.join(args)} was allowed"
    return result.stderr.strip()


def _can(user: KubeUser, *args: str) -> bool:
    result = kubectl(user, "auth", "can-i", *args, check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


def test_a_service_account_without_bindings_is_refused_with_kubes_message(
    kube_api: KubeAPI, tmp_path: Path
) -> None:
    ns = new_namespace(kube_api)
    robot = service_account_user(kube_api, ns, "robot", tmp_path)
    assert _refused(robot, "-n", ns, "get", "configmaps") == (
        f'Error from server (Forbidden): configmaps is forbidden: User "system:serviceaccount:{ns}:robot" '
        f'cannot list resource "configmaps" in API group "" in the namespace "{ns}"'
    )
    assert _refused(robot, "get", "namespace", ns) == (
        f'Error from server (Forbidden): namespaces "{ns}" is forbidden: '
        f'User "system:serviceaccount:{ns}:robot" cannot get resource "namespaces" in API group "" '
        f'in the namespace "{ns}"'
    )
    assert _refused(robot, "get", "clusterroles") == (
        "Error from server (Forbidden): clusterroles.rbac.authorization.k8s.io is forbidden: User "
        f'"system:serviceaccount:{ns}:robot" cannot list resource "clusterroles" in API group '
        '"rbac.authorization.k8s.io" at the cluster scope'
    )
    # Discovery and who-am-I are every authenticated user's (system:discovery, system:basic-user).
    kubectl(robot, "get", "--raw", "/api")
    kubectl(robot, "auth", "whoami")
    # The kubernetes client sees the same 403 Status.
    core = kubernetes.client.CoreV1Api(robot.api_client())
    with pytest.raises(kubernetes.client.ApiException) as refused:
        core.read_namespaced_config_map("anything", ns)
    body = json.loads(refused.value.body)
    assert (refused.value.status, body["reason"]) == (403, "Forbidden")
    assert body["details"] == {"name": "anything", "kind": "configmaps"}


def test_a_role_grants_exactly_its_verbs_resources_names_and_subresources_in_its_namespace(
    kube_api: KubeAPI, tmp_path: Path
) -> None:
    ns, other = new_namespace(kube_api), new_namespace(kube_api)
    for namespace in (ns, other):
        kubectl(kube_api, "-n", namespace, "create", "configmap", "open", "--from-literal=a=1")
        kubectl(kube_api, "-n", namespace, "create", "configmap", "closed", "--from-literal=a=1")
    robot = service_account_user(kube_api, ns, "robot", tmp_path)
    apply(
        kube_api,
        role(
            ns,
            "reader",
            [
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "verbs": ["update", "patch"],
                    "resourceNames": ["open"],
                },
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
            ],
        ),
        binding(ns, "reader", "Role", "reader", [service_account_subject(ns, "robot")]),
    )
    assert "open" in kubectl(robot, "-n", ns, "get", "configmaps").stdout
    kubectl(robot, "-n", ns, "label", "configmap", "open", "touched=yes")
    assert "cannot patch resource" in _refused(robot, "-n", ns, "label", "configmap", "closed", "touched=yes")
    assert "cannot create resource" in _refused(robot, "-n", ns, "create", "configmap", "new")
    assert "cannot delete resource" in _refused(robot, "-n", ns, "delete", "configmap", "open")
    assert 'cannot list resource "secrets"' in _refused(robot, "-n", ns, "get", "secrets")
    assert f'in the namespace "{other}"' in _refused(robot, "-n", other, "get", "configmaps")
    # Subresources are their own resources: pods/log is not pods, serviceaccounts/token not serviceaccounts.
    assert _can(robot, "get", "pods", "--subresource=log", "-n", ns)
    assert not _can(robot, "get", "pods", "-n", ns)
    assert kubectl(robot, "-n", ns, "create", "token", "robot").stdout.count(".") == 2
    assert not _can(robot, "get", "serviceaccounts", "-n", ns)


def test_resource_names_allow_get_and_a_name_field_selector_but_not_list_or_create(
    kube_api: KubeAPI, tmp_path: Path
) -> None:
    ns = new_namespace(kube_api)
    kubectl(kube_api, "-n", ns, "create", "configmap", "mine", "--from-literal=a=1")
    robot = service_account_user(kube_api, ns, "robot", tmp_path)
    apply(
        kube_api,
        role(
            ns,
            "mine",
            [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": ["mine"],
                    "verbs": ["get", "list", "watch", "create"],
                }
            ],
        ),
        binding(ns, "mine", "Role", "mine", [service_account_subject(ns, "robot")]),
    )
    kubectl(robot, "-n", ns, "get", "configmap", "mine")
    assert (
        "mine" in kubectl(robot, "-n", ns, "get", "configmaps", "--field-selector=metadata.name=mine").stdout
    )
    assert "cannot list resource" in _refused(robot, "-n", ns, "get", "configmaps")
    assert 'configmaps "other" is forbidden' in _refused(robot, "-n", ns, "get", "configmap", "other")
    # Create carries no name at authorization: resourceNames cannot restrict it (k8s docs: rbac).
    assert "cannot create resource" in _refused(robot, "-n", ns, "create", "configmap", "mine2")


def test_a_cluster_role_bound_by_a_role_binding_grants_in_that_namespace_only(
    kube_api: KubeAPI, tmp_path: Path
) -> None:
    ns, other = new_namespace(kube_api), new_namespace(kube_api)
    robot = service_account_user(kube_api, ns, "robot", tmp_path)
    apply(kube_api, binding(ns, "view", "ClusterRole", "view", [service_account_subject(ns, "robot")]))
    kubectl(robot, "-n", ns, "get", "configmaps,serviceaccounts")
    assert "cannot list resource" in _refused(robot, "-n", other, "get", "configmaps")
    assert 'cannot list resource "configmaps"' in _refused(robot, "get", "configmaps", "--all-namespaces")
    # view (aggregated from system:aggregate-to-view, as in kube) reads no Secrets and writes nothing.
    assert not _can(robot, "list", "secrets", "-n", ns)
    assert not _can(robot, "create", "configmaps", "-n", ns)


def test_a_cluster_role_binding_grants_everywhere(kube_api: KubeAPI, tmp_path: Path) -> None:
    ns, other = new_namespace(kube_api), new_namespace(kube_api)
    robot = service_account_user(kube_api, ns, "robot", tmp_path)
    name = unique("cm-reader")
    apply(
        kube_api,
        role(
            None,
            name,
            [{"apiGroups": [""], "resources": ["configmaps", "namespaces"], "verbs": ["get", "list"]}],
        ),
        binding(None, name, "ClusterRole", name, [service_account_subject(ns, "robot")]),
    )
    kubectl(robot, "-n", other, "get", "configmaps")
    kubectl(robot, "get", "configmaps", "--all-namespaces")
    kubectl(robot, "get", "namespaces")
    assert not _can(robot, "delete", "configmaps", "-n", other)


def test_groups_of_certificates_and_service_accounts_are_subjects(
    kube_api: KubeAPI, devstack_ca: CertificateAuthority, tmp_path: Path
) -> None:
    ns = new_namespace(kube_api)
    team = unique("team")
    alice = certificate_user(kube_api, devstack_ca, unique("alice"), (team,), tmp_path)
    bob = certificate_user(kube_api, devstack_ca, unique("bob"), ("someone-else",), tmp_path)
    robot = service_account_user(kube_api, ns, "robot", tmp_path)
    apply(
        kube_api,
        binding(ns, "team-edit", "ClusterRole", "edit", [{"kind": "Group", "name": team}]),
        binding(
            ns, "sa-view", "ClusterRole", "view", [{"kind": "Group", "name": f"system:serviceaccounts:{ns}"}]
        ),
    )
    kubectl(alice, "-n", ns, "create", "configmap", "by-alice")
    assert "cannot list resource" in _refused(bob, "-n", ns, "get", "configmaps")
    assert "by-alice" in kubectl(robot, "-n", ns, "get", "configmaps").stdout
    assert not _can(robot, "create", "configmaps", "-n", ns)


def test_non_resource_urls_with_trailing_wildcards(kube_api: KubeAPI, tmp_path: Path) -> None:
    ns = new_namespace(kube_api)
    robot = service_account_user(kube_api, ns, "robot", tmp_path)
    kubectl(robot, "get", "--raw", "/version")  # system:discovery
    assert _refused(robot, "get", "--raw", "/logs/kube-apiserver.log") == (
        f'Error from server (Forbidden): forbidden: User "system:serviceaccount:{ns}:robot" cannot get path '
        '"/logs/kube-apiserver.log"'
    )
    assert not _can(robot, "get", "/logs/anything")
    name = unique("logs")
    apply(
        kube_api,
        role(None, name, [{"nonResourceURLs": ["/logs/*"], "verbs": ["get"]}]),
        binding(None, name, "ClusterRole", name, [service_account_subject(ns, "robot")]),
    )
    assert _can(robot, "get", "/logs/anything")
    assert not _can(robot, "get", "/metrics")
    # Authorized, then not found: the devstack serves no logs.
    assert "NotFound" in _refused(robot, "get", "--raw", "/logs/kube-apiserver.log")


def test_writing_roles_and_bindings_cannot_escalate_without_escalate_or_bind(
    kube_api: KubeAPI, tmp_path: Path
) -> None:
    ns = new_namespace(kube_api)
    robot = service_account_user(kube_api, ns, "robot", tmp_path)
    apply(
        kube_api,
        role(
            ns,
            "rbac-writer",
            [
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["roles", "rolebindings"],
                    "verbs": ["create", "get", "update", "patch"],
                },
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
            ],
        ),
        binding(ns, "rbac-writer", "Role", "rbac-writer", [service_account_subject(ns, "robot")]),
    )
    # A role within what the writer holds is fine; one beyond it is refused with kube's message.
    kubectl(
        robot,
        "apply",
        "-f",
        "-",
        input=json.dumps(
            role(ns, "cm-get", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}])
        ),
    )
    escalating = json.dumps(
        role(ns, "secrets", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}])
    )
    message = _apply_refused(robot, escalating)
    assert 'roles.rbac.authorization.k8s.io "secrets" is forbidden: user' in message
    assert "is attempting to grant RBAC permissions not currently held" in message
    assert '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}' in message
    # Binding a role whose permissions the writer lacks is refused too.
    edit_binding = json.dumps(binding(ns, "edit", "ClusterRole", "edit", [{"kind": "User", "name": "eve"}]))
    assert "attempting to grant RBAC permissions" in _apply_refused(robot, edit_binding)
    # With `escalate` on roles and `bind` on the ClusterRole edit (by name), both are allowed.
    apply(
        kube_api,
        role(
            ns,
            "escalator",
            [
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]},
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["clusterroles"],
                    "verbs": ["bind"],
                    "resourceNames": ["edit"],
                },
            ],
        ),
        binding(ns, "escalator", "Role", "escalator", [service_account_subject(ns, "robot")]),
    )
    kubectl(robot, "apply", "-f", "-", input=escalating)
    kubectl(robot, "apply", "-f", "-", input=edit_binding)
    admin_binding = json.dumps(
        binding(ns, "admin", "ClusterRole", "admin", [{"kind": "User", "name": "eve"}])
    )
    assert "attempting to grant RBAC permissions" in _apply_refused(robot, admin_binding)


def _apply_refused(user: KubeUser, manifest: str) -> str:
    result = kubectl(user, "apply", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0, "apply was allowed"
    return result.stderr


def test_can_i_and_can_i_list(kube_api: KubeAPI, tmp_path: Path) -> None:
    ns = new_namespace(kube_api)
    robot = service_account_user(kube_api, ns, "robot", tmp_path)
    apply(
        kube_api,
        role(ns, "cm", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]),
        binding(ns, "cm", "Role", "cm", [service_account_subject(ns, "robot")]),
    )
    assert kubectl(robot, "auth", "can-i", "list", "configmaps", "-n", ns).stdout.strip() == "yes"
    no = kubectl(robot, "auth", "can-i", "delete", "configmaps", "-n", ns, check=False)
    assert (no.returncode, no.stdout.strip()) == (1, "no")
    listed = kubectl(robot, "auth", "can-i", "--list", "-n", ns).stdout
    rows = {line.split()[0]: line for line in listed.splitlines()[1:] if line.strip()}
    assert "[get list]" in rows["configmaps"]
    assert "selfsubjectaccessreviews.authorization.k8s.io" in rows
    # The admin may ask about someone else (SubjectAccessReview); the account itself may not.
    assert (
        kubectl(kube_api, "auth", "can-i", "list", "configmaps", "-n", ns, "--as", robot.name).stdout.strip()
        == "yes"
    )
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "eve",
            "resourceAttributes": {"verb": "get", "resource": "secrets", "namespace": ns},
        },
    }
    refused = kubectl(robot, "create", "-f", "-", "-o", "json", input=json.dumps(review), check=False)
    assert 'cannot create resource "subjectaccessreviews"' in refused.stderr
    answer = json.loads(kubectl(kube_api, "create", "-f", "-", "-o", "json", input=json.dumps(review)).stdout)
    assert answer["status"]["allowed"] is False
    # A namespace's admin may ask about its own namespace (LocalSubjectAccessReview), not about others.
    apply(kube_api, binding(ns, "ns-admin", "ClusterRole", "admin", [service_account_subject(ns, "robot")]))
    local = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "LocalSubjectAccessReview",
        "metadata": {"namespace": ns},
        "spec": {
            "user": robot.name,
            "resourceAttributes": {"verb": "list", "resource": "configmaps", "namespace": ns},
        },
    }
    answer = json.loads(kubectl(robot, "create", "-f", "-", "-o", "json", input=json.dumps(local)).stdout)
    assert answer["status"]["allowed"] is True


def test_token_review_needs_auth_delegator(kube_api: KubeAPI, tmp_path: Path) -> None:
    ns = new_namespace(kube_api)
    robot = service_account_user(kube_api, ns, "robot", tmp_path)
    token = kubectl(kube_api, "-n", ns, "create", "token", "robot").stdout.strip()
    review = json.dumps(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    )
    refused = kubectl(robot, "create", "-f", "-", "-o", "json", input=review, check=False)
    assert 'cannot create resource "tokenreviews" in API group "authentication.k8s.io"' in refused.stderr
    name = unique("delegator")
    apply(
        kube_api,
        binding(None, name, "ClusterRole", "system:auth-delegator", [service_account_subject(ns, "robot")]),
    )
    answer = json.loads(kubectl(robot, "create", "-f", "-", "-o", "json", input=review).stdout)
    assert answer["status"]["user"]["username"] == robot.name


def test_impersonation_needs_the_impersonate_verb(kube_api: KubeAPI, tmp_path: Path) -> None:
    ns = new_namespace(kube_api)
    robot = service_account_user(kube_api, ns, "robot", tmp_path)
    # The admin acting as the account gets the account's refusals.
    assert 'User "system:serviceaccount:' in _refused(
        kube_api, "--as", robot.name, "-n", ns, "get", "configmaps"
    )
    assert _refused(robot, "--as", "kubernetes-admin", "get", "namespaces") == (
        'Error from server (Forbidden): users "kubernetes-admin" is forbidden: User '
        f'"{robot.name}" cannot impersonate resource "users" in API group "" at the cluster scope'
    )


def test_a_server_side_apply_that_creates_needs_create(kube_api: KubeAPI, tmp_path: Path) -> None:
    ns = new_namespace(kube_api)
    kubectl(kube_api, "-n", ns, "create", "configmap", "exists", "--from-literal=a=1")
    robot = service_account_user(kube_api, ns, "robot", tmp_path)
    apply(
        kube_api,
        role(ns, "patcher", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "patch"]}]),
        binding(ns, "patcher", "Role", "patcher", [service_account_subject(ns, "robot")]),
    )

    def configmap(name: str) -> str:
        return json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "2"}}
        )

    kubectl(robot, "-n", ns, "apply", "--server-side", "-f", "-", input=configmap("exists"))
    refused = kubectl(
        robot, "-n", ns, "apply", "--server-side", "-f", "-", input=configmap("new"), check=False
    )
    assert 'cannot create resource "configmaps"' in refused.stderr
