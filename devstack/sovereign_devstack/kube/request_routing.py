"""Resource URL parsing: /api/v1/... and /apis/<group>/<version>/... into group, version, namespace,
resource, name and subresource.

# k8s docs: /docs/reference/using-api/api-concepts/#resource-uris
(kmock's parser cannot read `/api/v1/namespaces` or a namespace's own subresources, so we parse here.)
"""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE_SUBRESOURCES = ("status", "finalize")


@dataclass(frozen=True)
class ResourcePath:
    group: str
    version: str
    plural: str | None = None  # None: the group-version discovery document
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def parse_resource_path(path: str) -> ResourcePath | None:
    parts = [p for p in path.strip("/").split("/") if p != ""]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return ResourcePath(group, version)
    # /api/v1/namespaces[/name[/status|finalize]] is the Namespace resource itself...
    if (
        rest[0] == "namespaces"
        and group == ""
        and (len(rest) <= 2 or (len(rest) == 3 and rest[2] in NAMESPACE_SUBRESOURCES))
    ):
        return ResourcePath(group, version, "namespaces", None, *(rest[1:] + [None, None])[:2])
    if rest[0] == "namespaces" and len(rest) >= 3:
        # ...and /namespaces/<ns>/<plural>[/name[/sub]] is a namespaced resource.
        namespace, rest = rest[1], rest[2:]
    else:
        namespace = None
    if len(rest) > 3:
        return ResourcePath(group, version, "", None)  # unknown shape: answered with 404
    plural, name, sub = (rest + [None, None])[:3]
    return ResourcePath(group, version, plural, namespace, name, sub)
