"""Built-in kinds on the devstack API server, used as kubectl and the kubernetes client use them."""

from __future__ import annotations

import json
import uuid

import httpx
import kubernetes
import pytest
from kubernetes.client import CoreV1Api, V1ConfigMap, V1ObjectMeta

from tests.helpers import kubectl, wait_until
from tests.servers import KubeAPI


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _core(kube_api: KubeAPI) -> CoreV1Api:
    return CoreV1Api(kubernetes.config.new_client_from_config(config_file=str(kube_api.kubeconfig)))


def test_version_health_and_discovery(kube_api: KubeAPI) -> None:
    version = json.loads(kubectl(kube_api, "version", "-o", "json").stdout)["serverVersion"]
    assert (version["major"], version["minor"]) == ("1", "32")
    for probe in ("/healthz", "/readyz", "/livez"):
        # Anonymous: the health paths are the only ones open to it (tests/devstack/test_kube_authn.py).
        assert httpx.get(kube_api.url + probe, verify=kube_api.ssl_context(admin=False)).text == "ok"
    resources = kubectl(kube_api, "api-resources", "-o", "wide").stdout
    for short in ("ns", "sa", "quota", "limits", "netpol", "cm", "svc", "ev", "crd,crds"):
        assert f" {short} " in resources, short
    core = json.loads(kubectl(kube_api, "get", "--raw", "/api/v1").stdout)
    names = {r["name"]: r for r in core["resources"]}
    assert names["namespaces/status"]["verbs"] == ["get", "patch", "update"]
    assert names["serviceaccounts/token"]["kind"] == "TokenRequest"
    assert names["configmaps"]["namespaced"] and not names["namespaces"]["namespaced"]
    groups = {g["name"] for g in json.loads(kubectl(kube_api, "get", "--raw", "/apis").stdout)["groups"]}
    assert {
        "rbac.authorization.k8s.io",
        "networking.k8s.io",
        "coordination.k8s.io",
        "events.k8s.io",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "authentication.k8s.io",
    } <= groups
    namespaces = kubectl(kube_api, "get", "namespaces").stdout.splitlines()
    assert namespaces[0].split() == ["NAME", "STATUS", "AGE"]
    assert any(line.split()[:2] == ["default", "Active"] for line in namespaces[1:])


def test_auth_reviews_answer_for_the_devstack_admin(kube_api: KubeAPI) -> None:
    assert kubectl(kube_api, "auth", "can-i", "create", "configmaps", "-n", "default").stdout.strip() == "yes"
    assert "system:masters" in kubectl(kube_api, "auth", "whoami").stdout


def test_imperative_creates_and_reapply(kube_api: KubeAPI) -> None:
    ns = _unique("imp")
    kubectl(kube_api, "create", "namespace", ns)
    kubectl(kube_api, "create", "configmap", "settings", "-n", ns, "--from-literal=a=1")
    kubectl(kube_api, "create", "serviceaccount", "robot", "-n", ns)
    kubectl(kube_api, "create", "role", "reader", "-n", ns, "--verb=get", "--resource=configmaps")
    kubectl(kube_api, "create", "secret", "generic", "creds", "-n", ns, "--from-literal=password=s3cret")
    table = kubectl(kube_api, "get", "configmaps", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "DATA", "AGE"] and table[1].split()[:2] == ["settings", "1"]
    manifests = f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: applied, namespace: {ns}}}
