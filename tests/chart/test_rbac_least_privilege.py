"""The operator's RBAC is exactly what it uses: the chart's ClusterRole and Roles, rendered by Helm's engine,
against every request the real operator made while it was driven through each of its code paths.

The devstack API server writes an audit event per request (`--audit-log`, the verb RBAC authorizes) and
enforces RBAC. The operator runs here as its ServiceAccount `sovereign-system/sovereign-operator` (the chart's
name for release `sovereign`) holding the chart's roles, as every operator test runs it
(sovereign_devstack.operator_identity), with a TokenRequest token of its own in its kubeconfig and as its
projected token file, so its requests are told apart from kubectl's by the credential the API server
authenticated (the token's JTI), not by anything the client says about itself. It runs as the chart's
Deployment configures it (runtime kuberay, webhook served but registered by the chart, its pod named; no
nation's data volume) and is taken through: Tenant → Ready, drift repaired, spec changed, key rotated; a
TenantPolicy published and deleted; a ModelDeployment served as a RayService whose status comes back, then
scaled; a DataSet admitted; the Lease held and released; the Tenant offboarded.

A missing rule fails twice: the API server refuses the call (the operator's path stalls, 403 in its log),
and the test below names it. The test also fails on a rule no call used (unused), apart from the exceptions
below, each with its reason.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
import yaml
from sovereign_devstack.kube.audit_log import request_verb
from sovereign_devstack.kube.request_routing import ResourcePath
from sovereign_devstack.operator_identity import NAMESPACE as RELEASE_NAMESPACE
from sovereign_devstack.operator_identity import (
    SERVICE_ACCOUNT,
    WEBHOOK_CONFIGURATION,
    operator_rbac,
    token_kubeconfig,
)
from sovereign_devstack.processes import free_loopback_port
from sovereign_operator.constants import (
    NATION_LABEL,
    ROTATE_KEY_ANNOTATION,
)

from tests.chart.rbac_rules import (
    Call,
    calls_by_credential,
    grants_of,
    missing_and_unused,
    wildcards,
)
from tests.helpers import kubectl, wait_until
from tests.operator.harness import STARTED_LOG, OperatorProcess, Platform, start_operator_process
from tests.operator.tenants import apply_tenant, condition, delete_tenant, get_json, tenant, wait_ready
from tests.servers import KubeAPI

POD = "sovereign-operator-0"
RUNTIME = "kuberay"  # the chart's default

NATION, NAME, NAMESPACE = "MLT", "malta", "tenant-mlt"
NAMESPACED_KINDS = "resourcequota,limitrange,networkpolicy,serviceaccount,rolebinding,configmap"

# Calls the operator makes here that it does not make in a cluster installed by the chart: none (it serves
# the webhook unmanaged, as the chart runs it; the chart's registration is applied by the admin).
NOT_GRANTED: dict[tuple[str, str, str], str] = {}
# Rules the chart grants that no request records.
NOT_USED = {
    ("rbac.authorization.k8s.io", "clusterroles", "bind"): (
        "not a request verb: the API server checks it when the operator binds the namespace-admin "
        "ClusterRole (the chart's) in a nation's RoleBinding (the devstack too); without it that write is "
        "refused unless the operator held every permission of that role"
    ),
    **{
        ("", "persistentvolumeclaims", verb): (
            "the nation's data volume (runtime kuberay, with audit.enabled or a DataSet): the devstack "
            "serves no PersistentVolumeClaims; once the DataSet is admitted the operator's client finds no "
            "such resource and sends no request (its serving passes fail from then on, after every serving "
            "call above was made)"
        )
        for verb in ("get", "create")
    },
}


@dataclass(frozen=True)
class OperatorIdentity:
    kubeconfig: Path
    token_file: Path
    credential_id: str  # as the API server records it: `JTI=<the token's jti>`


def operator_identity(kube: KubeAPI, directory: Path) -> OperatorIdentity:
    """A token of its own of the chart's ServiceAccount (the platform fixture applied it and its roles), so
    that this run's calls are told apart from every other operator's. (The devstack serves no Pods: the
    operator's label patch on its pod is authorized, answered 404 and recorded all the same.)"""
    token = kubectl(
        kube, "create", "token", SERVICE_ACCOUNT, "-n", RELEASE_NAMESPACE, "--duration=2h"
    ).stdout.strip()
    token_file = directory / "token"
    token_file.write_text(token)
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    kubeconfig = directory / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(token_kubeconfig(kube.kubeconfig, token)))
    return OperatorIdentity(kubeconfig, token_file, f"JTI={jti}")


