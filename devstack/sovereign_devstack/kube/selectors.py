"""Label and field selectors as the API server parses them from `labelSelector` / `fieldSelector`.

# k8s docs: /docs/concepts/overview/working-with-objects/labels/#label-selectors
# k8s docs: /docs/concepts/overview/working-with-objects/field-selectors/
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sovereign_devstack.kube import errors

Matcher = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s*$")


def _split_requirements(text: str) -> list[str]:
    """Split on commas that are not inside `in (a, b)` parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> Matcher:
    if not text:
        return lambda labels: True
    checks: list[Matcher] = []
    for req in _split_requirements(text):
        if m := _SET_RE.match(req):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
            if op == "in":
                checks.append(lambda lb, k=key, vs=values: k in lb and lb[k] in vs)
            else:
                checks.append(lambda lb, k=key, vs=values: k not in lb or lb[k] not in vs)
        elif m := _EQ_RE.match(req):
            key, op, value = m.groups()
            if op == "!=":
                checks.append(lambda lb, k=key, v=value: lb.get(k) != v)
            else:
                checks.append(lambda lb, k=key, v=value: k in lb and lb[k] == v)
        elif m := _EXISTS_RE.match(req):
            negate, key = m.groups()
            if negate:
                checks.append(lambda lb, k=key: k not in lb)
            else:
                checks.append(lambda lb, k=key: k in lb)
        else:
            raise errors.bad_request(f"unable to parse requirement: {req.strip()!r}")
    return lambda labels: all(check(labels) for check in checks)


def match_label_selector_object(selector: dict[str, Any] | None) -> Matcher:
    """A metav1.LabelSelector (matchLabels + matchExpressions), as in webhook namespace/object selectors."""
    if not selector:
        return lambda labels: True
    checks: list[Matcher] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        checks.append(lambda lb, k=key, v=value: lb.get(k) == v)
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), set(expr.get("values") or [])
        if op == "In":
            checks.append(lambda lb, k=key, vs=values: lb.get(k) in vs)
        elif op == "NotIn":
            checks.append(lambda lb, k=key, vs=values: lb.get(k) not in vs)
        elif op == "Exists":
            checks.append(lambda lb, k=key: k in lb)
        elif op == "DoesNotExist":
            checks.append(lambda lb, k=key: k not in lb)
    return lambda labels: all(check(labels) for check in checks)


# Fields every resource supports in field selectors, plus a few kind-specific ones kube also serves.
_FIELDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "metadata.name": lambda o: o.get("metadata", {}).get("name", ""),
    "metadata.namespace": lambda o: o.get("metadata", {}).get("namespace", ""),
    "status.phase": lambda o: (o.get("status") or {}).get("phase", ""),
    "type": lambda o: o.get("type", ""),
    "involvedObject.name": lambda o: (o.get("involvedObject") or {}).get("name", ""),
    "involvedObject.uid": lambda o: (o.get("involvedObject") or {}).get("uid", ""),
    "involvedObject.kind": lambda o: (o.get("involvedObject") or {}).get("kind", ""),
    "involvedObject.namespace": lambda o: (o.get("involvedObject") or {}).get("namespace", ""),
    "reason": lambda o: o.get("reason", ""),
}


def parse_field_selector(text: str | None) -> Matcher:
    if not text:
        return lambda obj: True
    checks: list[Matcher] = []
    for req in text.split(","):
        if not req.strip():
            continue
        m = re.match(r"^\s*([^!=\s]+)\s*(==|=|!=)\s*(.*?)\s*$", req)
        if not m:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{req}'")
        field, op, value = m.groups()
        getter = _FIELDS.get(field)
        if getter is None:
            # k8s docs: field-selectors — unsupported fields are an error, not an empty match.
            raise errors.bad_request(f"field label not supported: {field}")
        if op == "!=":
            checks.append(lambda o, g=getter, v=value: str(g(o)) != v)
        else:
            checks.append(lambda o, g=getter, v=value: str(g(o)) == v)
    return lambda obj: all(check(obj) for check in checks)


def object_matcher(params: dict[str, str]) -> Matcher:
    labels = parse_label_selector(params.get("labelSelector"))
    fields = parse_field_selector(params.get("fieldSelector"))
    return lambda obj: labels((obj.get("metadata") or {}).get("labels") or {}) and fields(obj)
