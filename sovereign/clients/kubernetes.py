"""The platform's only way to the Kubernetes API (outside kopf): load a client, apply objects and CRDs.

The same code runs against a real cluster (KUBECONFIG or in-cluster config) and against the devstack.
"""

from __future__ import annotations

import time
from typing import Any

import kubernetes
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError


class KubernetesUnavailable(RuntimeError):
    """The API server could not be reached or refused the platform's credentials."""


def load_api_client(kubeconfig: str | None = None) -> ApiClient:
    """A client from `kubeconfig` (or $KUBECONFIG / ~/.kube/config), else the in-cluster service account."""
    try:
        return kubernetes.config.new_client_from_config(config_file=kubeconfig)
    except kubernetes.config.ConfigException:
        if kubeconfig is not None:
            raise
        kubernetes.config.load_incluster_config()
        return ApiClient()


def server_version(api: ApiClient) -> str:
    try:
        info = kubernetes.client.VersionApi(api).get_code(_request_timeout=5)
    except Exception as error:  # urllib3 raises several kinds for an unreachable server
        raise KubernetesUnavailable(
            f"Kubernetes API at {api.configuration.host} is unreachable: {error}"
        ) from error
    return str(info.git_version)


def apply_object(api: ApiClient, manifest: dict[str, Any]) -> dict[str, Any]:
    """Create `manifest`, or merge-patch it onto the live object: `kubectl apply` without the annotation."""
    dynamic = DynamicClient(api)
    resource = dynamic.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
    metadata = manifest["metadata"]
    namespace = metadata.get("namespace") if resource.namespaced else None
    try:
        resource.get(name=metadata["name"], namespace=namespace)
    except NotFoundError:
        return dict(resource.create(body=manifest, namespace=namespace).to_dict())
    patched = resource.patch(
        body=manifest, name=metadata["name"], namespace=namespace, content_type="application/merge-patch+json"
    )
    return dict(patched.to_dict())


def wait_for_crd_established(api: ApiClient, name: str, timeout: float = 30.0) -> None:
    """Block until the CRD reports Established=True (its resource is served), or raise TimeoutError."""
    extensions = kubernetes.client.ApiextensionsV1Api(api)
    deadline = time.monotonic() + timeout
    while True:
        try:
            crd = extensions.read_custom_resource_definition(name)
            conditions = (crd.status.conditions or []) if crd.status else []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                return
        except ApiException as error:
            if error.status != 404:
                raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"CustomResourceDefinition {name} was not Established within {timeout:.0f}s")
        time.sleep(0.2)
