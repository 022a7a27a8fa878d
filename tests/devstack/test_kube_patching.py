"""PATCH bodies as kube-apiserver applies them: JSON merge patch, JSON patch and strategic merge patch.

The ``KUBECTL_APPLY_CASES`` bodies were captured from ``kubectl apply`` 1.32 (a throwaway HTTP server served
the live objects below and logged the PATCH requests); only the last-applied annotation text is shortened.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from sovereign_devstack.kube.patching import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    accepted_patch_types,
    apply_patch,
    supports_strategic_merge,
)

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
OLD, NEW = {LAST_APPLIED: "<old config>"}, {LAST_APPLIED: "<new config>"}
GONE = object()  # in expected changes: the key is removed


def with_changes(obj: dict, changes: dict) -> dict:
    merged = {**obj, **changes}
    return {key: value for key, value in merged.items() if value is not GONE}


def table(names: str, rows: list[tuple]) -> pytest.MarkDecorator:
    """parametrize over rows whose first element is the readable test id."""
    return pytest.mark.parametrize(names, [row[1:] for row in rows], ids=[row[0] for row in rows])


def patch_error(target: dict, body: Any, content_type: str, kind: str | None) -> PatchError:
    with pytest.raises(PatchError) as caught:
        apply_patch(target, body, content_type, kind)
    return caught.value


CONFIG_MAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "cfg", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
    "data": {"a": "1", "b": "2"},
}

# --- application/merge-patch+json (RFC 7386) ---

# fmt: off
MERGE_CASES = [
    ("set-a-key", {"data": {"c": "3"}}, {"data": {"a": "1", "b": "2", "c": "3"}}),
    ("null-deletes-a-key", {"data": {"a": None}}, {"data": {"b": "2"}}),
    ("null-deletes-a-whole-map", {"data": None}, {"data": GONE}),
    ("nested-maps-merge", {"metadata": {"labels": {"tier": None, "team": "core"}}},
     {"metadata": {"name": "cfg", "namespace": "default", "labels": {"app": "web", "team": "core"}}}),
    ("lists-are-replaced", {"metadata": {"finalizers": ["x"]}},
     {"metadata": {**CONFIG_MAP["metadata"], "finalizers": ["x"]}}),
    ("null-inside-a-new-map-is-dropped", {"binaryData": {"k": "dg==", "z": None}},
     {"binaryData": {"k": "dg=="}}),
]
# fmt: on


@table("patch, changes", MERGE_CASES)
def test_json_merge_patch(patch: dict, changes: dict) -> None:
    original = copy.deepcopy(CONFIG_MAP)
    result = apply_patch(original, json.dumps(patch).encode(), MERGE_PATCH, "ConfigMap")
    assert result == with_changes(CONFIG_MAP, changes)
    assert original == CONFIG_MAP  # the input is never mutated


@table("body", [("not-an-object", b"[1, 2]"), ("not-json", b"{not json")])
def test_json_merge_patch_rejects_bad_bodies_with_400(body: bytes) -> None:
    error = patch_error(CONFIG_MAP, body, MERGE_PATCH, "ConfigMap")
    assert (error.status, error.reason, error.message) == (400, "BadRequest", "Invalid JSON Patch")


# --- application/json-patch+json (RFC 6902) ---

# fmt: off
JSON_PATCH_CASES = [
    ("add", [{"op": "add", "path": "/data/c", "value": "3"}], {"a": "1", "b": "2", "c": "3"}),
    ("replace", [{"op": "replace", "path": "/data/a", "value": "9"}], {"a": "9", "b": "2"}),
    ("remove", [{"op": "remove", "path": "/data/b"}], {"a": "1"}),
    ("test-then-replace", [{"op": "test", "path": "/data/a", "value": "1"},
                           {"op": "replace", "path": "/data/a", "value": "2"}], {"a": "2", "b": "2"}),
    ("move", [{"op": "move", "from": "/data/a", "path": "/data/z"}], {"b": "2", "z": "1"}),
]
JSON_PATCH_ERRORS = [
    ("failed-test-is-422", [{"op": "test", "path": "/data/a", "value": "2"}], 422,
     "testing value /data/a failed: test failed"),
    ("missing-path-is-422", [{"op": "remove", "path": "/data/zzz"}], 422, None),
    ("missing-parent-is-422", [{"op": "add", "path": "/spec/x/y", "value": 1}], 422, None),
    ("unknown-op-is-422", [{"op": "frobnicate", "path": "/data/a"}], 422, "Unexpected kind: frobnicate"),
    ("op-without-value-is-422", [{"op": "add", "path": "/data/a"}], 422,
     "add operation is invalid: The operation does not contain a 'value' member"),
    ("not-a-list-is-400", {"op": "add"}, 400, None),
]
# fmt: on


@table("ops, data", JSON_PATCH_CASES)
def test_json_patch(ops: list, data: dict) -> None:
    original = copy.deepcopy(CONFIG_MAP)
    assert apply_patch(original, json.dumps(ops), JSON_PATCH, "ConfigMap") == {**CONFIG_MAP, "data": data}
    assert original == CONFIG_MAP


@table("ops, status, message", JSON_PATCH_ERRORS)
def test_json_patch_errors(ops: Any, status: int, message: str | None) -> None:
    error = patch_error(CONFIG_MAP, json.dumps(ops).encode(), JSON_PATCH, "ConfigMap")
    assert (error.status, error.reason) == (status, {400: "BadRequest", 422: "Invalid"}[status])
    assert error.message == message or message is None


def test_json_patch_with_invalid_json_is_400() -> None:
    error = patch_error(CONFIG_MAP, b"[{", JSON_PATCH, "ConfigMap")
    assert error.status == 400
    assert error.message.startswith("error decoding patch: ")


# --- content types ---


def test_content_type_parameters_are_ignored() -> None:
    result = apply_patch(
        CONFIG_MAP, b'{"data":{"a":"5"}}', "application/merge-patch+json; charset=utf-8", None
    )
    assert result["data"] == {"a": "5", "b": "2"}


def test_already_decoded_bodies_are_accepted() -> None:
    assert apply_patch(CONFIG_MAP, {"data": {"a": None}}, MERGE_PATCH, "ConfigMap")["data"] == {"b": "2"}


# fmt: off
UNSUPPORTED = [
    ("unknown-type-for-built-in", "ConfigMap", "text/plain",
     "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json"),
    ("strategic-merge-for-custom-resource", "Tenant", STRATEGIC_MERGE_PATCH,
     "application/json-patch+json, application/merge-patch+json"),
    ("strategic-merge-without-kind", None, STRATEGIC_MERGE_PATCH,
     "application/json-patch+json, application/merge-patch+json"),
]
SUPPORTS_STRATEGIC_MERGE = [
    (name, name, supported) for name, supported in [
        ("ConfigMap", True), ("configmaps", True), ("networkpolicies", True), ("NetworkPolicy", True),
        ("ValidatingWebhookConfiguration", True), ("leases", True), ("Deployment", True), ("endpoints", True),
        ("Tenant", False), ("tenants", False), (None, False), ("", False)]
]
# fmt: on


@table("kind, content_type, accepted", UNSUPPORTED)
def test_unsupported_media_type_is_415(kind: str | None, content_type: str, accepted: str) -> None:
    error = patch_error(CONFIG_MAP, b"{}", content_type, kind)
    assert (error.status, error.reason) == (415, "UnsupportedMediaType")
    assert error.message == (
        f"the body of the request was in an unknown format - accepted media types include: {accepted}"
    )


@table("name, supported", SUPPORTS_STRATEGIC_MERGE)
def test_supports_strategic_merge(name: str | None, supported: bool) -> None:
    assert supports_strategic_merge(name) is supported
    assert (STRATEGIC_MERGE_PATCH in accepted_patch_types(name)) is supported


# --- application/strategic-merge-patch+json, from real kubectl apply requests ---

# fmt: off
SERVICE_LIVE = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"},
                 "annotations": OLD},
    "spec": {"selector": {"app": "web"}, "clusterIP": "10.0.0.5", "type": "ClusterIP", "ports": [
        {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
        {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}]},
}
SERVICE_PATCH = {
    "metadata": {"annotations": NEW, "labels": {"team": "core", "tier": None}},
    "spec": {"$setElementOrder/ports": [{"port": 9090}, {"port": 80}], "selector": {"track": "stable"},
             "ports": [
        {"name": "metrics", "port": 9090, "targetPort": 9090}, {"port": 80, "targetPort": 8081},
        {"$patch": "delete", "port": 443}]},
}
SERVICE_RESULT = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "team": "core"},
                 "annotations": NEW},
    "spec": {"selector": {"app": "web", "track": "stable"}, "clusterIP": "10.0.0.5", "type": "ClusterIP",
             "ports": [
        {"name": "metrics", "port": 9090, "targetPort": 9090},
        {"name": "http", "port": 80, "targetPort": 8081, "protocol": "TCP"}]},
}

DEPLOYMENT_LIVE = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "api", "namespace": "default", "finalizers": ["example.com/a", "example.com/b"],
                 "annotations": OLD},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
             "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
             "template": {"metadata": {"labels": {"app": "api"}},
                          "spec": {"restartPolicy": "Always", "containers": [
                 {"name": "app", "image": "app:1", "args": ["--x", "--y"],
                  "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                 {"name": "sidecar", "image": "side:1"}]}}},
}
DEPLOYMENT_PATCH = {
    "metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/b"],
                 "$setElementOrder/finalizers": ["example.com/c", "example.com/a"],
                 "annotations": NEW, "finalizers": ["example.com/c"]},
    "spec": {"replicas": 3, "strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"},
             "template": {"spec": {"$setElementOrder/containers": [{"name": "app"}], "containers": [
                 {"$setElementOrder/env": [{"name": "C"}, {"name": "A"}], "args": ["--y"],
                  "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}],
                  "image": "app:2", "name": "app"},
                 {"$patch": "delete", "name": "sidecar"}]}}},
}
DEPLOYMENT_RESULT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "api", "namespace": "default", "finalizers": ["example.com/c", "example.com/a"],
                 "annotations": NEW},
    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}}, "strategy": {"type": "Recreate"},
             "template": {"metadata": {"labels": {"app": "api"}},
                          "spec": {"restartPolicy": "Always", "containers": [
                 {"name": "app", "image": "app:2", "args": ["--y"],
                  "env": [{"name": "C", "value": "3"}, {"name": "A", "value": "1"}]}]}}},
}

WEBHOOKS_LIVE = {
    "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
    "metadata": {"name": "guard", "annotations": OLD},
    "webhooks": [
        {"name": "a.guard.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
         "failurePolicy": "Fail",
         "clientConfig": {"url": "https://a"}, "rules": [
             {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]},
        {"name": "b.guard.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
         "failurePolicy": "Fail",
         "clientConfig": {"url": "https://b"}}],
}
WEBHOOKS_PATCH = {
    "$setElementOrder/webhooks": [{"name": "c.guard.io"}, {"name": "a.guard.io"}],
    "metadata": {"annotations": NEW},
    "webhooks": [
        {"admissionReviewVersions": ["v1"], "clientConfig": {"url": "https://c"}, "name": "c.guard.io",
         "sideEffects": "None"},
        {"clientConfig": {"url": "https://a2"}, "name": "a.guard.io", "rules": [
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
             "resources": ["pods"]}]},
        {"$patch": "delete", "name": "b.guard.io"}],
}
WEBHOOKS_RESULT = {
    "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
    "metadata": {"name": "guard", "annotations": NEW},
    "webhooks": [
        {"admissionReviewVersions": ["v1"], "clientConfig": {"url": "https://c"}, "name": "c.guard.io",
         "sideEffects": "None"},
        {"name": "a.guard.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
         "failurePolicy": "Fail",
         "clientConfig": {"url": "https://a2"}, "rules": [
             {"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
              "resources": ["pods"]}]}],
}

CONFIG_MAP_LIVE = {**CONFIG_MAP, "metadata": {**CONFIG_MAP["metadata"], "annotations": OLD},
                   "data": {"a": "1", "b": "2", "server-added": "x"}}
CONFIG_MAP_PATCH = {"data": {"a": "10", "b": None, "c": "3"}, "metadata": {"annotations": NEW}}
CONFIG_MAP_RESULT = {**CONFIG_MAP, "metadata": {**CONFIG_MAP["metadata"], "annotations": NEW},
                     "data": {"a": "10", "server-added": "x", "c": "3"}}

KUBECTL_APPLY_CASES = [
    ("service-ports-by-port", "Service", SERVICE_LIVE, SERVICE_PATCH, SERVICE_RESULT),
    ("deployment-containers-env-finalizers-retain-keys", "Deployment", DEPLOYMENT_LIVE, DEPLOYMENT_PATCH,
     DEPLOYMENT_RESULT),
    ("webhooks-by-name", "ValidatingWebhookConfiguration", WEBHOOKS_LIVE, WEBHOOKS_PATCH, WEBHOOKS_RESULT),
    ("configmap-data-keys", "configmaps", CONFIG_MAP_LIVE, CONFIG_MAP_PATCH, CONFIG_MAP_RESULT),
]
# fmt: on


@table("kind, live, patch, result", KUBECTL_APPLY_CASES)
def test_strategic_merge_of_kubectl_apply_requests(kind: str, live: dict, patch: dict, result: dict) -> None:
    live_before, patch_before = copy.deepcopy(live), copy.deepcopy(patch)
    assert apply_patch(live, json.dumps(patch).encode(), STRATEGIC_MERGE_PATCH, kind) == result
    assert (live, patch) == (live_before, patch_before)


# --- application/strategic-merge-patch+json, one rule at a time ---

# fmt: off
SA = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bot", "finalizers": ["a"]},
      "secrets": [{"name": "s1"}, {"name": "s2"}], "imagePullSecrets": [{"name": "p1"}]}

SMP_CASES = [
    ("merge-list-by-name-adds-and-keeps", {"secrets": [{"name": "s3"}]},
     {"secrets": [{"name": "s3"}, {"name": "s1"}, {"name": "s2"}]}),
    ("merge-list-item-merges-fields", {"secrets": [{"name": "s2", "namespace": "x"}]},
     {"secrets": [{"name": "s1"}, {"name": "s2", "namespace": "x"}]}),
    ("delete-directive-in-list", {"secrets": [{"$patch": "delete", "name": "s1"}]},
     {"secrets": [{"name": "s2"}]}),
    ("replace-directive-in-list", {"secrets": [{"name": "s9"}, {"$patch": "replace"}]},
     {"secrets": [{"name": "s9"}]}),
    ("list-without-strategy-is-replaced", {"imagePullSecrets": [{"name": "p2"}]},
     {"imagePullSecrets": [{"name": "p2"}]}),
    ("primitive-merge-list-is-a-set", {"metadata": {"finalizers": ["b", "a"]}},
     {"metadata": {"name": "bot", "finalizers": ["b", "a"]}}),
    # strategicpatch puts items the live list does not know first unless $setElementOrder says otherwise
    ("new-primitive-goes-first-without-order", {"metadata": {"finalizers": ["b"]}},
     {"metadata": {"name": "bot", "finalizers": ["b", "a"]}}),
    ("set-element-order-orders-primitives",
     {"metadata": {"$setElementOrder/finalizers": ["a", "b"], "finalizers": ["b"]}},
     {"metadata": {"name": "bot", "finalizers": ["a", "b"]}}),
    ("delete-from-primitive-list", {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}},
     {"metadata": {"name": "bot", "finalizers": []}}),
    ("null-deletes-a-field", {"imagePullSecrets": None}, {"imagePullSecrets": GONE}),
    ("replace-directive-in-map", {"metadata": {"$patch": "replace", "name": "bot2"}},
     {"metadata": {"name": "bot2"}}),
    ("delete-directive-in-map-empties-it", {"metadata": {"$patch": "delete"}}, {"metadata": {}}),
    ("new-map-drops-nulls-and-directives", {"automount": {"a": None, "b": {"$patch": "delete"}, "c": 1}},
     {"automount": {"c": 1}}),
    ("type-change-replaces", {"secrets": "none"}, {"secrets": "none"}),
]

SMP_ERRORS = [
    ("retain-keys-not-a-list", {"spec": {"strategy": {"$retainKeys": "type"}}}, 400,
     "invalid patch format of retainKeys"),
    ("retain-keys-missing-a-patched-key",
     {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}, 400,
     "invalid patch format of retainKeys"),
    ("set-element-order-not-a-list", {"metadata": {"$setElementOrder/finalizers": "a"}}, 400,
     "invalid patch format of setElementOrder list"),
    ("list-of-lists", {"metadata": {"finalizers": [["a"]]}}, 422, "lists of lists are not supported"),
    ("patch-list-not-in-set-element-order",
     {"metadata": {"$setElementOrder/finalizers": ["a"], "finalizers": ["b"]}}, 500, None),
    ("merge-directive-in-map", {"spec": {"$patch": "merge"}}, 500, None),
    ("merge-item-without-key", {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}, 500, None),
    ("not-json", b"{", 400, None),
]
# fmt: on


@table("patch, changes", SMP_CASES)
def test_strategic_merge_rules(patch: dict, changes: dict) -> None:
    result = apply_patch(SA, json.dumps(patch), STRATEGIC_MERGE_PATCH, "ServiceAccount")
    assert result == with_changes(SA, changes)


def test_preserve_order_from_patch_in_merging_list() -> None:
    # strategicpatch's own cases "preserve the order from the patch in a merging list", on Service ports.
    live = {"spec": {"ports": [{"port": 1}, {"port": 2, "name": "b"}, {"port": 3}]}}
    patch = {
        "spec": {"ports": [{"port": 3, "name": "c"}, {"port": 1, "name": "a"}, {"port": 2, "protocol": "x"}]}
    }
    result = apply_patch(live, patch, STRATEGIC_MERGE_PATCH, "Service")
    expected = [{"port": 3, "name": "c"}, {"port": 1, "name": "a"}, {"port": 2, "name": "b", "protocol": "x"}]
    assert result["spec"]["ports"] == expected
    partial = {"spec": {"ports": [{"port": 3, "name": "c"}, {"port": 1, "name": "a"}]}}
    result = apply_patch(live, partial, STRATEGIC_MERGE_PATCH, "Service")
    assert [port["port"] for port in result["spec"]["ports"]] == [2, 3, 1]


def test_replace_strategy_replaces_a_map() -> None:
    live = {"spec": {"selector": {"matchLabels": {"app": "a"}}, "minAvailable": 1}}
    patch = {"spec": {"selector": {"matchExpressions": []}}}
    result = apply_patch(live, patch, STRATEGIC_MERGE_PATCH, "PodDisruptionBudget")
    assert result == {"spec": {"selector": {"matchExpressions": []}, "minAvailable": 1}}


def test_owner_references_merge_by_uid() -> None:
    live = {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}
    patch = {"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}}
    result = apply_patch(live, patch, STRATEGIC_MERGE_PATCH, "ConfigMap")
    assert result["metadata"]["ownerReferences"] == [{"uid": "2", "name": "b"}, {"uid": "1", "name": "a"}]


@table("patch, status, message", SMP_ERRORS)
def test_strategic_merge_errors(patch: Any, status: int, message: str | None) -> None:
    body = patch if isinstance(patch, bytes) else json.dumps(patch)
    error = patch_error(DEPLOYMENT_LIVE, body, STRATEGIC_MERGE_PATCH, "Deployment")
    assert error.status == status
    assert error.message == message or message is None
