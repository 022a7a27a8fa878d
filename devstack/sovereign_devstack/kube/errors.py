"""Kubernetes `Status` errors, with the reasons, codes and messages kube-apiserver uses.

# k8s docs: /docs/reference/kubernetes-api/common-definitions/status/
The message texts follow k8s.io/apimachinery/pkg/api/errors so that kubectl and clients print the same lines.
"""

from __future__ import annotations

from typing import Any

from kmock import KubernetesError


class StatusError(KubernetesError):
    """A failure rendered as a `v1 Status` body with the given HTTP code."""

    def status_body(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message or "",
            "reason": self.reason or "",
            "details": self.details or {},
            "code": self.status,
        }


def qualified(group: str, plural: str) -> str:
    """`configmaps` or `widgets.example.com`, as GroupResource.String() prints it."""
    return f"{plural}.{group}" if group else plural


def _details(group: str, plural: str, name: str | None, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"kind": plural}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details.update(extra)
    return details


def not_found(group: str, plural: str, name: str) -> StatusError:
    return StatusError(
        404, "NotFound", f'{qualified(group, plural)} "{name}" not found', _details(group, plural, name)
    )


def already_exists(group: str, plural: str, name: str) -> StatusError:
    return StatusError(
        409,
        "AlreadyExists",
        f'{qualified(group, plural)} "{name}" already exists',
        _details(group, plural, name),
    )


def conflict(group: str, plural: str, name: str, why: str) -> StatusError:
    return StatusError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(group, plural)} "{name}": {why}',
        _details(group, plural, name),
    )


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def forbidden(group: str, plural: str, name: str, why: str) -> StatusError:
    return StatusError(
        403,
        "Forbidden",
        f'{qualified(group, plural)} "{name}" is forbidden: {why}',
        _details(group, plural, name),
    )


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message, {})


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> StatusError:
    return StatusError(405, "MethodNotAllowed", message, {})


def unsupported_media_type(content_type: str, accepted: list[str]) -> StatusError:
    return StatusError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)}",
        {},
    )


def page_not_found() -> StatusError:
    return StatusError(404, "NotFound", "the server could not find the requested resource", {})


def gone(message: str) -> StatusError:
    return StatusError(410, "Expired", message, {})


def internal(message: str) -> StatusError:
    return StatusError(
        500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]}
    )


def invalid(
    group: str, kind: str, name: str, causes: list[dict[str, str]], message: str | None = None
) -> StatusError:
    """422 Invalid: kubectl prints `message`, which lists each cause's field path."""
    if message is None:
        parts = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
        text = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
        message = f'{kind}{"." + group if group else ""} "{name}" is invalid: {text}'
    details: dict[str, Any] = {"name": name, "kind": kind, "causes": causes}
    if group:
        details["group"] = group
    return StatusError(422, "Invalid", message, details)


def field_cause(field: str, message: str, reason: str = "FieldValueInvalid") -> dict[str, str]:
    return {"reason": reason, "message": message, "field": field}