def chart_env(identity: OperatorIdentity, webhook: dict[str, str]) -> dict[str, str]:
    """The environment the chart's Deployment gives the operator (values default), made to run here."""
    return {
        "KUBECONFIG": str(identity.kubeconfig),
        "SOVEREIGN_SERVICE_ACCOUNT_TOKEN_FILE": str(identity.token_file),  # as projected into the pod
        "SOVEREIGN_OPERATOR_SERVICE_ACCOUNT": f"{RELEASE_NAMESPACE}/{SERVICE_ACCOUNT}",
        "SOVEREIGN_PLATFORM_NAMESPACE": RELEASE_NAMESPACE,
        "SOVEREIGN_POD_NAME": POD,
        "SOVEREIGN_POD_NAMESPACE": RELEASE_NAMESPACE,
        "SOVEREIGN_HEALTH_PORT": str(free_loopback_port()),
        # A Lease of its own: it creates it (as on a fresh cluster) and waits for no other test's leader.
        "SOVEREIGN_LEASE_NAME": f"rbac-{uuid.uuid4().hex[:8]}",
        "SOVEREIGN_RUNTIME": RUNTIME,
        "SOVEREIGN_SERVING_INTERVAL_SECONDS": "1",
        # No SOVEREIGN_AUDIT_DIR (the chart's audit.enabled): the devstack serves no PersistentVolumeClaims.
        # The devstack's API server reaches the webhook on loopback (the chart puts a Service in front).
        **webhook,
    }


def _apply(kube: KubeAPI, body: dict) -> None:
    kubectl(kube, "apply", "-f", "-", input=yaml.safe_dump(body))


def _labelled(kube: KubeAPI) -> int:
    found = kubectl(
        kube, "get", NAMESPACED_KINDS, "-n", NAMESPACE, "-l", f"{NATION_LABEL}={NATION}", "-o=name"
    )
    return len(found.stdout.split())


def _policy_published(kube: KubeAPI) -> bool:
    body = get_json(kube, "tenantpolicy", "mlt-liaison", "-n", NAMESPACE) or {}
    return condition(body, "Ready").get("status") == "True"


def _rayservice(kube: KubeAPI) -> dict | None:
    return get_json(kube, "rayservice", "mlt-serving", "-n", NAMESPACE)


def _model_ready(kube: KubeAPI) -> bool:
    body = get_json(kube, "modeldeployment", "mlt-analyst", "-n", NAMESPACE) or {}
    return condition(body, "Ready").get("status") == "True"


