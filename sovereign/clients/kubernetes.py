"""The platform's only way to the Kubernetes API (outside kopf): load a client, apply objects and CRDs.

The same code runs against a real cluster (KUBECONFIG or in-cluster config) and against the devstack.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any, cast

import kubernetes
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

from sovereign.telemetry import TracedApiClient


class KubernetesUnavailable(RuntimeError):
    """The API server could not be reached or refused the platform's credentials."""


def load_api_client(kubeconfig: str | None = None) -> ApiClient:
    """A client from `kubeconfig` (or $KUBECONFIG / ~/.kube/config), else the in-cluster service account.

    Every request it makes is a CLIENT span (sovereign.telemetry); a no-op while tracing is not configured.
    """
    configuration = kubernetes.client.Configuration()
    try:
        # What new_client_from_config does, with the traced ApiClient.
        kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    except kubernetes.config.ConfigException:
        if kubeconfig is not None:
            raise
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    return TracedApiClient(configuration=configuration)


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


# -- objects by manifest (the operator's reconcilers and the CLI) ------------------------------------


def dynamic_client(api: ApiClient) -> DynamicClient:
    """A DynamicClient; it runs API discovery once, so callers keep one per process (kopf: in memo)."""
    return DynamicClient(api)


# DynamicClient's discovery cache is not thread-safe: a lookup miss makes it drop and rebuild the cache, and
# kopf runs sync handlers in parallel threads, which then collided (KeyError 'resources'). Lookups take turns;
# the API calls themselves still run in parallel.
_discovery_lock = threading.Lock()


def _resource(dynamic: DynamicClient, api_version: str, kind: str) -> Any:
    with _discovery_lock:
        return dynamic.resources.get(api_version=api_version, kind=kind)


def read_object(
    dynamic: DynamicClient, api_version: str, kind: str, name: str, namespace: str | None = None
) -> dict[str, Any] | None:
    """The live object as a dict, or None if it does not exist."""
    resource = _resource(dynamic, api_version, kind)
    try:
        return dict(resource.get(name=name, namespace=namespace if resource.namespaced else None).to_dict())
    except NotFoundError:
        return None


def create_object(dynamic: DynamicClient, manifest: dict[str, Any]) -> dict[str, Any]:
    resource = _resource(dynamic, manifest["apiVersion"], manifest["kind"])
    namespace = manifest["metadata"].get("namespace") if resource.namespaced else None
    return dict(resource.create(body=manifest, namespace=namespace).to_dict())


