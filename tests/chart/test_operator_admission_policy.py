"""The chart's guards on the operator, tried with the operator's own credentials on the devstack: the
ServiceAccount token of `sovereign-system/sovereign-operator` holding exactly the chart's roles and its
ValidatingAdmissionPolicy (applied as the admin, as `helm install` would:
sovereign_devstack.operator_identity).

Each escalation is tried with kubectl and must be refused by the guard the chart's README names for it: RBAC
(the request is not authorized: 403 "cannot ..."), RBAC's escalation prevention (a binding to a role the
operator may not bind) or the admission policy (422, "ValidatingAdmissionPolicy '...' denied request: ...").
The same calls for a nation's own namespace pass, so the policy does not stand in the operator's way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from sovereign_devstack.operator_identity import NAMESPACE as RELEASE_NAMESPACE
from sovereign_devstack.operator_identity import SERVICE_ACCOUNT, operator_rbac
from sovereign_operator.builders.namespace import build_namespace_for_tenant
from sovereign_operator.builders.rayservice import build_rayservice_for_nation
from sovereign_operator.constants import NAMESPACE_ADMIN_ROLE

from sovereign.serving_contract import platform_image_reference
from sovereign.specs.tenant import TenantSpec
from tests.chart.rendering import render_objects
from tests.devstack.kube_users import KubeUser
from tests.helpers import kubectl
from tests.operator.harness import Platform

NATION = "AUT"
NATION_NAMESPACE = "tenant-aut"
POLICY = f"{SERVICE_ACCOUNT}-scope"  # the chart's name for release `sovereign`
DENIED = f"ValidatingAdmissionPolicy '{POLICY}' with binding '{POLICY}' denied request: "
IN_NAMESPACES = DENIED + "the operator writes only in a nation's namespace"
NAMESPACE_NAMES = DENIED + "the operator creates, changes and deletes only a nation's namespace"
ROLE_REF = DENIED + "the operator's RoleBindings may refer to the ClusterRole sovereign-namespace-admin only"
SUBJECTS = DENIED + "the operator's RoleBindings may bind groups and users not named system:*"
RAY_IDENTITY = DENIED + "the operator's RayServices run their head and every worker group as"
POD_SECURITY = DENIED + "the operator's namespaces enforce Pod Security baseline or restricted"
RAY_IMAGE = DENIED + "the operator's RayServices run only the serving image the chart was installed with"
# The chart's serving image for the devstack's values: the platform image of this version.
SERVING_IMAGE = platform_image_reference()
OPERATOR = f"system:serviceaccount:{RELEASE_NAMESPACE}:{SERVICE_ACCOUNT}"
NOT_AUTHORIZED = f'User "{OPERATOR}" cannot'
NOT_HELD = "is attempting to grant RBAC permissions not currently held"


def _binding(
    namespace: str, role: str, *subjects: dict[str, str], kind: str = "ClusterRole"
) -> dict[str, Any]:
    group = "rbac.authorization.k8s.io"
    return {
        "apiVersion": f"{group}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "tenant-admins", "namespace": namespace},
        "roleRef": {"apiGroup": group, "kind": kind, "name": role},
        "subjects": list(subjects),
    }


def _group(name: str) -> dict[str, str]:
    return {"kind": "Group", "name": name, "apiGroup": "rbac.authorization.k8s.io"}


def _rayservice(
    service_account: str | None = None, worker_account: str | None = None, worker_image: str = SERVING_IMAGE
) -> dict[str, Any]:
    spec = TenantSpec.model_validate({"nation": NATION, "displayName": "Austria", "clearance": "NATO SECRET"})
    body = build_rayservice_for_nation(spec, [], [], SERVING_IMAGE)
    cluster = body["spec"]["rayClusterConfig"]
    if service_account is not None:
        cluster["headGroupSpec"]["template"]["spec"]["serviceAccountName"] = service_account
    worker = {"groupName": "extra", "replicas": 0, "rayStartParams": {}}
    worker["template"] = {"spec": {"containers": [{"name": "ray-worker", "image": worker_image}]}}
    if worker_account is not None:
        worker["template"]["spec"]["serviceAccountName"] = worker_account
    cluster.setdefault("workerGroupSpecs", []).append(worker)
    return body


def _namespace(**labels: str) -> dict[str, Any]:
    """A nation's namespace as the operator builds it (Pod Security labels included), or with `labels`."""
    spec = TenantSpec.model_validate({"nation": NATION, "displayName": "Austria", "clearance": "NATO SECRET"})
    body = build_namespace_for_tenant(spec)
    if labels:  # another nation's name: a dry-run create of the fixture's namespace would only conflict
        body["metadata"] = {"name": "tenant-bel", "labels": labels}
    return body


