"""Selectors, lists and watches on the devstack API server, as kubectl and the kubernetes client use them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid

import kubernetes
from kubernetes.client import CoreV1Api, V1ConfigMap, V1ObjectMeta
from sovereign_devstack.kube.builtin_resources import builtin_resource_types
from sovereign_devstack.kube.store import Store
from sovereign_devstack.kube.watch import WatchStream

from tests.helpers import kubectl
from tests.servers import KubeAPI


def _namespace(kube_api: KubeAPI, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kubectl(
        kube_api, "apply", "-f", "-", input=f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n"
    )
    return name


def _core(kube_api: KubeAPI) -> CoreV1Api:
    return CoreV1Api(kubernetes.config.new_client_from_config(config_file=str(kube_api.kubeconfig)))


def _cm(core: CoreV1Api, ns: str, name: str, labels: dict[str, str] | None = None) -> V1ConfigMap:
    return core.create_namespaced_config_map(
        ns, V1ConfigMap(metadata=V1ObjectMeta(name=name, labels=labels), data={"k": "v"})
    )


def _names(kube_api: KubeAPI, *args: str) -> list[str]:
    out = kubectl(kube_api, "get", "configmaps", "-o", "name", *args).stdout
    return sorted(line.split("/", 1)[1] for line in out.split())


def test_label_and_field_selectors(kube_api: KubeAPI) -> None:
    ns = _namespace(kube_api, "sel")
    core = _core(kube_api)
    _cm(core, ns, "a", {"tier": "web", "env": "prod"})
    _cm(core, ns, "b", {"tier": "db", "env": "prod"})
    _cm(core, ns, "c", {"tier": "web"})
    assert _names(kube_api, "-n", ns, "-l", "tier=web") == ["a", "c"]
    assert _names(kube_api, "-n", ns, "-l", "tier==web,env=prod") == ["a"]
    assert _names(kube_api, "-n", ns, "-l", "tier!=web") == ["b"]
    assert _names(kube_api, "-n", ns, "-l", "tier in (db, cache)") == ["b"]
    assert _names(kube_api, "-n", ns, "-l", "tier notin (db)") == ["a", "c"]
    assert _names(kube_api, "-n", ns, "-l", "env") == ["a", "b"]
    assert _names(kube_api, "-n", ns, "-l", "!env") == ["c"]
    assert _names(kube_api, "-n", ns, "--field-selector", "metadata.name=b") == ["b"]
    assert _names(kube_api, "-n", ns, "--field-selector", "metadata.name!=b,metadata.name!=kube") == [
        "a",
        "c",
    ]
    everywhere = _names(kube_api, "-A", "--field-selector", f"metadata.namespace={ns}", "-l", "tier")
    assert everywhere == ["a", "b", "c"]
    listed = core.list_namespaced_config_map(ns, label_selector="tier=web", limit=1)
    assert len(listed.items) == 1 and listed.metadata._continue
    rest = core.list_namespaced_config_map(ns, label_selector="tier=web", _continue=listed.metadata._continue)
    assert [i.metadata.name for i in listed.items + rest.items] == ["a", "c"]
    raw = json.loads(kubectl(kube_api, "get", "--raw", f"/api/v1/namespaces/{ns}/configmaps").stdout)
    assert (
        raw["kind"] == "ConfigMapList"
        and raw["apiVersion"] == "v1"
        and int(raw["metadata"]["resourceVersion"])
    )


def test_watch_resumes_from_a_resource_version(kube_api: KubeAPI) -> None:
    ns = _namespace(kube_api, "watch")
    core = _core(kube_api)
    first = _cm(core, ns, "first", {"w": "1"})
    core.patch_namespaced_config_map("first", ns, {"data": {"k": "changed"}})
    _cm(core, ns, "second", {"w": "1"})
    core.delete_namespaced_config_map("first", ns)
    watch = kubernetes.watch.Watch()
    events = [
        (e["type"], e["object"].metadata.name)
        for e in watch.stream(
            core.list_namespaced_config_map,
            ns,
            resource_version=first.metadata.resource_version,
            label_selector="w=1",
            timeout_seconds=1,
        )
    ]
    assert events == [("MODIFIED", "first"), ("ADDED", "second"), ("DELETED", "first")]
    # Without a resourceVersion a watch starts with the current state as ADDED events.
    fresh = [
        (e["type"], e["object"].metadata.name)
        for e in kubernetes.watch.Watch().stream(
            core.list_namespaced_config_map, ns, label_selector="w=1", timeout_seconds=1
        )
    ]
    assert fresh == [("ADDED", "second")]


def test_watch_sees_objects_leave_a_label_selection(kube_api: KubeAPI) -> None:
    ns = _namespace(kube_api, "leave")
    core = _core(kube_api)
    created = _cm(core, ns, "mover", {"keep": "yes"})
    core.patch_namespaced_config_map("mover", ns, {"metadata": {"labels": {"keep": "no"}}})
    events = [
        (e["type"], e["object"].metadata.name)
        for e in kubernetes.watch.Watch().stream(
            core.list_namespaced_config_map,
            ns,
            resource_version=created.metadata.resource_version,
            label_selector="keep=yes",
            timeout_seconds=1,
        )
    ]
    assert events == [("DELETED", "mover")]


def test_kubectl_get_watch_prints_new_objects(kube_api: KubeAPI) -> None:
    ns = _namespace(kube_api, "kgw")
    core = _core(kube_api)
    _cm(core, ns, "before")
    proc = subprocess.Popen(
        ["kubectl", "get", "configmaps", "-n", ns, "-w"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kube_api.env(),
    )
    try:
        assert proc.stdout is not None
        header = proc.stdout.readline().split()
        assert header == ["NAME", "DATA", "AGE"]
        assert proc.stdout.readline().split()[:2] == ["before", "1"]
        _cm(core, ns, "after")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.split()[:1] == ["after"]:
                break
        else:
            raise AssertionError("kubectl get -w did not print the new ConfigMap")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_too_old_resource_version_gets_410_gone() -> None:
    async def scenario() -> list[dict]:
        store = Store()
        store.history = type(store.history)(maxlen=3)
        rt = next(t for t in builtin_resource_types() if t.plural == "configmaps")
        for i in range(6):
            store.put(rt.key, {"metadata": {"name": f"c{i}", "namespace": "n", "uid": str(i)}}, "ADDED")
        stream = WatchStream(store, rt, "v1", "n", None, {"resourceVersion": "1"}, "")
        return [json.loads(chunk) for chunk in stream._initial()]

    (event,) = asyncio.run(scenario())
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
    assert event["object"]["message"].startswith("too old resource version: 1")