def merge_patch_object(dynamic: DynamicClient, manifest: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7386): lists in `manifest` replace the live lists as a whole."""
    resource = _resource(dynamic, manifest["apiVersion"], manifest["kind"])
    metadata = manifest["metadata"]
    namespace = metadata.get("namespace") if resource.namespaced else None
    patched = resource.patch(
        body=manifest, name=metadata["name"], namespace=namespace, content_type="application/merge-patch+json"
    )
    return dict(patched.to_dict())


def replace_object(dynamic: DynamicClient, manifest: dict[str, Any]) -> dict[str, Any]:
    """PUT `manifest` over the live object: keys it lacks are removed (a merge patch would keep them)."""
    resource = _resource(dynamic, manifest["apiVersion"], manifest["kind"])
    namespace = manifest["metadata"].get("namespace") if resource.namespaced else None
    return dict(resource.replace(body=manifest, namespace=namespace).to_dict())


def merge_patch_status(
    dynamic: DynamicClient,
    api_version: str,
    kind: str,
    name: str,
    namespace: str | None,
    status: dict[str, Any],
) -> bool:
    """Merge-patch the status subresource; False if the object is gone."""
    resource = _resource(dynamic, api_version, kind)
    try:
        resource.status.patch(
            body={"status": status},
            name=name,
            namespace=namespace if resource.namespaced else None,
            content_type="application/merge-patch+json",
        )
    except NotFoundError:
        return False
    return True


def delete_object(
    dynamic: DynamicClient, api_version: str, kind: str, name: str, namespace: str | None = None
) -> bool:
    """Request deletion; False if it was already gone. Finalizers may keep it a while longer."""
    resource = _resource(dynamic, api_version, kind)
    try:
        resource.delete(name=name, namespace=namespace if resource.namespaced else None)
    except NotFoundError:
        return False
    return True


def list_objects(
    dynamic: DynamicClient, api_version: str, kind: str, namespace: str | None = None
) -> list[dict[str, Any]] | None:
    """Every object of a kind (in `namespace`), or None if the API server does not serve that kind."""
    try:
        resource = _resource(dynamic, api_version, kind)
    except ResourceNotFoundError:
        return None
    try:
        items = resource.get(namespace=namespace).to_dict().get("items") or []
    except NotFoundError:
        return None
    return [dict(item) for item in items]


# -- Leases (leader election) -------------------------------------------------------------------------
# k8s docs: /docs/concepts/architecture/leases/ — a Lease's holder renews it before leaseDurationSeconds
# pass; writers use the resourceVersion they read, so a concurrent writer gets 409 Conflict.


class LeaseConflict(RuntimeError):
    """Someone else wrote the Lease since it was read (HTTP 409)."""


def _request_body(manifest: dict[str, Any]) -> Any:
    # The typed API methods are annotated with their model class but take the object's JSON form too, as
    # sent here (the same bytes with every client version this package allows).
    return manifest


def read_lease(api: ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    coordination = kubernetes.client.CoordinationV1Api(api)
    try:
        lease = coordination.read_namespaced_lease(name, namespace, _request_timeout=5)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return dict(api.sanitize_for_serialization(lease))


def write_lease(api: ApiClient, namespace: str, lease: dict[str, Any]) -> dict[str, Any]:
    """Create the Lease (no resourceVersion) or replace it at the resourceVersion it was read at."""
    coordination = kubernetes.client.CoordinationV1Api(api)
    name = lease["metadata"]["name"]
    body = _request_body(lease)
    try:
        if lease["metadata"].get("resourceVersion"):
            written = coordination.replace_namespaced_lease(name, namespace, body, _request_timeout=5)
        else:
            written = coordination.create_namespaced_lease(namespace, body, _request_timeout=5)
    except ApiException as error:
        if error.status == 409:
            raise LeaseConflict(f"Lease {namespace}/{name} changed since it was read") from error
        raise
    return dict(api.sanitize_for_serialization(written))


def ensure_namespace(api: ApiClient, name: str) -> None:
    core = kubernetes.client.CoreV1Api(api)
    try:
        core.read_namespace(name, _request_timeout=5)
    except ApiException as error:
        if error.status != 404:
            raise
        try:
            core.create_namespace(_request_body({"metadata": {"name": name}}), _request_timeout=5)
        except ApiException as create_error:
            if create_error.status != 409:  # created by someone else meanwhile
                raise


# -- Tenants (the CLI) -----------------------------------------------------------------------------------


def _json_object(answer: object) -> dict[str, Any]:
    # The custom objects API returns the parsed JSON, typed `object` by the client: a JSON object here.
    return cast(dict[str, Any], answer)


def list_tenants(api: ApiClient) -> list[dict[str, Any]]:
    custom = kubernetes.client.CustomObjectsApi(api)
    listed = _json_object(custom.list_cluster_custom_object("sovereign.ai", "v1alpha1", "tenants"))
    return list(listed["items"])


def read_tenant(api: ApiClient, name: str) -> dict[str, Any]:
    custom = kubernetes.client.CustomObjectsApi(api)
    return dict(_json_object(custom.get_cluster_custom_object("sovereign.ai", "v1alpha1", "tenants", name)))


def annotate_tenant(api: ApiClient, name: str, annotations: dict[str, str]) -> None:
    custom = kubernetes.client.CustomObjectsApi(api)
    custom.patch_cluster_custom_object(
        "sovereign.ai", "v1alpha1", "tenants", name, {"metadata": {"annotations": annotations}}
    )


# -- ServiceAccount tokens and Secrets (the operator logging in to a nation's Vault) ---------------------


def create_namespaced_service_account_token(
    api: ApiClient,
    namespace: str,
    name: str,
    expiration_seconds: int = 600,
    audiences: list[str] | None = None,
) -> str:
    """A short-lived token of ServiceAccount `namespace/name` through the TokenRequest API.

    Without `audiences` the token carries the API server's own audience, which is what a TokenReview with no
    audiences (Vault's Kubernetes auth without a role audience) accepts.
    k8s docs: /docs/reference/kubernetes-api/authentication-resources/token-request-v1/ (at least 600 s).
    """
    core = kubernetes.client.CoreV1Api(api)
    spec: dict[str, Any] = {"expirationSeconds": expiration_seconds}
    if audiences:
        spec["audiences"] = audiences
    body = _request_body({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
    response = core.create_namespaced_service_account_token(name, namespace, body, _request_timeout=10)
    if response.status is None:
        raise KubernetesUnavailable(f"the TokenRequest for {namespace}/{name} returned no status")
    return str(response.status.token)


def read_secret_value(api: ApiClient, namespace: str, name: str, key: str) -> str | None:
    """The decoded value of `key` in Secret `namespace/name`, or None if the Secret or the key is absent."""
    core = kubernetes.client.CoreV1Api(api)
    try:
        secret = core.read_namespaced_secret(name, namespace, _request_timeout=10)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    encoded = (secret.data or {}).get(key)  # the API server merges write-only stringData into data
    return None if encoded is None else base64.b64decode(encoded).decode()


# -- The catalogue (the CLI): models, datasets and the published policy bundle -------------------------


def list_sovereign_objects(api: ApiClient, plural: str) -> list[dict[str, Any]]:
    """Every `sovereign.ai/v1alpha1` object of `plural` (e.g. modeldeployments), in all namespaces.

    [] when the API server does not serve that kind (its CRD is not installed).
    """
    custom = kubernetes.client.CustomObjectsApi(api)
    try:
        listed = _json_object(
            custom.list_cluster_custom_object("sovereign.ai", "v1alpha1", plural, _request_timeout=10)
        )
    except ApiException as error:
        if error.status == 404:
            return []
        raise
    return [dict(item) for item in listed.get("items") or []]


def read_configmap_data(api: ApiClient, namespace: str, name: str) -> dict[str, str] | None:
    """The data of ConfigMap `namespace/name`, or None if it does not exist."""
    core = kubernetes.client.CoreV1Api(api)
    try:
        configmap = core.read_namespaced_config_map(name, namespace, _request_timeout=10)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return dict(configmap.data or {})
