"""kube's RBAC rule matching and escalation coverage, case by case (the API-level tests are in
test_kube_rbac.py): one rule, one request, the decision kube's rbac/v1 helpers would make."""

from __future__ import annotations

from typing import Any

import pytest
from sovereign_devstack.kube.rbac import Attributes, missing_rules, rule_allows

CORE_GET_PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}


def _resource(verb: str, resource: str, group: str = "", subresource: str = "", name: str = "") -> Attributes:
    return Attributes(verb=verb, api_group=group, resource=resource, subresource=subresource, name=name)


def _path(verb: str, path: str) -> Attributes:
    return Attributes(verb=verb, resource_request=False, path=path)


ALLOWS: list[tuple[str, dict[str, Any], Attributes, bool]] = [
    ("exact", CORE_GET_PODS, _resource("get", "pods"), True),
    ("other verb", CORE_GET_PODS, _resource("list", "pods"), False),
    ("other group", CORE_GET_PODS, _resource("get", "pods", "apps"), False),
    ("subresource is not the resource", CORE_GET_PODS, _resource("get", "pods", subresource="log"), False),
    (
        "resource/subresource",
        {**CORE_GET_PODS, "resources": ["pods/log"]},
        _resource("get", "pods", subresource="log"),
        True,
    ),
    (
        "*/subresource",
        {**CORE_GET_PODS, "resources": ["*/status"]},
        _resource("get", "pods", subresource="status"),
        True,
    ),
    (
        "* covers subresources",
        {**CORE_GET_PODS, "resources": ["*"]},
        _resource("get", "pods", subresource="log"),
        True,
    ),
    ("verb *", {**CORE_GET_PODS, "verbs": ["*"]}, _resource("deletecollection", "pods"), True),
    ("group *", {**CORE_GET_PODS, "apiGroups": ["*"]}, _resource("get", "pods", "metrics.k8s.io"), True),
    ("named", {**CORE_GET_PODS, "resourceNames": ["a"]}, _resource("get", "pods", name="a"), True),
    ("other name", {**CORE_GET_PODS, "resourceNames": ["a"]}, _resource("get", "pods", name="b"), False),
    ("no name vs names", {**CORE_GET_PODS, "resourceNames": ["a"]}, _resource("get", "pods"), False),
    ("url exact", {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}, _path("get", "/healthz"), True),
    ("url prefix *", {"nonResourceURLs": ["/logs/*"], "verbs": ["get"]}, _path("get", "/logs/a/b"), True),
    ("url no prefix", {"nonResourceURLs": ["/logs/*"], "verbs": ["get"]}, _path("get", "/log"), False),
    ("url rule vs resource", {"nonResourceURLs": ["*"], "verbs": ["*"]}, _resource("get", "pods"), False),
    ("resource rule vs url", {**CORE_GET_PODS, "resources": ["*"]}, _path("get", "/api"), False),
]


@pytest.mark.parametrize(("rule", "attrs", "allowed"), [c[1:] for c in ALLOWS], ids=[c[0] for c in ALLOWS])
def test_rule_allows(rule: dict[str, Any], attrs: Attributes, allowed: bool) -> None:
    assert rule_allows(rule, attrs) is allowed


COVERS: list[tuple[str, list[dict[str, Any]], dict[str, Any], bool]] = [
    ("same", [CORE_GET_PODS], CORE_GET_PODS, True),
    ("owner *", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}], CORE_GET_PODS, True),
    ("wanted * needs owner *", [CORE_GET_PODS], {**CORE_GET_PODS, "verbs": ["*"]}, False),
    (
        "owner */status",
        [{**CORE_GET_PODS, "resources": ["*/status"]}],
        {**CORE_GET_PODS, "resources": ["pods/status"]},
        True,
    ),
    ("owner named, wanted all", [{**CORE_GET_PODS, "resourceNames": ["a"]}], CORE_GET_PODS, False),
    ("owner all, wanted named", [CORE_GET_PODS], {**CORE_GET_PODS, "resourceNames": ["a"]}, True),
    (
        "split across owners",
        [CORE_GET_PODS, {**CORE_GET_PODS, "verbs": ["list"]}],
        {**CORE_GET_PODS, "verbs": ["get", "list"]},
        True,
    ),
    (
        "url prefix",
        [{"nonResourceURLs": ["/logs/*"], "verbs": ["get"]}],
        {"nonResourceURLs": ["/logs/x"], "verbs": ["get"]},
        True,
    ),
]


@pytest.mark.parametrize(("owner", "wanted", "covered"), [c[1:] for c in COVERS], ids=[c[0] for c in COVERS])
def test_escalation_coverage(owner: list[dict[str, Any]], wanted: dict[str, Any], covered: bool) -> None:
    assert (missing_rules(owner, [wanted]) == []) is covered