data: {{mode: first}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: applied, namespace: {ns}, labels: {{v: "1"}}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: applied, namespace: {ns}}}
rules: [{{apiGroups: [""], resources: [configmaps], verbs: [get]}}]
---
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}, labels: {{tier: one}}}}
"""
    kubectl(kube_api, "apply", "-f", "-", input=manifests)
    changed = (
        manifests.replace("mode: first", "mode: second")
        .replace('v: "1"', 'v: "2"')
        .replace("verbs: [get]", "verbs: [get, list]")
        .replace("tier: one", "tier: two")
    )
    out = kubectl(kube_api, "apply", "-f", "-", input=changed).stdout
    assert out.count("configured") == 4, out
    cm = json.loads(kubectl(kube_api, "get", "configmap", "applied", "-n", ns, "-o", "json").stdout)
    assert cm["data"] == {"mode": "second"} and cm["metadata"]["generation"] == 2
    role = json.loads(kubectl(kube_api, "get", "role", "applied", "-n", ns, "-o", "json").stdout)
    assert role["rules"][0]["verbs"] == ["get", "list"]
    namespace = json.loads(kubectl(kube_api, "get", "namespace", ns, "-o", "json").stdout)
    assert namespace["metadata"]["labels"]["tier"] == "two" and namespace["status"]["phase"] == "Active"
    secret = json.loads(kubectl(kube_api, "get", "secret", "creds", "-n", ns, "-o", "json").stdout)
    assert secret["type"] == "Opaque" and secret["data"] == {"password": "czNjcmV0"}
    assert "robot" in kubectl(kube_api, "describe", "serviceaccount", "robot", "-n", ns).stdout
    # A ServiceAccount controller gives every namespace its `default` account.
    wait_until(
        lambda: kubectl(kube_api, "get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0,
        "default ServiceAccount",
    )
    kubectl(kube_api, "delete", "namespace", ns, "--timeout=30s")


def test_server_side_apply_creates_and_merges(kube_api: KubeAPI) -> None:
    ns = _unique("ssa")
    kubectl(kube_api, "create", "namespace", ns)
    manifest = (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ssa, namespace: {ns}}}\ndata: {{a: '1'}}\n"
    )
    assert (
        "serverside-applied" in kubectl(kube_api, "apply", "--server-side", "-f", "-", input=manifest).stdout
    )
    kubectl(kube_api, "apply", "--server-side", "-f", "-", input=manifest.replace("a: '1'", "b: '2'"))
    data = kubectl(kube_api, "get", "configmap", "ssa", "-n", ns, "-o", "jsonpath={.data}").stdout
    assert json.loads(data) == {"a": "1", "b": "2"}  # no field ownership: earlier fields stay


def test_errors_look_like_kube_apiserver(kube_api: KubeAPI) -> None:
    ns = _unique("err")
    kubectl(kube_api, "create", "namespace", ns)
    missing = kubectl(kube_api, "get", "configmap", "nope", "-n", ns, check=False)
    assert missing.stderr.strip() == 'Error from server (NotFound): configmaps "nope" not found'
    bad_name = kubectl(kube_api, "create", "configmap", "Bad_Name", "-n", ns, check=False)
    assert 'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"' in bad_name.stderr
    no_ns = kubectl(kube_api, "create", "configmap", "x", "-n", _unique("absent"), check=False)
    assert 'namespaces "absent-' in no_ns.stderr and "not found" in no_ns.stderr
    kubectl(kube_api, "create", "configmap", "dup", "-n", ns)
    dup = kubectl(kube_api, "create", "configmap", "dup", "-n", ns, check=False)
    assert 'configmaps "dup" already exists' in dup.stderr
    core = _core(kube_api)
    generated = core.create_namespaced_config_map(
        ns, V1ConfigMap(metadata=V1ObjectMeta(generate_name="gen-"))
    )
    assert generated.metadata.name.startswith("gen-") and len(generated.metadata.name) == len("gen-") + 5
    with pytest.raises(kubernetes.client.ApiException) as invalid_ns:
        core.create_namespace(kubernetes.client.V1Namespace(metadata=V1ObjectMeta(name="has.dots")))
    assert invalid_ns.value.status == 422
    typo = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: typo, namespace: {ns}}}\ndat: {{a: b}}\n"
    strict = kubectl(kube_api, "apply", "-f", "-", input=typo, check=False)
    assert 'strict decoding error: unknown field "dat"' in strict.stderr
    dry = kubectl(kube_api, "apply", "--dry-run=server", "--validate=warn", "-f", "-", input=typo)
    assert 'Warning: unknown field "dat"' in dry.stderr and "(server dry run)" in dry.stdout
    assert kubectl(kube_api, "get", "configmap", "typo", "-n", ns, check=False).returncode != 0


def test_resource_versions_are_cluster_wide_and_monotonic(kube_api: KubeAPI) -> None:
    ns = _unique("rv")
    kubectl(kube_api, "create", "namespace", ns)
    core = _core(kube_api)
    a = core.create_namespaced_config_map(ns, V1ConfigMap(metadata=V1ObjectMeta(name="a")))
    sa = core.create_namespaced_service_account(
        ns, kubernetes.client.V1ServiceAccount(metadata=V1ObjectMeta(name="b"))
    )
    b = core.patch_namespaced_config_map("a", ns, {"data": {"x": "y"}})
    assert (
        int(a.metadata.resource_version)
        < int(sa.metadata.resource_version)
        < int(b.metadata.resource_version)
    )
    assert a.metadata.uid == b.metadata.uid and a.metadata.creation_timestamp == b.metadata.creation_timestamp
    listed = core.list_namespaced_config_map(ns)
    assert int(listed.metadata.resource_version) >= int(b.metadata.resource_version)
    stale = V1ConfigMap(
        metadata=V1ObjectMeta(name="a", resource_version=a.metadata.resource_version), data={"x": "z"}
    )
    with pytest.raises(kubernetes.client.ApiException) as conflict:
        core.replace_namespaced_config_map("a", ns, stale)
    assert conflict.value.status == 409 and json.loads(conflict.value.body)["reason"] == "Conflict"


def test_kubectl_get_events_prints_events_with_fractional_timestamps(kube_api) -> None:
    # kopf posts Events with RFC 3339 times carrying fractions and an offset; the table must still print.
    import uuid

    from tests.helpers import kubectl

    namespace = f"events-{uuid.uuid4().hex[:6]}"
    kubectl(kube_api, "create", "namespace", namespace)
    event = f"""
apiVersion: v1
kind: Event
metadata: {{name: probe-event, namespace: {namespace}}}
involvedObject: {{kind: Namespace, name: {namespace}, apiVersion: v1}}
reason: Probed
message: provisioning step done
type: Normal
source: {{component: kopf}}
firstTimestamp: "2026-11-27T05:21:56.465352+00:00"
lastTimestamp: "2026-11-27T05:21:56.465352+00:00"
"""
    kubectl(kube_api, "apply", "-f", "-", input=event)
    table = kubectl(kube_api, "get", "events", "-n", namespace).stdout
    assert "Probed" in table and "provisioning step done" in table
