"""`@traced_reconcile(kind)`: every kopf handler run is one reconcile span, with its duration and failures.

Put it under kopf's decorators. It keeps the handler's name (kopf ids handlers by `__wrapped__`, so stored
progress stays valid), its return value (kopf's result in `status.<handler>`) and its exceptions. Outcomes:
success (or `deleted` for delete handlers), `retry` for kopf.TemporaryError, `error` for anything else. A
plain TemporaryError raised without a cause is a planned wait (a namespace still terminating), not a failure.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import kopf

from sovereign.domain.nations import nation_of_namespace, tenant_namespace
from sovereign.telemetry import DELETED, RETRY, SUCCESS, error_type, reconcile_span

Handler = TypeVar("Handler", bound=Callable[..., Any])


def traced_reconcile(kind: str, *, deleting: bool = False) -> Callable[[Handler], Handler]:
    success = DELETED if deleting else SUCCESS

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def traced(**kwargs: Any) -> Any:
            attributes = {"sovereign.handler": handler.__name__, **reconcile_attributes(kwargs.get("body"))}
            with reconcile_span(kind, attributes) as record:
                try:
                    result = handler(**kwargs)
                except kopf.TemporaryError as error:
                    waiting = type(error) is kopf.TemporaryError and error.__cause__ is None
                    record.failed(RETRY, None if waiting else error_type(error))
                    raise
                record.outcome = success
                return result

        return traced  # type: ignore[return-value]

    return decorate


def reconcile_attributes(body: kopf.Body | None) -> dict[str, Any]:
    """Names only: the object, its namespace and its nation (semconv: k8s.namespace.name)."""
    if body is None:
        return {}
    metadata = body.get("metadata") or {}
    namespace = metadata.get("namespace")
    nation = (body.get("spec") or {}).get("nation")
    if nation is None and namespace:
        nation = nation_of_namespace(namespace)
    if namespace is None and nation:
        namespace = tenant_namespace(str(nation))  # a Tenant is cluster-scoped: the namespace it owns
    return {
        "sovereign.tenant": nation,
        "k8s.namespace.name": namespace,
        "sovereign.object.name": metadata.get("name"),
    }
