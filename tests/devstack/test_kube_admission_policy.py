"""ValidatingAdmissionPolicies on the devstack API server: a small policy applied with kubectl refuses what it
should with its own message, as kube-apiserver words it, and leaves allowed requests and unmatched users be.

k8s docs: /docs/reference/access-authn-authz/validating-admission-policy/
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
import yaml

from tests.devstack.kube_users import KubeUser, new_namespace, service_account_user, unique
from tests.helpers import kubectl
from tests.servers import KubeAPI

POLICY = "no-secret-keys.example.com"
BINDING = "no-secret-keys-binding.example.com"
NO_SECRET = "a ConfigMap carries no key named secret"
KEEP = "a ConfigMap labelled keep=yes stays"
LABEL = "admission-policy-test"  # only namespaces with this label are governed (namespaceSelector)


def _policy(user: str) -> str:
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POLICY},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE", "DELETE"],
                        "resources": ["configmaps"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {LABEL: "on"}},
            },
            "matchConditions": [{"name": "the-user", "expression": f"request.userInfo.username == '{user}'"}],
            "variables": [{"name": "data", "expression": "has(object.data) ? object.data : {}"}],
            "validations": [
                {
                    "expression": "request.operation == 'DELETE' || !('secret' in variables.data)",
                    "message": NO_SECRET,
                },
                {
                    "expression": "request.operation != 'DELETE' || !has(oldObject.metadata.labels) "
                    "|| !('keep' in oldObject.metadata.labels) || oldObject.metadata.labels.keep != 'yes'",
                    "messageExpression": f"'{KEEP} (in ' + namespaceObject.metadata.name + ')'",
                },
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": BINDING},
        "spec": {"policyName": POLICY, "validationActions": ["Deny"]},
    }
    return yaml.safe_dump_all([policy, binding])


@pytest.fixture(scope="module")
def governed(kube_api: KubeAPI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, KubeUser]]:
    """A namespace the policy governs and a ServiceAccount allowed by RBAC to write its ConfigMaps."""
    namespace = new_namespace(kube_api, "vap")
    kubectl(kube_api, "label", "namespace", namespace, f"{LABEL}=on")
    user = service_account_user(kube_api, namespace, "writer", tmp_path_factory.mktemp("vap"))
    kubectl(
        kube_api, "-n", namespace, "create", "role", "writer", "--resource=configmaps",
        "--verb=get,create,update,patch,delete",
    )  # fmt: skip
    kubectl(
        kube_api, "-n", namespace, "create", "rolebinding", "writer", "--role=writer", f"--user={user.name}"
    )
    kubectl(kube_api, "apply", "-f", "-", input=_policy(user.name))
    try:
        yield namespace, user
    finally:
        kubectl(kube_api, "delete", "validatingadmissionpolicybinding", BINDING, "--ignore-not-found")
        kubectl(kube_api, "delete", "validatingadmissionpolicy", POLICY, "--ignore-not-found")
        kubectl(kube_api, "delete", "namespace", namespace, "--wait=false")


def _configmap(who: KubeAPI | KubeUser, namespace: str, *pairs: str, check: bool = False) -> str:
    name = unique("cm")
    args = ["-n", namespace, "create", "configmap", name, *(f"--from-literal={pair}" for pair in pairs)]
    result = kubectl(who, *args, check=check)
    return name if result.returncode == 0 else result.stderr


def test_a_refused_request_shows_the_policys_message(governed: tuple[str, KubeUser]) -> None:
    namespace, user = governed
    stderr = _configmap(user, namespace, "secret=x")
    assert (
        f"ValidatingAdmissionPolicy '{POLICY}' with binding '{BINDING}' denied request: {NO_SECRET}" in stderr
    )
    # The Status itself is kube-apiserver's: 422 Invalid, the resource named, the message a cause too.
    api = kubernetes.client.CoreV1Api(user.api_client())
    body = {"metadata": {"name": unique("cm")}, "data": {"secret": "x"}}
    with pytest.raises(kubernetes.client.ApiException) as refused:
        api.create_namespaced_config_map(namespace, body)
    status = yaml.safe_load(refused.value.body)
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["message"].startswith(f'configmaps "{body["metadata"]["name"]}" is forbidden: ')
    assert status["details"]["causes"] == [{"message": status["message"].split("is forbidden: ", 1)[1]}]


def test_an_allowed_request_passes(governed: tuple[str, KubeUser]) -> None:
    namespace, user = governed
    name = _configmap(user, namespace, "public=x", check=True)
    stderr = kubectl(
        user, "-n", namespace, "patch", "configmap", name, "-p", '{"data":{"secret":"y"}}', check=False
    )
    assert f"denied request: {NO_SECRET}" in stderr.stderr, "an update is governed like a create"


def test_delete_sees_the_old_object_and_its_namespace(
    kube_api: KubeAPI, governed: tuple[str, KubeUser]
) -> None:
    namespace, user = governed
    name = _configmap(user, namespace, "public=x", check=True)
    kubectl(kube_api, "-n", namespace, "label", "configmap", name, "keep=yes")
    refused = kubectl(user, "-n", namespace, "delete", "configmap", name, check=False)
    assert f"denied request: {KEEP} (in {namespace})" in refused.stderr
    kubectl(kube_api, "-n", namespace, "label", "configmap", name, "keep=no", "--overwrite")
    kubectl(user, "-n", namespace, "delete", "configmap", name)


def test_users_and_namespaces_not_matched_are_unaffected(
    kube_api: KubeAPI, governed: tuple[str, KubeUser], tmp_path: Path
) -> None:
    namespace, user = governed
    assert not _configmap(kube_api, namespace, "secret=x").startswith("error"), "the admin is not matched"
    other = new_namespace(kube_api, "vap-free")
    try:
        kubectl(
            kube_api,
            "-n",
            other,
            "create",
            "rolebinding",
            "writer",
            "--clusterrole=edit",
            f"--user={user.name}",
        )
        assert not _configmap(user, other, "secret=x").startswith("error"), "namespaceSelector leaves it out"
    finally:
        kubectl(kube_api, "delete", "namespace", other, "--wait=false")


def test_a_policy_that_does_not_compile_is_refused(kube_api: KubeAPI) -> None:
    broken = yaml.safe_load(_policy("nobody").split("---")[0])
    broken["metadata"]["name"] = "broken.example.com"
    broken["spec"]["validations"] = [{"expression": "object.data +"}]
    result = kubectl(kube_api, "apply", "-f", "-", input=yaml.safe_dump(broken), check=False)
    assert result.returncode != 0
    assert "spec.validations[0].expression: Invalid value" in result.stderr


def _apply_policy(
    kube_api: KubeAPI, name: str, user: str, validation: str, failure: str, action: str
) -> None:
    """A policy and its binding for ConfigMaps created by `user` in namespaces labelled LABEL=`name`."""
    spec = {
        "failurePolicy": failure,
        "matchConstraints": {
            "resourceRules": [
                {
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE"],
                    "resources": ["configmaps"],
                }
            ],
            "namespaceSelector": {"matchLabels": {LABEL: name}},
        },
        "matchConditions": [{"name": "the-user", "expression": f"request.userInfo.username == '{user}'"}],
        "validations": [{"expression": validation}],
    }
    meta = {"name": f"{name}.example.com"}
    policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy"}
    binding = {**policy, "kind": "ValidatingAdmissionPolicyBinding"}
    documents = [
        {**policy, "metadata": meta, "spec": spec},
        {**binding, "metadata": meta, "spec": {"policyName": meta["name"], "validationActions": [action]}},
    ]
    kubectl(kube_api, "apply", "-f", "-", input=yaml.safe_dump_all(documents))


def test_failure_policy_and_warn(kube_api: KubeAPI, governed: tuple[str, KubeUser]) -> None:
    """k8s docs: "Failure Policy" (an expression that errors) and "Validation actions" (Warn)."""
    _, user = governed
    name = unique("errors")
    namespace = new_namespace(kube_api, "vap-errors")
    kubectl(kube_api, "label", "namespace", namespace, f"{LABEL}={name}")
    kubectl(
        kube_api, "-n", namespace, "create", "rolebinding", "w", "--clusterrole=edit", f"--user={user.name}"
    )
    erroring = "object.data.mode == 'strict'"  # no key `mode`: an evaluation error
    try:
        _apply_policy(kube_api, name, user.name, erroring, "Fail", "Deny")
        refused = _configmap(user, namespace, "other=x")
        assert f"denied request: expression '{erroring}' resulted in error" in refused
        _apply_policy(kube_api, name, user.name, erroring, "Ignore", "Deny")
        assert not _configmap(user, namespace, "other=x").startswith("error"), "Ignore lets it pass"
        _apply_policy(kube_api, name, user.name, "has(object.data.mode)", "Fail", "Warn")
        warned = kubectl(user, "-n", namespace, "create", "configmap", unique("cm"), "--from-literal=a=b")
        assert (
            f"Warning: Validation failed for ValidatingAdmissionPolicy '{name}.example.com' with binding "
            f"'{name}.example.com': failed expression: has(object.data.mode)"
        ) in warned.stderr
    finally:
        kubectl(
            kube_api,
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            f"{name}.example.com",
        )
        kubectl(kube_api, "delete", "namespace", namespace, "--wait=false")