def drive(kube: KubeAPI, operator: OperatorProcess) -> None:
    """Every code path of the operator that calls the API, as users and KubeRay drive it."""
    operator.wait_for_log(STARTED_LOG, timeout=30)
    probe = {"apiVersion": "sovereign.ai/v1alpha1", "kind": "Tenant", "metadata": {"name": NAME}}
    probe["spec"] = {"nation": NATION, "displayName": "probe", "clearance": "NATO SECRET"}
    wait_until(
        lambda: (
            kubectl(
                kube, "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(probe), check=False
            ).returncode
            == 0
        ),
        "the webhook answers",
    )
    # Onboarding: namespace and its objects, Vault keys, identity, conditions and Events.
    apply_tenant(kube, NAME, NATION, clearance="NATO SECRET")
    wait_ready(kube, NAME, timeout=60)
    # Drift: an owned label removed from every object is put back by the timer (a merge patch each).
    objects = _labelled(kube)
    owned = f"{NATION_LABEL}={NATION}"
    kubectl(kube, "label", NAMESPACED_KINDS, "-n", NAMESPACE, "-l", owned, f"{NATION_LABEL}-")
    kubectl(kube, "label", "namespace", NAMESPACE, f"{NATION_LABEL}-")
    wait_until(lambda: _labelled(kube) == objects, "drift repaired", timeout=30)
    # A nation's own rules: published in the bundle, their status written.
    cedar = (
        '@id("mlt-liaison")\npermit (principal, action, resource)\n'
        f'when {{ resource.owner == "{NATION}" && principal.groups.contains("liaison") }};\n'
    )
    policy = {
        "apiVersion": "sovereign.ai/v1alpha1",
        "kind": "TenantPolicy",
        "metadata": {"name": "mlt-liaison", "namespace": NAMESPACE},
        "spec": {"cedar": cedar},
    }
    _apply(kube, policy)
    wait_until(lambda: _policy_published(kube), "mlt-liaison published", timeout=30)
    # Serving on KubeRay: a RayService, KubeRay's report back as the model's status, a scale-up replaces it.
    model = {
        "apiVersion": "sovereign.ai/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "mlt-analyst", "namespace": NAMESPACE},
        "spec": {
            "model": "analyst",
            "source": "/models/mlt/analyst",
            "sha256": {"model.safetensors": "ab" * 32},
            "replicas": 1,
            "resources": {"cpu": "1", "memory": "4Gi"},
            "markings": {"classification": "NATO RESTRICTED"},
        },
    }
    _apply(kube, model)
    wait_until(lambda: _rayservice(kube), "RayService mlt-serving", timeout=30)
    applications = {"mlt-gateway": {"status": "RUNNING"}, "mlt-analyst": {"status": "RUNNING"}}
    status = {"status": {"activeServiceStatus": {"applicationStatuses": applications}}}
    kubectl(
        kube, "patch", "rayservice", "mlt-serving", "-n", NAMESPACE, "--subresource=status",
        "--type=merge", "-p", json.dumps(status),
    )  # fmt: skip
    wait_until(lambda: _model_ready(kube), "mlt-analyst Ready", timeout=30)
    model["spec"]["replicas"] = 2
    _apply(kube, model)

    def scaled() -> bool:
        workers = (_rayservice(kube) or {})["spec"]["rayClusterConfig"]["workerGroupSpecs"]
        return bool(workers[0]["replicas"] == 2)

    wait_until(scaled, "RayService scaled", timeout=30)
    # A DataSet: only admitted (its markings checked against the Tenants).
    dataset = {
        "apiVersion": "sovereign.ai/v1alpha1",
        "kind": "DataSet",
        "metadata": {"name": "mlt-reports", "namespace": NAMESPACE},
        "spec": {
            "source": "reports",
            "markings": {"classification": "NATO RESTRICTED"},
            "embedding": {"modelDeployment": "mlt-analyst"},
        },
    }
    _apply(kube, dataset)
    # A spec change and a requested key rotation.
    version = tenant(kube, NAME)["status"]["keyVersion"]
    apply_tenant(kube, NAME, NATION, clearance="NATO SECRET", quotas={"cpu": "16"})
    kubectl(kube, "annotate", "tenant", NAME, f"{ROTATE_KEY_ANNOTATION}={time.time():.0f}")
    wait_until(
        lambda: tenant(kube, NAME)["status"].get("keyVersion") == version + 1, "key rotated", timeout=30
    )
    # The TenantPolicy withdrawn (kopf's finalizer released), then offboarding.
    kubectl(kube, "delete", "tenantpolicy", "mlt-liaison", "-n", NAMESPACE, "--timeout=30s")
    delete_tenant(kube, NAME, timeout=60)
    assert operator.stop() == 0  # the Lease is released


