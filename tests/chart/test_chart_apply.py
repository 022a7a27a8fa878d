"""Apply the rendered chart to the devstack's API server as a user would (`kubectl apply -f`): the CRDs become
established and served, and the operator's ServiceAccount, roles and bindings exist.

An API server of its own: the chart's ValidatingWebhookConfiguration (failurePolicy Fail, pointing at a
Service nothing serves here) must not reach the session's shared one, where other tests create Tenants.
The emulator serves no Deployments or PersistentVolumeClaims; those two kinds are only validated against
Kubernetes' schemas (test_chart_render.py), and the test fails if any other kind would be left out.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sovereign_devstack.pki import CertificateAuthority

from tests.chart.rendering import NAMESPACE, crd_objects, render_objects
from tests.servers import running_kube_api

pytestmark = pytest.mark.process  # an API server of the module's own, and kubectl

NOT_SERVED_BY_THE_EMULATOR = {("apps/v1", "Deployment"), ("v1", "PersistentVolumeClaim")}
CRD_NAMES = {
    "tenants.sovereign.ai",
    "tenantpolicies.sovereign.ai",
    "modeldeployments.sovereign.ai",
    "datasets.sovereign.ai",
}


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory, devstack_ca: CertificateAuthority) -> Iterator[Path]:
    """The admin's kubeconfig for an API server of this module's own."""
    with running_kube_api(tmp_path_factory.mktemp("chart-kube"), devstack_ca) as api:
        yield api.kubeconfig


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def _yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def test_applied_chart_serves_the_crds_and_grants_the_operator(kubeconfig: Path) -> None:
    objects = render_objects()
    applicable = [o for o in objects if (o["apiVersion"], o["kind"]) not in NOT_SERVED_BY_THE_EMULATOR]
    assert {(o["apiVersion"], o["kind"]) for o in objects} - {
        (o["apiVersion"], o["kind"]) for o in applicable
    } == NOT_SERVED_BY_THE_EMULATOR

    # As `helm install --create-namespace` does: the namespace, then crds/, then the templates.
    kubectl(kubeconfig, "create", "namespace", NAMESPACE)
    kubectl(kubeconfig, "apply", "-f", "-", stdin=_yaml(crd_objects()))
    kubectl(
        kubeconfig, "wait", "--for=condition=Established", "--timeout=30s", *[f"crd/{n}" for n in CRD_NAMES]
    )
    kubectl(kubeconfig, "apply", "-f", "-", stdin=_yaml(applicable))

    crds = json.loads(kubectl(kubeconfig, "get", "crd", "-o", "json"))["items"]
    established = {
        crd["metadata"]["name"]
        for crd in crds
        if any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"]["conditions"])
    }
    assert established >= CRD_NAMES
    served = kubectl(kubeconfig, "api-resources", "--api-group=sovereign.ai", "-o", "name").split()
    assert set(served) == CRD_NAMES
    kubectl(kubeconfig, "get", "tenants")  # the new kind is listable

    name = "sov-sovereign-operator"
    kubectl(kubeconfig, "-n", NAMESPACE, "get", f"serviceaccount/{name}")
    for obj in applicable:
        kind, meta = obj["kind"], obj["metadata"]
        namespace = ["-n", meta["namespace"]] if "namespace" in meta else []
        live = json.loads(
            kubectl(kubeconfig, *namespace, "get", f"{kind.lower()}/{meta['name']}", "-o", "json")
        )
        assert live["metadata"]["labels"]["app.kubernetes.io/instance"] == "sov"
    rbac = {(o["kind"], o["metadata"]["name"]) for o in applicable if o["apiVersion"].startswith("rbac.")}
    if ("ClusterRole", name) in rbac:  # written by the RBAC change; absent before it lands
        binding = json.loads(kubectl(kubeconfig, "get", f"clusterrolebinding/{name}", "-o", "json"))
        assert binding["roleRef"]["name"] == name
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]
    assert ("Role", f"{name}-leader-label") in rbac
