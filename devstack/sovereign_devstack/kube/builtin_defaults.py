"""Per-kind defaulting that kube-apiserver's built-in strategies do on create and update."""

from __future__ import annotations

import base64
import itertools
from typing import Any

from sovereign_devstack.kube import crds
from sovereign_devstack.kube.resource_types import ResourceType

NAMESPACE_FINALIZER = "kubernetes"  # k8s docs: /docs/concepts/overview/working-with-objects/namespaces/
_cluster_ips = itertools.count(10)


def on_create(rt: ResourceType, obj: dict[str, Any]) -> None:
    key = rt.key
    if key == ("", "namespaces"):
        # The namespace lifecycle controller removes the `kubernetes` finalizer once the namespace is empty.
        spec = obj.setdefault("spec", {})
        spec.setdefault("finalizers", [NAMESPACE_FINALIZER])
        obj["status"] = {"phase": "Active"}
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif key == ("", "services"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        if spec["type"] != "ExternalName" and "clusterIP" not in spec:
            n = next(_cluster_ips)
            spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 1}"
            spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        obj["status"] = {"loadBalancer": {}}
    elif key == ("", "resourcequotas"):
        # The quota controller publishes the hard limits; the devstack does not count usage.
        hard = dict((obj.get("spec") or {}).get("hard") or {})
        obj["status"] = {"hard": hard, "used": {k: "0" for k in hard}}
    elif key == crds.CRD_KEY:
        crds.default_crd(obj)
        finalizers = obj["metadata"].setdefault("finalizers", [])
        if crds.CLEANUP_FINALIZER not in finalizers:
            finalizers.append(crds.CLEANUP_FINALIZER)
        obj["status"] = crds.established_status(obj)
    on_write(rt, obj)


def on_write(rt: ResourceType, obj: dict[str, Any]) -> None:
    if rt.key == ("", "secrets"):
        # k8s docs: /docs/concepts/configuration/secret/ — stringData is write-only, merged into data.
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
    elif rt.key == ("", "namespaces"):
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif rt.key == crds.CRD_KEY and "status" in obj and not obj["metadata"].get("deletionTimestamp"):
        crds.default_crd(obj)
        obj["status"] = crds.established_status(obj)