def _configmap(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "planted", "namespace": namespace}}


@pytest.fixture(scope="module")
def operator(platform: Platform, rayservice_crd: None) -> Iterator[KubeUser]:
    """kubectl as the operator, with the chart's roles for runtime kuberay (RayServices) and its policy."""
    platform.operator_roles.grant("kuberay")
    user = KubeUser(OPERATOR, platform.operator_identity.kubeconfig)
    kubectl(user, "apply", "-f", "-", input=yaml.safe_dump(_namespace()))  # allowed: a nation's namespace
    try:
        yield user
    finally:
        kubectl(platform.kube, "delete", "namespace", NATION_NAMESPACE, "--ignore-not-found", "--wait=false")


def _apply(user: KubeUser, body: dict[str, Any]) -> str:
    """Server-side dry run: authorized and admitted exactly as the real write, nothing stored."""
    done = kubectl(user, "create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(body), check=False)
    return "" if done.returncode == 0 else done.stderr


REFUSED: dict[str, tuple[tuple[str, ...] | dict[str, Any], str]] = {
    # RBAC: what the chart never grants.
    "create a ClusterRole": (
        ("create", "clusterrole", "x", "--verb=get", "--resource=configmaps"),
        NOT_AUTHORIZED,
    ),
    "widen the namespace-admin ClusterRole": (
        (
            "patch",
            "clusterrole",
            NAMESPACE_ADMIN_ROLE,
            "--type=json",
            "-p",
            '[{"op":"add","path":"/rules/-","value":{"apiGroups":["*"],"resources":["*"],"verbs":["*"]}}]',
        ),
        NOT_AUTHORIZED,
    ),  # fmt: skip
    "bind cluster-admin cluster-wide": (
        ("create", "clusterrolebinding", "x", "--clusterrole=cluster-admin", f"--user={OPERATOR}"),
        NOT_AUTHORIZED,
    ),
    "create a Role in a nation's namespace": (
        ("create", "role", "x", "-n", NATION_NAMESPACE, "--verb=get", "--resource=secrets"),
        NOT_AUTHORIZED,
    ),
    "read a Secret": (("get", "secrets", "-n", RELEASE_NAMESPACE), NOT_AUTHORIZED),
    # RBAC's escalation prevention: `bind` is granted on the namespace-admin ClusterRole only.
    "bind cluster-admin in a nation's namespace": (
        _binding(NATION_NAMESPACE, "cluster-admin", _group("aut-admins")),
        NOT_HELD,
    ),
    # The admission policy: what RBAC cannot narrow.
    "bind itself as a nation's admin": (
        _binding(
            NATION_NAMESPACE,
            NAMESPACE_ADMIN_ROLE,
            {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": RELEASE_NAMESPACE},
        ),
        SUBJECTS,
    ),
    "bind itself by its user name": (
        _binding(NATION_NAMESPACE, NAMESPACE_ADMIN_ROLE, {**_group(OPERATOR), "kind": "User"}),
        SUBJECTS,
    ),
    "bind every ServiceAccount of its namespace": (
        _binding(
            NATION_NAMESPACE, NAMESPACE_ADMIN_ROLE, _group(f"system:serviceaccounts:{RELEASE_NAMESPACE}")
        ),
        SUBJECTS,
    ),
    "bind the namespace-admin role outside a nation's namespace": (
        _binding("kube-system", NAMESPACE_ADMIN_ROLE, _group("aut-admins")),
        IN_NAMESPACES,
    ),
    "plant a ConfigMap in kube-system": (_configmap("kube-system"), IN_NAMESPACES),
    "create a namespace not named like a nation's": (("create", "namespace", "kube-evil"), NAMESPACE_NAMES),
    "delete a namespace not a nation's": (
        ("delete", "namespace", "default", "--dry-run=server"),
        NAMESPACE_NAMES,
    ),
    "create a namespace by a look-alike name": (("create", "namespace", "tenant-austria"), NAMESPACE_NAMES),
    "create a nation's namespace without Pod Security": (
        _namespace(**{"pod-security.kubernetes.io/enforce": "privileged"}),
        POD_SECURITY,
    ),
    "run a RayService's head as another ServiceAccount": (_rayservice("default"), RAY_IDENTITY),
    "run a RayService's worker as another ServiceAccount": (_rayservice(None, SERVICE_ACCOUNT), RAY_IDENTITY),
    "run a RayService's worker as the namespace's default": (_rayservice(None, None), RAY_IDENTITY),
    "run code of its choosing as model-serving": (
        _rayservice(None, "model-serving", "registry.example/attacker:1"),
        RAY_IMAGE,
    ),
    "bind a ServiceAccount of its own namespace": (
        _binding(
            NATION_NAMESPACE,
            NAMESPACE_ADMIN_ROLE,
            {"kind": "ServiceAccount", "name": "default", "namespace": RELEASE_NAMESPACE},
        ),
        SUBJECTS,
    ),
}


@pytest.mark.parametrize(("attempt", "guard"), REFUSED.values(), ids=REFUSED.keys())
def test_the_operator_is_refused(
    operator: KubeUser, attempt: tuple[str, ...] | dict[str, Any], guard: str
) -> None:
    if isinstance(attempt, dict):
        stderr = _apply(operator, attempt)
    else:
        stderr = kubectl(operator, *attempt, check=False).stderr
    assert guard in stderr, f"expected {guard!r}, got: {stderr or 'allowed'}"


ALLOWED: dict[str, dict[str, Any]] = {
    "its nation's RoleBinding": _binding(NATION_NAMESPACE, NAMESPACE_ADMIN_ROLE, _group("aut-admins")),
    "a RayService as model-serving": _rayservice(None, "model-serving"),
    "a nation's CI ServiceAccount as its admin": _binding(
        NATION_NAMESPACE,
        NAMESPACE_ADMIN_ROLE,
        {"kind": "ServiceAccount", "name": "ci", "namespace": "aut-ci"},
    ),
    "a ConfigMap in a nation's namespace": _configmap(NATION_NAMESPACE),
    "a ConfigMap in the platform namespace": _configmap(RELEASE_NAMESPACE),
    "an Event in default": {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "tenant-aut.probe", "namespace": "default"},
        "involvedObject": {"apiVersion": "sovereign.ai/v1alpha1", "kind": "Tenant", "name": "aut"},
        "reason": "Probe",
        "message": "kopf posts a cluster-scoped Tenant's Events in default",
    },
}


@pytest.mark.parametrize("body", ALLOWED.values(), ids=ALLOWED.keys())
def test_what_the_operator_does_for_a_nation_passes(operator: KubeUser, body: dict[str, Any]) -> None:
    assert _apply(operator, body) == ""


def test_the_devstack_applies_the_policy_the_chart_renders() -> None:
    kinds = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
    applied = [o for o in operator_rbac("kuberay") if o["kind"] in kinds]
    assert [o["metadata"]["name"] for o in applied] == [POLICY, POLICY]
    (policy,) = (o for o in applied if o["kind"] == kinds[0])
    assert policy["spec"]["failurePolicy"] == "Fail"
    (binding,) = (o for o in applied if o["kind"] == kinds[1])
    assert binding["spec"] == {"policyName": POLICY, "validationActions": ["Deny"]}


def test_the_policy_names_the_release_and_platform_namespaces() -> None:
    objects = render_objects({"platformNamespace": "sovereign-platform"})
    (policy,) = (o for o in objects if o["kind"] == "ValidatingAdmissionPolicy")
    (condition,) = policy["spec"]["matchConditions"]
    assert condition["expression"].endswith(
        "== 'system:serviceaccount:sovereign-system:sov-sovereign-operator'"
    )
    where = policy["spec"]["validations"][0]["expression"]
    assert "request.namespace in ['sovereign-platform', 'sovereign-system']" in where


def test_the_namespace_admin_cluster_role_is_the_charts_and_least_privilege() -> None:
    (role,) = (o for o in render_objects() if o["metadata"]["name"] == NAMESPACE_ADMIN_ROLE)
    assert role["kind"] == "ClusterRole"
    granted = {
        (group, resource): tuple(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    full = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
    read = ("get", "list", "watch")
    core = ["configmaps", "events", "limitranges", "pods", "pods/log", "resourcequotas", "services"]
    assert granted == {
        **{("sovereign.ai", kind): full for kind in ("modeldeployments", "datasets", "tenantpolicies")},
        **{("", kind): read for kind in core},
        ("events.k8s.io", "events"): read,
    }
