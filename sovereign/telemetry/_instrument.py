"""CLIENT spans for every call to Vault (hvac), Kubernetes (kubernetes client) and Ray (httpx).

One hook per system, installed where `sovereign/clients/` builds its clients, so the operator and the CLI get
the same spans: `TracedJSONAdapter` (hvac's adapter, `vault <METHOD> <path template>`), `TracedApiClient`
(the ApiClient's `call_api`, `k8s <verb> <resource>`) and `TracedTransport` (an httpx transport,
`ray <METHOD> <path>`). Without a tracer provider they cost one no-op span each.

Attributes follow the OTel semantic conventions, "HTTP client span" (http.request.method, server.address,
server.port, url.template, url.path, http.response.status_code, error.type) and the Kubernetes resource
registry (k8s.namespace.name). Paths hold names only: never a query string, header, token or body.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from hvac.adapters import JSONAdapter, RawAdapter
from kubernetes.client import ApiClient
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from sovereign.telemetry._tracing import span

# Vault paths whose last segments name an object (a key, a policy, a KV path) become templates, so a span
# name stays the same for every nation; the object's name stays in url.path. Token paths never keep theirs.
_VAULT_TEMPLATES = [
    (re.compile(r"^/v1/auth/token/([a-z-]+)/.+$"), r"/v1/auth/token/\1/{token}"),
    (re.compile(r"^/v1/sys/policies/acl/[^/]+$"), "/v1/sys/policies/acl/{name}"),
    (re.compile(r"^/v1/sys/policy/[^/]+$"), "/v1/sys/policy/{name}"),
    (re.compile(r"^/v1/auth/([^/]+)/role/[^/]+$"), r"/v1/auth/\1/role/{name}"),
    (re.compile(r"^/v1/([^/]+)/(data|metadata|delete|undelete|destroy)/.*$"), r"/v1/\1/\2/{path}"),
    (re.compile(r"^/v1/([^/]+)/keys/[^/]+(/[a-z_]+)?$"), r"/v1/\1/keys/{name}\2"),
    (
        re.compile(r"^/v1/([^/]+)/(encrypt|decrypt|rewrap|datakey/wrapped|datakey/plaintext)/[^/]+$"),
        r"/v1/\1/\2/{name}",
    ),
]
_SECRET_PATHS = re.compile(r"^/v1/auth/token/")


def vault_path_template(path: str) -> str:
    for pattern, template in _VAULT_TEMPLATES:
        if pattern.match(path):
            return pattern.sub(template, path)
    return path


def _http_attributes(method: str, url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "http.request.method": method.upper(),
        "server.address": parts.hostname,
        "server.port": parts.port or (443 if parts.scheme == "https" else 80),
    }


def _record_status(current: Span, status_code: int) -> None:
    current.set_attribute("http.response.status_code", status_code)
    if status_code >= 400:
        # "HTTP client span": a 4xx/5xx answer is an error, error.type is the status code as a string.
        current.set_attribute("error.type", str(status_code))
        current.set_status(Status(StatusCode.ERROR))


@contextmanager
def _client_span(name: str, attributes: dict[str, Any]) -> Iterator[Span]:
    with span(name, kind=SpanKind.CLIENT, attributes=attributes) as current:
        yield current


# -- Vault ----------------------------------------------------------------------------------------------


class _TracedRawAdapter(RawAdapter):
    """hvac's RawAdapter with a CLIENT span per request, below JSONAdapter: the response is still raw."""

    def request(
        self, method: str, url: str, headers: Any = None, raise_exception: bool = True, **kwargs: Any
    ) -> Any:
        path = urlsplit(self.urljoin(self.base_uri, url.replace("//", "/"))).path
        template = vault_path_template(path)
        attributes = {
            **_http_attributes(method, self.base_uri),
            "url.template": template,
            "url.path": template if _SECRET_PATHS.match(path) else path,
        }
        with _client_span(f"vault {method.upper()} {template}", attributes) as current:
            response = super().request(method, url, headers, raise_exception, **kwargs)
            _record_status(current, response.status_code)
            return response

    def _raise_for_error(self, method: str, url: str, response: Any) -> None:
        # Vault refused: keep the status code on the span before hvac raises its own exception type.
        _record_status(trace.get_current_span(), response.status_code)
        super()._raise_for_error(method, url, response)  # type: ignore[misc]  # private: not in hvac's stubs


class TracedJSONAdapter(JSONAdapter, _TracedRawAdapter):
    """hvac's default adapter, traced (`hvac.Client(adapter=TracedJSONAdapter)`): JSONAdapter's `super()`
    is now _TracedRawAdapter, so the span sees the status code before the body is decoded."""


# -- Kubernetes -----------------------------------------------------------------------------------------

_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True)
class KubernetesCall:
    """What an API server path names (k8s docs: "API Concepts", "Resource URIs")."""

    verb: str
    resource: str  # plural, with `/subresource`; the path itself for non-resource URLs (/version, /apis)
    template: str
    namespace: str | None = None
    name: str | None = None


def kubernetes_call(method: str, url: str) -> KubernetesCall:
    parts = urlsplit(url)
    segments = [segment for segment in parts.path.split("/") if segment]
    if segments[:1] == ["api"] and len(segments) >= 2:
        prefix, rest = segments[:2], segments[2:]
    elif segments[:1] == ["apis"] and len(segments) >= 3:
        prefix, rest = segments[:3], segments[3:]
    else:
        rest = []
    if not rest:  # discovery and /version
        return KubernetesCall(method.lower(), parts.path, parts.path)
    namespace = None
    template = ["", *prefix]
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
        template += ["namespaces", "{namespace}"]
    resource, name, subresource = rest[0], rest[1] if len(rest) > 1 else None, rest[2:]
    template += [resource, *(["{name}"] if name else []), *subresource]
    method = method.upper()
    if method == "GET":
        watching = parse_qs(parts.query).get("watch", [""])[0] in ("true", "1")
        verb = "get" if name else ("watch" if watching else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _VERBS.get(method, method.lower())
    return KubernetesCall(verb, "/".join([resource, *subresource]), "/".join(template), namespace, name)


class TracedApiClient(ApiClient):
    """The kubernetes ApiClient with a CLIENT span per request (typed APIs and DynamicClient alike)."""

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        call = kubernetes_call(method, url)
        attributes = {
            **_http_attributes(method, url),
            "url.template": call.template,
            "url.path": urlsplit(url).path,
            "k8s.namespace.name": call.namespace,
            "sovereign.k8s.resource": call.resource,
            "sovereign.k8s.name": call.name,
        }
        with _client_span(f"k8s {call.verb} {call.resource}", attributes) as current:
            response = super().call_api(method, url, *args, **kwargs)
            status_code = getattr(response, "status", None)
            if isinstance(status_code, int):
                _record_status(current, status_code)
            return response


# -- Ray (httpx) ----------------------------------------------------------------------------------------


class TracedTransport(httpx.BaseTransport):
    """Wraps an httpx transport: a CLIENT span per request named `<system> <METHOD> <path>`.

    The path is the request's own (the Ray dashboard's REST paths are fixed and hold no names).
    """

    def __init__(self, system: str, inner: httpx.BaseTransport | None = None) -> None:
        self.system = system
        self.inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        attributes = {**_http_attributes(request.method, str(request.url)), "url.template": path}
        with _client_span(f"{self.system} {request.method} {path}", attributes) as current:
            response = self.inner.handle_request(request)
            _record_status(current, response.status_code)
            return response

    def close(self) -> None:
        self.inner.close()
