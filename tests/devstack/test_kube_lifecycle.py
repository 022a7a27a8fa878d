"""Deletion on the devstack API server: finalizers, ownerReference garbage collection, namespace cascade."""

from __future__ import annotations

import json
import uuid

import kubernetes
import pytest
from kubernetes.client import CoreV1Api, V1ConfigMap, V1ObjectMeta, V1OwnerReference

from tests.helpers import kubectl, wait_until
from tests.servers import KubeAPI


def _namespace(kube_api: KubeAPI, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kubectl(
        kube_api, "apply", "-f", "-", input=f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n"
    )
    return name


def _core(kube_api: KubeAPI) -> CoreV1Api:
    return CoreV1Api(kubernetes.config.new_client_from_config(config_file=str(kube_api.kubeconfig)))


def _cm(
    core: CoreV1Api,
    ns: str,
    name: str,
    finalizers: list[str] | None = None,
    owners: list[V1ConfigMap] | None = None,
) -> V1ConfigMap:
    refs = [
        V1OwnerReference(api_version="v1", kind="ConfigMap", name=o.metadata.name, uid=o.metadata.uid)
        for o in owners or []
    ] or None
    meta = V1ObjectMeta(name=name, finalizers=finalizers, owner_references=refs)
    return core.create_namespaced_config_map(ns, V1ConfigMap(metadata=meta, data={"k": "v"}))


def _exists(kube_api: KubeAPI, *args: str) -> bool:
    return kubectl(kube_api, "get", *args, check=False).returncode == 0


def test_finalizers_hold_deletion_until_removed(kube_api: KubeAPI) -> None:
    ns = _namespace(kube_api, "fin")
    core = _core(kube_api)
    _cm(core, ns, "held", finalizers=["example.com/hold"])
    kubectl(kube_api, "delete", "configmap", "held", "-n", ns, "--wait=false")
    held = core.read_namespaced_config_map("held", ns)
    assert held.metadata.deletion_timestamp is not None and held.metadata.finalizers == ["example.com/hold"]
    with pytest.raises(kubernetes.client.ApiException) as added:
        core.patch_namespaced_config_map(
            "held", ns, {"metadata": {"finalizers": ["example.com/hold", "new"]}}
        )
    assert added.value.status == 422 and "no new finalizers" in json.loads(added.value.body)["message"]
    kubectl(
        kube_api,
        "patch",
        "configmap",
        "held",
        "-n",
        ns,
        "--type",
        "merge",
        "-p",
        '{"metadata": {"finalizers": null}}',
    )
    assert not _exists(kube_api, "configmap", "held", "-n", ns)


def test_owner_reference_garbage_collection(kube_api: KubeAPI) -> None:
    ns = _namespace(kube_api, "gc")
    core = _core(kube_api)
    parent = _cm(core, ns, "parent")
    other = _cm(core, ns, "other")
    child = _cm(core, ns, "child", owners=[parent])
    shared = _cm(core, ns, "shared", owners=[parent, other])
    _cm(core, ns, "grandchild", owners=[child])
    kubectl(kube_api, "delete", "configmap", "parent", "-n", ns)
    wait_until(lambda: not _exists(kube_api, "configmap", "child", "-n", ns), "child collected")
    wait_until(lambda: not _exists(kube_api, "configmap", "grandchild", "-n", ns), "grandchild collected")
    # A dependent with a remaining owner stays.
    assert core.read_namespaced_config_map("shared", ns).metadata.uid == shared.metadata.uid


def test_orphan_and_foreground_propagation(kube_api: KubeAPI) -> None:
    ns = _namespace(kube_api, "prop")
    core = _core(kube_api)
    parent = _cm(core, ns, "orphaner")
    _cm(core, ns, "orphan", owners=[parent])
    kubectl(kube_api, "delete", "configmap", "orphaner", "-n", ns, "--cascade=orphan")
    wait_until(lambda: not _exists(kube_api, "configmap", "orphaner", "-n", ns), "owner deleted")
    orphan = core.read_namespaced_config_map("orphan", ns)
    assert not orphan.metadata.owner_references
    owner = _cm(core, ns, "owner")
    _cm(core, ns, "dependent", owners=[owner], finalizers=["example.com/slow"])
    kubectl(kube_api, "delete", "configmap", "owner", "-n", ns, "--cascade=foreground", "--wait=false")
    # Foreground: the owner waits (foregroundDeletion finalizer) until its dependents are gone.
    wait_until(
        lambda: core.read_namespaced_config_map("dependent", ns).metadata.deletion_timestamp,
        "dependent marked for deletion",
    )
    marked = core.read_namespaced_config_map("owner", ns)
    assert "foregroundDeletion" in marked.metadata.finalizers and marked.metadata.deletion_timestamp
    core.patch_namespaced_config_map("dependent", ns, {"metadata": {"finalizers": None}})
    wait_until(
        lambda: not _exists(kube_api, "configmap", "owner", "-n", ns), "owner deleted after dependents"
    )


def test_namespace_deletion_cascades(kube_api: KubeAPI) -> None:
    ns = _namespace(kube_api, "cascade")
    core = _core(kube_api)
    _cm(core, ns, "plain")
    _cm(core, ns, "sticky", finalizers=["example.com/sticky"])
    kubectl(
        kube_api,
        "apply",
        "-f",
        "-",
        input=f"apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: robot, namespace: {ns}}}\n",
    )
    kubectl(kube_api, "delete", "namespace", ns, "--wait=false")
    namespace = core.read_namespace(ns)
    assert namespace.status.phase == "Terminating" and namespace.spec.finalizers == ["kubernetes"]
    status = kubectl(kube_api, "get", "namespace", ns).stdout.splitlines()[1].split()
    assert status[:2] == [ns, "Terminating"]
    wait_until(lambda: not _exists(kube_api, "configmap", "plain", "-n", ns), "contents deleted")
    wait_until(lambda: not _exists(kube_api, "serviceaccount", "robot", "-n", ns), "service account deleted")
    with pytest.raises(kubernetes.client.ApiException) as refused:
        _cm(core, ns, "late")
    assert refused.value.status == 403
    assert "because it is being terminated" in json.loads(refused.value.body)["message"]
    assert core.read_namespaced_config_map("sticky", ns).metadata.deletion_timestamp
    assert _exists(kube_api, "namespace", ns)  # held by the contained object's finalizer
    core.patch_namespaced_config_map("sticky", ns, {"metadata": {"finalizers": None}})
    wait_until(lambda: not _exists(kube_api, "namespace", ns), "namespace removed")
    missing = kubectl(kube_api, "get", "configmaps", "-n", ns, "-o", "name").stdout
    assert missing == ""
    with pytest.raises(kubernetes.client.ApiException) as gone:
        _cm(core, ns, "after")
    assert (
        gone.value.status == 404 and json.loads(gone.value.body)["message"] == f'namespaces "{ns}" not found'
    )
