"""Object-metadata checks kube-apiserver applies to every kind: names, namespaces, finalizers.

# k8s docs: /docs/concepts/overview/working-with-objects/names/
"""

from __future__ import annotations

import re
from typing import Any

from sovereign_devstack.kube import errors
from sovereign_devstack.kube.builtin_resources import NAME_RULES
from sovereign_devstack.kube.resource_types import ResourceType

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_LABEL_1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


def name_problem(rule: str, name: str) -> str | None:
    if rule == "path":
        if name in (".", "..") or "/" in name or "%" in name:
            return "may not contain '/' or '%' and may not be \".\" or \"..\""
        return None
    if rule == "label":
        if len(name) > 63:
            return "must be no more than 63 characters"
        return None if _LABEL.match(name) else _LABEL_MSG
    if rule == "label1035":
        if len(name) > 63:
            return "must be no more than 63 characters"
        return None if _LABEL_1035.match(name) else _LABEL_1035_MSG
    if len(name) > 253:
        return "must be no more than 253 characters"
    return None if _SUBDOMAIN.match(name) else _SUBDOMAIN_MSG


def check_name(rt: ResourceType, name: str) -> None:
    rule = NAME_RULES.get(rt.key, "subdomain")
    problem = name_problem(rule, name)
    if problem:
        raise errors.invalid(
            rt.group,
            rt.kind,
            name,
            [errors.field_cause("metadata.name", f'Invalid value: "{name}": {problem}')],
        )


def check_metadata(rt: ResourceType, obj: dict[str, Any]) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    causes = []
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is not None and not (
            isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        ):
            causes.append(errors.field_cause(f"metadata.{field}", "Invalid value: must be a map of strings"))
    for key in meta.get("labels") or {}:
        if not re.match(
            r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$", key
        ):
            causes.append(
                errors.field_cause(
                    "metadata.labels",
                    f'Invalid value: "{key}": name part must '
                    "consist of alphanumeric characters, '-', '_' or '.'",
                )
            )
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        for required in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(required):
                causes.append(
                    errors.field_cause(
                        f"metadata.ownerReferences[{i}].{required}", "Required value", "FieldValueRequired"
                    )
                )
    if causes:
        raise errors.invalid(rt.group, rt.kind, name, causes)
