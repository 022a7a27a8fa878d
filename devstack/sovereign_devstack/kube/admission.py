"""Validating admission: ValidatingAdmissionPolicies (admission_policies.py), then the webhooks of
ValidatingWebhookConfigurations, called with AdmissionReview v1.

# k8s docs: /docs/reference/access-authn-authz/extensible-admission-controllers/
# k8s docs: /docs/reference/access-authn-authz/admission-controllers/ (ValidatingAdmissionPolicy runs before
# ValidatingAdmissionWebhook in the default order; both after mutation and schema validation)
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import ssl
import uuid
from typing import Any

import aiohttp

from sovereign_devstack.kube import errors, selectors
from sovereign_devstack.kube.admission_policies import POLICIES_KEY, PolicyAdmission, Request, compile_errors
from sovereign_devstack.kube.admission_rules import matches_rule
from sovereign_devstack.kube.object_writes import WARNINGS
from sovereign_devstack.kube.resource_types import ResourceType
from sovereign_devstack.kube.store import Store

WEBHOOKS_KEY = ("admissionregistration.k8s.io", "validatingwebhookconfigurations")
ADMIN_USER = {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}
CURRENT_USER: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("user", default=ADMIN_USER)


class WebhookAdmission:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.policies = PolicyAdmission(store)

    def _namespace_labels(self, namespace: str | None) -> dict[str, str]:
        ns = self.store.get(("", "namespaces"), None, namespace or "")
        return ((ns or {}).get("metadata") or {}).get("labels") or {}

    async def review(
        self,
        operation: str,
        rt: ResourceType,
        version: str,
        subresource: str | None,
        obj: dict[str, Any] | None,
        old: dict[str, Any] | None,
        dry_run: bool,
    ) -> None:
        """Evaluate the admission policies, then call every matching webhook; raise the Status
        kube-apiserver returns when one denies or fails."""
        if rt.key == POLICIES_KEY and obj is not None:
            causes = compile_errors(obj)
            if causes:
                name = (obj.get("metadata") or {}).get("name", "")
                raise errors.invalid(rt.group, rt.kind, name, causes)
        request = Request(operation, rt, version, subresource, obj, old, CURRENT_USER.get(), dry_run)
        self.policies.review(request, WARNINGS.get(None))
        if rt.key == WEBHOOKS_KEY:
            return  # k8s docs: webhooks are never called for webhook configurations themselves
        subject = obj if obj is not None else old or {}
        meta = subject.get("metadata") or {}
        namespace = meta.get("namespace")
        calls = []
        for config in self.store.list(WEBHOOKS_KEY):
            for hook in config.get("webhooks") or []:
                if not any(
                    matches_rule(r, operation, rt, version, subresource) for r in hook.get("rules") or []
                ):
                    continue
                if rt.namespaced and not selectors.match_label_selector_object(hook.get("namespaceSelector"))(
                    self._namespace_labels(namespace)
                ):
                    continue
                object_selector = selectors.match_label_selector_object(hook.get("objectSelector"))
                if not (
                    object_selector(meta.get("labels") or {})
                    or (old is not None and object_selector((old.get("metadata") or {}).get("labels") or {}))
                ):
                    continue
                calls.append(self._call(hook, operation, rt, version, subresource, obj, old, dry_run))
        for outcome in await asyncio.gather(*calls):
            if outcome is not None:
                raise outcome

    def _review_body(
        self,
        operation: str,
        rt: ResourceType,
        version: str,
        subresource: str | None,
        obj: dict[str, Any] | None,
        old: dict[str, Any] | None,
        dry_run: bool,
    ) -> dict[str, Any]:
        meta = (obj or old or {}).get("metadata") or {}
        gvk = {"group": rt.group, "version": version, "kind": rt.kind}
        gvr = {"group": rt.group, "version": version, "resource": rt.plural}
        options_kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}[
            operation
        ]
        request: dict[str, Any] = {
            "uid": str(uuid.uuid4()),
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": meta.get("name", ""),
            "operation": operation,
            "userInfo": CURRENT_USER.get(),
            "object": obj,
            "oldObject": old,
            "dryRun": dry_run,
            "options": {"kind": options_kind, "apiVersion": "meta.k8s.io/v1"},
        }
        if subresource:
            request["subResource"] = subresource
            request["requestSubResource"] = subresource
        if meta.get("namespace"):
            request["namespace"] = meta["namespace"]
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}

    async def _call(
        self,
        hook: dict[str, Any],
        operation: str,
        rt: ResourceType,
        version: str,
        subresource: str | None,
        obj: dict[str, Any] | None,
        old: dict[str, Any] | None,
        dry_run: bool,
    ) -> errors.StatusError | None:
        name = hook.get("name", "")
        client = hook.get("clientConfig") or {}
        fail_closed = (hook.get("failurePolicy") or "Fail") == "Fail"
        timeout = float(hook.get("timeoutSeconds") or 10)
        if dry_run and (hook.get("sideEffects") not in ("None", "NoneOnDryRun")):
            return None  # webhooks that may have side effects are skipped for dry runs
        review = self._review_body(operation, rt, version, subresource, obj, old, dry_run)
        try:
            url = client.get("url")
            if not url:
                svc = client.get("service") or {}
                # In-cluster services do not resolve on a devstack: fail as an unreachable service would.
                raise ConnectionError(
                    f'service "{svc.get("namespace")}/{svc.get("name")}" is not reachable '
                    "from the devstack API server; use clientConfig.url"
                )
            ssl_context: ssl.SSLContext | bool = True
            if client.get("caBundle"):
                ssl_context = ssl.create_default_context(
                    cadata=base64.b64decode(client["caBundle"]).decode("ascii")
                )
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                session.post(url, json=review, ssl=ssl_context) as resp,
            ):
                if resp.status != 200:
                    raise RuntimeError(f"received invalid webhook response: status code {resp.status}")
                answer = await resp.json(content_type=None)
            response = answer.get("response") or {}
            if response.get("uid") != review["request"]["uid"]:
                raise RuntimeError(
                    f'expected response.uid="{review["request"]["uid"]}", got "{response.get("uid")}"'
                )
        except Exception as exc:
            if not fail_closed:
                return None  # failurePolicy: Ignore
            what = (
                "context deadline exceeded"
                if isinstance(exc, asyncio.TimeoutError)
                else str(exc) or repr(exc)
            )
            return errors.internal(
                f'failed calling webhook "{name}": failed to call webhook: Post '
                f'"{client.get("url", "")}": {what}'
            )
        # k8s docs: /docs/reference/access-authn-authz/extensible-admission-controllers/#response — "Admission
        # webhooks can optionally return warning messages that are returned to the requesting client in HTTP
        # Warning headers with a warning code of 299. Warnings can be sent with allowed or rejected admission
        # responses." The request's list becomes those headers (server.py).
        warnings = WARNINGS.get(None)
        if warnings is not None:
            warnings.extend(str(warning) for warning in response.get("warnings") or [])
        if response.get("allowed"):
            return None
        status = response.get("status") or {}
        denied = f'admission webhook "{name}" denied the request'
        message = (
            f"{denied}: {status['message']}" if status.get("message") else f"{denied} without explanation"
        )
        code = int(status.get("code") or 403)
        return errors.StatusError(
            code,
            status.get("reason") or ("Forbidden" if code == 403 else ""),
            message,
            status.get("details") or {},
        )
