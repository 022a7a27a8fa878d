"""The operator runs as the chart's ServiceAccount with the chart's roles and nothing more: the API server
authenticates it as `system:serviceaccount:sovereign-system:sovereign-operator`, records its writes under that
name, and refuses it, with kubectl's Forbidden, what the chart does not grant (Secrets above all)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sovereign_devstack.operator_identity import NAMESPACE, USERNAME
from sovereign_devstack.token_projector import PROJECTOR_USER

from sovereign.domain.nations import SERVING_SERVICE_ACCOUNT
from tests.helpers import kubectl, wait_until
from tests.operator.harness import LEADER_LOG, OperatorProcess, Platform


@dataclass(frozen=True)
class AsOperator:
    """kubectl with the operator's own kubeconfig, as `tests.helpers.kubectl` takes an API server."""

    kubeconfig: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}


def test_its_kubeconfig_authenticates_as_its_service_account(platform: Platform) -> None:
    whoami = kubectl(AsOperator(platform.operator_identity.kubeconfig), "auth", "whoami", "-o", "json")
    user = json.loads(whoami.stdout)["status"]["userInfo"]
    assert user["username"] == USERNAME
    assert {"system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}"} <= set(user["groups"])
    assert "system:masters" not in user["groups"]


def test_the_running_operator_writes_its_lease_as_its_service_account(
    platform: Platform, start_operator: Callable[..., OperatorProcess]
) -> None:
    # Stopped when this test ends: the refusals below, made with its kubeconfig, are not the operator's own.
    operator = start_operator()
    operator.wait_for_log(LEADER_LOG)

    def lease_writes() -> list[dict]:
        with platform.kube.audit_log.open("rb") as log:
            log.seek(operator.audit_offset)  # from its start on (other tests write the Lease as the admin)
            events = [json.loads(line) for line in log.read().splitlines()]
        return [
            e
            for e in events
            if e["objectRef"]["resource"] == "leases"
            and e["objectRef"].get("name") == "sovereign-operator"
            and e["verb"] in ("create", "update")
            and e.get("stage") == "ResponseComplete"
        ]

    writes = wait_until(lease_writes, "the operator's Lease written")
    assert {e["user"]["username"] for e in writes} == {USERNAME}
    assert any(e["responseStatus"]["code"] in (200, 201) for e in writes)


FORBIDDEN = "Error from server (Forbidden): "
REFUSED = {
    "reading Secrets": (
        ("get", "secrets", "-n", NAMESPACE),
        f'{FORBIDDEN}secrets is forbidden: User "{USERNAME}" cannot list resource "secrets" '
        f'in API group "" in the namespace "{NAMESPACE}"',
    ),
    "deleting a Secret": (
        ("delete", "secret", "vault-token", "-n", NAMESPACE),
        f'{FORBIDDEN}secrets "vault-token" is forbidden: User "{USERNAME}" cannot delete resource '
        f'"secrets" in API group "" in the namespace "{NAMESPACE}"',
    ),
    "granting itself more": (
        ("create", "clusterrolebinding", "more", "--clusterrole=cluster-admin", f"--user={USERNAME}"),
        # kubectl create prints the server's refusal after its own words
        "error: failed to create clusterrolebinding: clusterrolebindings.rbac.authorization.k8s.io is "
        f'forbidden: User "{USERNAME}" cannot create resource "clusterrolebindings" in API group '
        '"rbac.authorization.k8s.io" at the cluster scope',
    ),
    "listing what it may only read by name": (
        ("get", "rolebindings", "--all-namespaces"),
        f'{FORBIDDEN}rolebindings.rbac.authorization.k8s.io is forbidden: User "{USERNAME}" cannot list '
        'resource "rolebindings" in API group "rbac.authorization.k8s.io" at the cluster scope',
    ),
}


@pytest.mark.parametrize(("args", "refusal"), REFUSED.values(), ids=REFUSED.keys())
def test_what_the_chart_does_not_grant_is_refused_to_it(
    platform: Platform, args: tuple[str, ...], refusal: str
) -> None:
    result = kubectl(AsOperator(platform.operator_identity.kubeconfig), *args, check=False)
    assert result.returncode != 0
    assert refusal in result.stderr


def test_it_may_request_no_nation_token_the_projector_only_model_serving(platform: Platform) -> None:
    """The operator never mints a nation's ServiceAccount token, on any runtime (local-ray included): a
    TokenRequest for a nation's model-serving with its kubeconfig is Forbidden. On local-ray the devstack's
    token projector (its own identity, sovereign_devstack.token_projector) may, for model-serving only."""
    namespace = "tenant-identity-probe"
    manifest = (
        f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n---\n"
        f"apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {SERVING_SERVICE_ACCOUNT}, "
        f"namespace: {namespace}}}\n"
    )
    kubectl(platform.kube, "apply", "-f", "-", input=manifest)
    as_operator = AsOperator(platform.operator_identity.kubeconfig)
    as_projector = AsOperator(platform.token_projector)
    try:
        for runtime in ("local-ray", "kuberay"):
            platform.operator_roles.grant(runtime)
            refused = kubectl(
                as_operator, "create", "token", SERVING_SERVICE_ACCOUNT, "-n", namespace, check=False
            )
            assert (
                f'error: failed to create token: serviceaccounts "{SERVING_SERVICE_ACCOUNT}" is forbidden: '
                f'User "{USERNAME}" cannot create resource '
                f'"serviceaccounts/token" in API group "" in the namespace "{namespace}"'
            ) in refused.stderr, runtime

        serving = kubectl(as_projector, "create", "token", SERVING_SERVICE_ACCOUNT, "-n", namespace)
        assert serving.stdout.count(".") == 2  # a JWT
        other = kubectl(as_projector, "create", "token", "default", "-n", namespace, check=False)
        assert (
            'error: failed to create token: serviceaccounts "default" is forbidden: '
            f'User "{PROJECTOR_USER}" cannot create resource '
            f'"serviceaccounts/token" in API group "" in the namespace "{namespace}"'
        ) in other.stderr
    finally:
        platform.operator_roles.grant("none")
        kubectl(platform.kube, "delete", "namespace", namespace, "--wait=false")
