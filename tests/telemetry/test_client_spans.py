"""CLIENT spans for the platform's clients: hvac (Vault), the kubernetes client and httpx (Ray).

The clients are the ones `sovereign/clients/` builds, called against the devstack's real Vault and Kubernetes
API in a subprocess that exports to a real OTLP/HTTP receiver (a process installs its tracer provider once).
Path parsing is checked as data; without a tracer provider the hooks change nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import httpx
import pytest
from sovereign_devstack.otlp_receiver import OtlpReceiver

from sovereign.telemetry import TracedTransport
from sovereign.telemetry._instrument import KubernetesCall, kubernetes_call, vault_path_template
from tests.servers import KubeAPI, VaultServer

RAY_TOKEN = "ray-canary-token-5d1c"

EMIT = textwrap.dedent(
    """
    import sys
    from sovereign.clients import kubernetes as kube, ray, vault
    from sovereign.telemetry import configure_tracing, flush_tracing, span

    vault_url, root_token, kubeconfig, dashboard = sys.argv[1:5]
    assert configure_tracing("probe")
    with span("probe"):
        client = vault.vault_client(vault_url, root_token)
        assert vault.read_transit_key(client, "transit", "telemetry-probe-absent") is None
        api = kube.load_api_client(kubeconfig)
        assert kube.read_configmap_data(api, "default", "telemetry-probe-absent") is None
        assert kube.list_objects(kube.dynamic_client(api), "v1", "Namespace")
        try:
            ray.get_serve_status(dashboard, token=sys.argv[5])
        except ray.RayServeError:
            pass
    try:
        vault.vault_client("http://127.0.0.1:1", root_token)
    except vault.VaultUnavailable:
        pass
    flush_tracing()
    """
)


@pytest.fixture
def client_spans(
    otlp_receiver: OtlpReceiver, vault_server: VaultServer, kube_api: KubeAPI
) -> list[dict[str, Any]]:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint,
        "PATH": "/usr/bin:/bin",
        "VAULT_CACERT": str(vault_server.ca_cert),  # the Vault client verifies OpenBao's certificate with it
    }
    args = [vault_server.url, vault_server.root_token, str(kube_api.kubeconfig), otlp_receiver.endpoint]
    subprocess.run([sys.executable, "-c", EMIT, *args, RAY_TOKEN], env=env, check=True, timeout=60)
    return otlp_receiver.spans()


def _named(spans: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    found = [span for span in spans if span["name"] == name]
    assert found, f"no span {name!r} among {sorted({span['name'] for span in spans})}"
    return found


def test_vault_kubernetes_and_ray_calls_are_client_spans_inside_the_caller(
    client_spans: list[dict[str, Any]], vault_server: VaultServer, otlp_receiver: OtlpReceiver
) -> None:
    [probe] = _named(client_spans, "probe")
    clients = [span for span in client_spans if span["parent_span_id"] == probe["span_id"]]
    assert clients and all(span["kind"] == "SPAN_KIND_CLIENT" for span in clients)
    assert {span["name"].split(" ")[0] for span in clients} == {"vault", "k8s", "ray"}

    [health] = _named(clients, "vault GET /v1/sys/health")
    assert health["attributes"]["http.response.status_code"] == 200
    assert health["attributes"]["server.address"] == "127.0.0.1"
    [absent_key] = _named(clients, "vault GET /v1/transit/keys/{name}")
    assert absent_key["attributes"]["url.path"] == "/v1/transit/keys/telemetry-probe-absent"
    assert absent_key["attributes"]["http.response.status_code"] == 404
    assert absent_key["attributes"]["error.type"] == "InvalidPath"  # hvac's exception type for the 404
    assert absent_key["status"] == "STATUS_CODE_ERROR"

    [configmap] = _named(clients, "k8s get configmaps")
    assert configmap["attributes"]["k8s.namespace.name"] == "default"
    assert configmap["attributes"]["url.template"] == "/api/v1/namespaces/{namespace}/configmaps/{name}"
    assert configmap["attributes"]["sovereign.k8s.name"] == "telemetry-probe-absent"
    assert configmap["attributes"]["http.response.status_code"] == 404
    [namespaces] = _named(clients, "k8s list namespaces")
    assert namespaces["attributes"]["http.response.status_code"] == 200

    [serve] = _named(clients, "ray GET /api/serve/applications/")
    assert serve["attributes"]["http.request.method"] == "GET"
    assert serve["attributes"]["http.response.status_code"] == 404

    # An unreachable Vault: the span keeps the exception's type only.
    [refused] = [span for span in _named(client_spans, "vault GET /v1/sys/health") if span is not health]
    assert refused["attributes"]["error.type"] == "ConnectionError"
    assert refused["attributes"]["server.port"] == 1
    assert refused["events"] == []

    # Tokens travel in headers only, which no span records.
    secrets = [vault_server.root_token.encode(), RAY_TOKEN.encode()]
    assert not any(secret in body for body in otlp_receiver.raw_bodies() for secret in secrets)
    assert all(RAY_TOKEN not in json.dumps(span) for span in client_spans)


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        pytest.param(
            "GET",
            "https://k:6443/api/v1/namespaces/tenant-fra/configmaps/jwks",
            KubernetesCall(
                "get", "configmaps", "/api/v1/namespaces/{namespace}/configmaps/{name}", "tenant-fra", "jwks"
            ),
            id="namespaced-get",
        ),
        pytest.param(
            "PATCH",
            "https://k/apis/sovereign.ai/v1alpha1/tenants/fra/status",
            KubernetesCall(
                "patch", "tenants/status", "/apis/sovereign.ai/v1alpha1/tenants/{name}/status", None, "fra"
            ),
            id="cluster-scoped-subresource",
        ),
        pytest.param(
            "GET",
            "https://k/apis/sovereign.ai/v1alpha1/modeldeployments",
            KubernetesCall("list", "modeldeployments", "/apis/sovereign.ai/v1alpha1/modeldeployments"),
            id="list-all-namespaces",
        ),
        pytest.param(
            "GET",
            "https://k/api/v1/namespaces/tenant-fra",
            KubernetesCall("get", "namespaces", "/api/v1/namespaces/{name}", None, "tenant-fra"),
            id="a-namespace-itself",
        ),
        pytest.param(
            "POST",
            "https://k/api/v1/namespaces/ops/serviceaccounts/op/token",
            KubernetesCall(
                "create",
                "serviceaccounts/token",
                "/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                "ops",
                "op",
            ),
            id="token-request",
        ),
        pytest.param(
            "GET",
            "https://k/api/v1/pods?watch=true",
            KubernetesCall("watch", "pods", "/api/v1/pods"),
            id="watch",
        ),
        pytest.param(
            "DELETE",
            "https://k/api/v1/namespaces/a/pods",
            KubernetesCall("deletecollection", "pods", "/api/v1/namespaces/{namespace}/pods", "a"),
            id="deletecollection",
        ),
        pytest.param(
            "GET", "https://k/version", KubernetesCall("get", "/version", "/version"), id="non-resource"
        ),
    ],
)
def test_kubernetes_paths_name_the_verb_resource_and_template(
    method: str, url: str, expected: KubernetesCall
) -> None:
    assert kubernetes_call(method, url) == expected


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/v1/transit/keys/tenant-fra", "/v1/transit/keys/{name}"),
        ("/v1/transit/keys/tenant-fra/rotate", "/v1/transit/keys/{name}/rotate"),
        ("/v1/transit/datakey/wrapped/tenant-fra", "/v1/transit/datakey/wrapped/{name}"),
        ("/v1/secret/data/tenants/fra/issuer", "/v1/secret/data/{path}"),
        ("/v1/secret/metadata/tenants/fra/", "/v1/secret/metadata/{path}"),
        ("/v1/sys/policies/acl/tenant-fra", "/v1/sys/policies/acl/{name}"),
        ("/v1/auth/kubernetes/role/tenant-fra", "/v1/auth/kubernetes/role/{name}"),
        ("/v1/auth/token/lookup/hvs.secret", "/v1/auth/token/lookup/{token}"),
        ("/v1/auth/kubernetes/login", "/v1/auth/kubernetes/login"),
        ("/v1/sys/health", "/v1/sys/health"),
    ],
)
def test_vault_paths_become_templates_without_names(path: str, template: str) -> None:
    assert vault_path_template(path) == template


def test_without_a_tracer_provider_the_transport_passes_requests_through() -> None:
    inner = httpx.MockTransport(lambda request: httpx.Response(201, json={"path": request.url.path}))
    with httpx.Client(transport=TracedTransport("ray", inner)) as client:
        response = client.put("http://ray.invalid/api/serve/applications/", json={})
    assert response.status_code == 201 and response.json() == {"path": "/api/serve/applications/"}
