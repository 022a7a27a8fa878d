"""The audit log: one JSON line per resource request, in the shape of kube-apiserver's audit events at level
`Metadata` (who, which verb, on what, with which answer; never a body).

# k8s docs: /docs/tasks/debug/debug-cluster/audit/ ("Audit policy" levels and stages, `--audit-log-path`)
# k8s docs: /docs/reference/access-authn-authz/authorization/ ("Determine the Request Verb")

The verb is the one RBAC authorizes, so a test can compare what a client did with what a Role grants.
The user is the one the API server authenticated (a client certificate's CN, a ServiceAccount token's
account; `impersonatedUser` when it acted as someone else), so the calls of one client are told apart by
its credential, not by what it claims to be.
A watch is written when its stream starts (stage ResponseStarted, as kube-apiserver does for long-running
requests); every other request when its answer is complete. One `write` per line to a file opened for
appending: cheap enough to stay on, and every line is whole for a reader that tails the file.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sovereign_devstack.kube.request_routing import ResourcePath

AUDIT_LOG_ENV = "SOVEREIGN_KUBE_AUDIT_LOG"  # the default of `--audit-log`


def request_verb(method: str, path: ResourcePath, params: dict[str, str]) -> str:
    """The RBAC verb of a resource request ("Determine the Request Verb"): the HTTP verb, and for reads and
    deletes whether one object is named; `?watch=true` makes a read a watch (of one object or many)."""
    if method in ("GET", "HEAD"):
        if params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if path.name is not None else "list"
    if method == "DELETE":
        return "delete" if path.name is not None else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def audit_event(
    verb: str, path: ResourcePath, user: dict[str, Any], user_agent: str, request_uri: str
) -> dict[str, Any]:
    """An `audit.k8s.io/v1` Event at level Metadata, without its stage and response yet."""
    object_ref = {"resource": path.plural, "apiGroup": path.group, "apiVersion": path.version}
    if path.namespace is not None:
        object_ref["namespace"] = path.namespace
    if path.name is not None:
        object_ref["name"] = path.name
    if path.subresource is not None:
        object_ref["subresource"] = path.subresource
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": str(uuid.uuid4()),
        "requestURI": request_uri,
        "verb": verb,
        "user": user,
        "userAgent": user_agent,
        "objectRef": object_ref,
        "requestReceivedTimestamp": datetime.now(UTC).isoformat(timespec="microseconds"),
    }


class AuditLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, event: dict[str, Any], stage: str, code: int | None = None) -> None:
        line = {**event, "stage": stage}
        if code is not None:
            line["responseStatus"] = {"code": code}
        # O_APPEND and one write per line: lines from concurrent requests never interleave.
        os.write(self._fd, (json.dumps(line, separators=(",", ":")) + "\n").encode())

    def close(self) -> None:
        os.close(self._fd)