@pytest.fixture
def operator_calls(
    platform: Platform,
    rayservice_crd: None,
    tmp_path: Path,
) -> Iterator[set[Call]]:
    kube = platform.kube
    identity = operator_identity(kube, tmp_path)
    webhook = platform.serve_webhook(tmp_path)
    offset = kube.audit_log.stat().st_size
    operator = start_operator_process(platform, tmp_path / "operator-logs", chart_env(identity, webhook))
    try:
        drive(kube, operator)
        yield calls_by_credential(kube.audit_log, identity.credential_id, offset)
    finally:
        operator.stop()
        kubectl(kube, "delete", "tenant", NAME, "--ignore-not-found", "--wait=false")
        kubectl(kube, "delete", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION, "--ignore-not-found")
        print(f"--- {operator.log_path}\n{operator.log_text()[-20000:]}")


def test_the_operators_roles_grant_exactly_the_calls_it_makes(operator_calls: set[Call]) -> None:
    # The objects the devstack applied for this runtime: the chart's, rendered by Helm's engine.
    kinds = ("ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding")
    roles = [o for o in operator_rbac(RUNTIME) if o["kind"] in kinds]
    assert not wildcards(roles)
    subject = {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": RELEASE_NAMESPACE}
    grants = grants_of(roles, subject)

    calls = {c for c in operator_calls if (c.group, c.resource, c.verb) not in NOT_GRANTED}
    missing, unused = missing_and_unused(calls, grants)
    unused = [g for g in unused if (g.group, g.resource, g.verb) not in NOT_USED]
    seen = sorted({str(c) for c in operator_calls})
    assert not missing, "the operator made calls its roles do not allow:\n" + "\n".join(map(str, missing))
    assert not unused, (
        "its roles allow what it never did:\n"
        + "\n".join(map(str, unused))
        + ("\n-- it did:\n" + "\n".join(seen))
    )
    # Every exception is still needed: one whose call is no longer made, or whose rule is now used or gone,
    # is taken out.
    made = {(c.group, c.resource, c.verb) for c in operator_calls}
    granted = {(g.group, g.resource, g.verb) for g in grants}
    assert set(NOT_GRANTED) <= made - granted, "a NOT_GRANTED call is no longer made, or is now granted"
    assert set(NOT_USED) <= granted - made, "a NOT_USED rule is now used, or no longer granted"


def _path(
    plural: str, namespace: str | None = "ns", name: str | None = None, sub: str | None = None
) -> ResourcePath:
    return ResourcePath("", "v1", plural, namespace, name, sub)


VERBS = {
    "one object": ("GET", _path("pods", name="p"), {}, "get"),
    "a collection": ("GET", _path("pods"), {}, "list"),
    "all namespaces": ("GET", _path("pods", None), {}, "list"),
    "a watch of many": ("GET", _path("pods", None), {"watch": "true"}, "watch"),
    "a watch of one": ("GET", _path("pods", name="p"), {"watch": "1"}, "watch"),
    "head": ("HEAD", _path("pods", name="p"), {}, "get"),
    "create": ("POST", _path("pods"), {}, "create"),
    "create a subresource": ("POST", _path("serviceaccounts", name="a", sub="token"), {}, "create"),
    "update": ("PUT", _path("configmaps", name="c"), {}, "update"),
    "patch a subresource": ("PATCH", _path("namespaces", None, "n", "status"), {}, "patch"),
    "delete one": ("DELETE", _path("namespaces", None, "n"), {}, "delete"),
    "delete a collection": ("DELETE", _path("pods"), {}, "deletecollection"),
}


@pytest.mark.parametrize(("method", "path", "params", "verb"), VERBS.values(), ids=VERBS.keys())
def test_the_audit_log_names_the_verb_rbac_authorizes(
    method: str, path: ResourcePath, params: dict[str, str], verb: str
) -> None:
    """Kubernetes docs: "Authorization Overview", "Determine the Request Verb"."""
    assert request_verb(method, path, params) == verb
