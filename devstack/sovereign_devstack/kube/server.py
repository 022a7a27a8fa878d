"""The devstack's Kubernetes API server: kmock's KubernetesEmulator, with request handling taken over.

kmock provides the HTTP server, the `Request` object and Status error rendering; this subclass routes every
request itself so that resources behave like kube-apiserver's (see the sibling modules for each concern).
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import time
import traceback
from typing import Any

import aiohttp.web
import yaml
from kmock import KubernetesEmulator, KubernetesError, Request

from sovereign_devstack.kube import (
    access_reviews,
    crds,
    discovery,
    errors,
    impersonation,
    openapi,
    protobuf_bodies,
    rbac,
    rbac_bootstrap,
    server_side_apply,
)
from sovereign_devstack.kube.admission import CURRENT_USER, WebhookAdmission
from sovereign_devstack.kube.audit_log import AuditLog, audit_event
from sovereign_devstack.kube.authn import Authenticator
from sovereign_devstack.kube.builtin_resources import builtin_resource_types
from sovereign_devstack.kube.controllers import Controllers
from sovereign_devstack.kube.object_writes import FIELD_VALIDATION, WARNINGS, ObjectWriter
from sovereign_devstack.kube.rbac_writes import EscalationCheck
from sovereign_devstack.kube.request_routing import ResourcePath, parse_resource_path
from sovereign_devstack.kube.resource_handlers import ResourceAPI
from sovereign_devstack.kube.resource_types import Registry, ResourceType
from sovereign_devstack.kube.service_account_tokens import TokenIssuer
from sovereign_devstack.kube.store import Store, new_uid, now_rfc3339

log = logging.getLogger("sovereign_devstack.kube")
# The audit event of the request being served (None: not a resource request), completed by `__call__`.
AUDIT_EVENT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("audit", default=None)

VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-sovereign-devstack",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def warning_header(text: str) -> str:
    """`299 - "text"` (k8s docs: /docs/reference/using-api/api-concepts/#warnings), the text quoted as
    kube-apiserver's NewWarningHeader does. A field name may hold any character, but a header value may not
    hold control characters (RFC 9110, section 5.5): they are escaped, never sent (aiohttp refuses them and
    the client would get its connection dropped instead of an answer)."""
    printable = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)
    return '299 - "' + printable.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DevstackKubeAPI(KubernetesEmulator):  # type: ignore[misc]
    def __init__(
        self,
        tokens: TokenIssuer,
        audit_log: AuditLog | None = None,
        store: Store | None = None,
        static_tokens: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.audit_log = audit_log
        self.store = store or Store()  # a Store on a data dir comes back with the objects it had
        self.registry = Registry(builtin_resource_types() + access_reviews.access_review_types())
        self.tokens = tokens
        self.authenticator = Authenticator(tokens, self.store, static_tokens or {})
        self.authorizer = rbac.RBACAuthorizer(self.store)
        self.admission = WebhookAdmission(self.store)
        self.escalation = EscalationCheck(self.authorizer)
        self.writer = ObjectWriter(self.store, self._admit)
        self.writer.after_write.append(self._track_crds)
        self.api = ResourceAPI(self.store, self.registry, self.writer)
        self.api.special[("", "serviceaccounts", "token")] = self.tokens.handle_token_request(self.store)
        self.api.special[("authentication.k8s.io", "tokenreviews", None)] = self.tokens.handle_token_review(
            self.store
        )
        for review in access_reviews.access_review_types():
            self.api.special[(review.group, review.plural, None)] = access_reviews.review_handler(
                self.authorizer
            )
        self.controllers = Controllers(self.store, self.registry, self.writer)
        for crd in self.store.list(crds.CRD_KEY):  # restored CRDs are served again
            self.registry.add(crds.resource_type(crd))
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            if self.store.get(("", "namespaces"), None, name) is None:
                self._seed_namespace(name)
        rbac_bootstrap.ensure_bootstrap_policy(self.store)

    async def _admit(self, *args: Any) -> None:
        """RBAC's escalation check (kube does it in the RBAC objects' storage), then the webhooks."""
        await self.escalation.review(*args)
        await self.admission.review(*args)

    def _seed_namespace(self, name: str) -> None:
        obj = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "uid": new_uid(),
                "creationTimestamp": now_rfc3339(),
                "generation": 1,
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }
        self.store.put(("", "namespaces"), obj, "ADDED")

    def _track_crds(self, rt: ResourceType, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        """A stored CRD is served at once; a removed one stops being served (its objects are gone by then)."""
        if rt.key != crds.CRD_KEY:
            return
        if old is not None:
            old_type = crds.resource_type(old)
            if new is None or crds.resource_type(new).key != old_type.key:
                self.registry.remove(old_type.key)
                self.store.drop_resource(old_type.key)
        if new is not None:
            self.registry.add(crds.resource_type(new))

    # ---- kmock entry point: parse with our router, keep no request history, log one line per request.
    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        started = time.monotonic()
        response: aiohttp.web.StreamResponse
        warnings: list[str] = []
        WARNINGS.set(warnings)
        FIELD_VALIDATION.set(raw_request.query.get("fieldValidation") or "Warn")
        AUDIT_EVENT.set(None)
        try:
            request = await self._parse(raw_request)
            response = await self._handle(request)
        except Exception as exc:  # every failure becomes a Status body, as kube-apiserver answers
            response = await self._render_error(exc)
        if warnings and not response.prepared:
            # k8s docs: /docs/reference/using-api/api-concepts/#warnings — `299 - "text"` headers.
            for text in dict.fromkeys(warnings):
                response.headers.add("Warning", warning_header(text))
        event = AUDIT_EVENT.get()
        if event is not None and self.audit_log is not None and event["verb"] != "watch":
            self.audit_log.write(event, "ResponseComplete", response.status)
        log.info(
            "%s %s %s %.0fms",
            raw_request.method,
            raw_request.path,
            response.status,
            (time.monotonic() - started) * 1000,
        )
        return response

    async def _parse(self, raw_request: aiohttp.web.BaseRequest) -> Request:
        body = await raw_request.read()
        text = body.decode("utf-8", errors="replace")
        data: Any = None
        if raw_request.content_type == "application/vnd.kubernetes.protobuf":
            data = protobuf_bodies.decode_body(body)
        elif raw_request.content_type == "application/yaml" and body.strip():
            # k8s docs: /docs/reference/using-api/api-concepts/#alternate-representations-of-resources
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise errors.bad_request(
                    f"the body of the request could not be decoded as YAML: {exc}"
                ) from exc
        elif body.strip():
            try:
                data = await raw_request.json()
            except ValueError:
                data = None
                if raw_request.content_type.endswith("json"):
                    raise errors.bad_request("the body of the request could not be decoded as JSON") from None
        return Request(
            method=raw_request.method,
            url=raw_request.url,
            params=dict(raw_request.query),
            headers=dict(raw_request.headers),
            body=body,
            text=text,
            data=data,
            raw_request=raw_request,
        )

    async def _handle(self, request: Request) -> aiohttp.web.StreamResponse:
        path = request.url.path.rstrip("/") or "/"
        method = str(request.method.value if hasattr(request.method, "value") else request.method)
        self._authenticate_and_authorize(request, method, path)
        if path in ("/healthz", "/readyz", "/livez") or path.startswith(("/healthz/", "/readyz/", "/livez/")):
            return aiohttp.web.Response(text="ok", content_type="text/plain")
        if method == "GET":
            static = self._static(path)
            if static is not None:
                return aiohttp.web.json_response(static)
            if path == "/openapi/v2":
                # An empty OpenAPI v2 document (kubectl reads v2 only as protobuf): no client-side schemas,
                # so kubectl falls back to server-side field validation and to its built-in patch metadata.
                return aiohttp.web.Response(
                    body=b"", content_type="application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
                )
            if path.startswith("/openapi/"):
                return aiohttp.web.json_response(openapi.document(self.registry, path))
        resource_path = parse_resource_path(path)
        if resource_path is None:
            if method == "GET" and path.startswith("/apis/") and path.count("/") == 2:
                return aiohttp.web.json_response(discovery.api_group(self.registry, path.split("/")[2]))
            raise errors.page_not_found()
        if resource_path.plural is None:
            if method != "GET":
                raise errors.method_not_allowed()
            return aiohttp.web.json_response(
                discovery.api_resource_list(self.registry, resource_path.group, resource_path.version)
            )
        event = AUDIT_EVENT.get()
        if event is not None and event["verb"] == "watch" and self.audit_log is not None:
            self.audit_log.write(event, "ResponseStarted", 200)  # its answer streams until the watch ends
        return await self.api.handle(resource_path, request)

    def _authenticate_and_authorize(self, request: Request, method: str, path: str) -> None:
        """kube-apiserver's filter chain before any handler: authentication (401), impersonation, audit,
        authorization (403). Sets CURRENT_USER (admission webhooks' userInfo, `auth whoami`)."""
        raw: aiohttp.web.BaseRequest = request._raw_request
        transport = raw.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        authorization = raw.headers.get("Authorization", "")
        authenticated = self.authenticator.authenticate(authorization, ssl_object, raw.path)
        user = impersonation.impersonated_user(authenticated, raw.headers, self.authorizer)
        CURRENT_USER.set(user)
        resource_path = parse_resource_path(path)
        params = dict(request.params)
        attrs = rbac.request_attributes(method, raw.path or "/", resource_path, params)
        if self.audit_log is not None and resource_path is not None and resource_path.plural is not None:
            agent = request.headers.get("User-Agent", "")
            event = audit_event(attrs.verb, resource_path, authenticated, agent, request.url.raw_path_qs)
            if user is not authenticated:
                event["impersonatedUser"] = user
            AUDIT_EVENT.set(event)
        if not self.authorizer.authorize(user, attrs):
            raise rbac.forbidden(user, attrs)
        if resource_path is not None and self._apply_creates(request, attrs, resource_path):
            # A server-side apply that creates the object needs `create` too (kube's patch handler).
            creating = dataclasses.replace(attrs, verb="create")
            if not self.authorizer.authorize(user, creating):
                raise rbac.forbidden(user, creating)

    def _apply_creates(self, request: Request, attrs: rbac.Attributes, path: ResourcePath) -> bool:
        if attrs.verb != "patch" or attrs.subresource or not attrs.name:
            return False
        if not server_side_apply.is_apply(request.headers.get("Content-Type") or ""):
            return False
        rt = self.registry.lookup(path.group, path.version, path.plural or "")
        if rt is None:
            return False
        return self.store.get(rt.key, path.namespace if rt.namespaced else None, attrs.name) is None

    def _static(self, path: str) -> dict[str, Any] | None:
        if path == "/version":
            return VERSION_INFO
        if path == "/":
            return discovery.root_paths(self.registry)
        if path == "/api":
            return discovery.api_versions()
        if path == "/apis":
            return discovery.api_group_list(self.registry)
        if path == "/.well-known/openid-configuration":
            return self.tokens.openid_configuration()
        if path == "/openid/v1/jwks":
            return self.tokens.jwks()
        return None

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        if isinstance(exc, errors.StatusError):
            return aiohttp.web.json_response(exc.status_body(), status=exc.status)
        if isinstance(exc, KubernetesError):
            converted = errors.StatusError(exc.status, exc.reason, exc.message, {})
            return aiohttp.web.json_response(converted.status_body(), status=exc.status)
        log.error("internal error: %s", "".join(traceback.format_exception(exc)))
        body = errors.internal(repr(exc)).status_body()
        return aiohttp.web.json_response(body, status=500)
