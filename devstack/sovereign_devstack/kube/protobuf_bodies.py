"""Decoding of Kubernetes protobuf request bodies for the built-in kinds kubectl creates imperatively.

kubectl 1.32's typed clients (`kubectl create namespace|configmap|secret|serviceaccount|role|...`,
`kubectl create token`) send `application/vnd.kubernetes.protobuf` and do not fall back to JSON, so the
server must read them. Responses are always JSON, which clients accept.
# k8s docs: /docs/reference/using-api/api-concepts/#protobuf-encoding
The field numbers are those of the published k8s.io/api and k8s.io/apimachinery `generated.proto` files.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from sovereign_devstack.kube import errors

MAGIC = b"k8s\x00"

# message -> field number -> (json name, type, cardinality); type is a scalar or a message name;
# cardinality "" (single), "[]" (repeated) or "map:<value type>".
Fields = dict[int, tuple[str, str, str]]
META = "ObjectMeta"
MESSAGES: dict[str, Fields] = {
    "Unknown": {
        1: ("typeMeta", "TypeMeta", ""),
        2: ("raw", "bytes", ""),
        3: ("contentEncoding", "string", ""),
        4: ("contentType", "string", ""),
    },
    "TypeMeta": {1: ("apiVersion", "string", ""), 2: ("kind", "string", "")},
    "Time": {1: ("seconds", "int", ""), 2: ("nanos", "int", "")},
    "ObjectMeta": {
        1: ("name", "string", ""),
        2: ("generateName", "string", ""),
        3: ("namespace", "string", ""),
        5: ("uid", "string", ""),
        6: ("resourceVersion", "string", ""),
        7: ("generation", "int", ""),
        11: ("labels", "string", "map:string"),
        12: ("annotations", "string", "map:string"),
        13: ("ownerReferences", "OwnerReference", "[]"),
        14: ("finalizers", "string", "[]"),
    },
    "OwnerReference": {
        5: ("apiVersion", "string", ""),
        1: ("kind", "string", ""),
        3: ("name", "string", ""),
        4: ("uid", "string", ""),
        6: ("controller", "bool", ""),
        7: ("blockOwnerDeletion", "bool", ""),
    },
    "LabelSelector": {
        1: ("matchLabels", "string", "map:string"),
        2: ("matchExpressions", "LabelSelectorRequirement", "[]"),
    },
    "LabelSelectorRequirement": {
        1: ("key", "string", ""),
        2: ("operator", "string", ""),
        3: ("values", "string", "[]"),
    },
    "IntOrString": {1: ("type", "int", ""), 2: ("intVal", "int", ""), 3: ("strVal", "string", "")},
    "Quantity": {1: ("string", "string", "")},
    # core/v1
    "Namespace": {1: ("metadata", META, ""), 2: ("spec", "NamespaceSpec", "")},
    "NamespaceSpec": {1: ("finalizers", "string", "[]")},
    "ConfigMap": {
        1: ("metadata", META, ""),
        4: ("immutable", "bool", ""),
        2: ("data", "string", "map:string"),
        3: ("binaryData", "string", "map:bytes"),
    },
    "Secret": {
        1: ("metadata", META, ""),
        5: ("immutable", "bool", ""),
        2: ("data", "string", "map:bytes"),
        4: ("stringData", "string", "map:string"),
        3: ("type", "string", ""),
    },
    "ServiceAccount": {
        1: ("metadata", META, ""),
        2: ("secrets", "ObjectReference", "[]"),
        3: ("imagePullSecrets", "LocalObjectReference", "[]"),
        4: ("automountServiceAccountToken", "bool", ""),
    },
    "ObjectReference": {
        1: ("kind", "string", ""),
        2: ("namespace", "string", ""),
        3: ("name", "string", ""),
        4: ("uid", "string", ""),
        5: ("apiVersion", "string", ""),
        6: ("resourceVersion", "string", ""),
        7: ("fieldPath", "string", ""),
    },
    "LocalObjectReference": {1: ("name", "string", "")},
    "Service": {1: ("metadata", META, ""), 2: ("spec", "ServiceSpec", "")},
    "ServiceSpec": {
        1: ("ports", "ServicePort", "[]"),
        2: ("selector", "string", "map:string"),
        3: ("clusterIP", "string", ""),
        18: ("clusterIPs", "string", "[]"),
        4: ("type", "string", ""),
        5: ("externalIPs", "string", "[]"),
        7: ("sessionAffinity", "string", ""),
        10: ("externalName", "string", ""),
        11: ("externalTrafficPolicy", "string", ""),
        19: ("ipFamilies", "string", "[]"),
        17: ("ipFamilyPolicy", "string", ""),
    },
    "ServicePort": {
        1: ("name", "string", ""),
        2: ("protocol", "string", ""),
        6: ("appProtocol", "string", ""),
        3: ("port", "int", ""),
        4: ("targetPort", "IntOrString", ""),
        5: ("nodePort", "int", ""),
    },
    "ResourceQuota": {1: ("metadata", META, ""), 2: ("spec", "ResourceQuotaSpec", "")},
    "ResourceQuotaSpec": {1: ("hard", "Quantity", "map:Quantity"), 2: ("scopes", "string", "[]")},
    # rbac.authorization.k8s.io/v1
    "Role": {1: ("metadata", META, ""), 2: ("rules", "PolicyRule", "[]")},
    "ClusterRole": {
        1: ("metadata", META, ""),
        2: ("rules", "PolicyRule", "[]"),
        3: ("aggregationRule", "AggregationRule", ""),
    },
    "AggregationRule": {1: ("clusterRoleSelectors", "LabelSelector", "[]")},
    "PolicyRule": {
        1: ("verbs", "string", "[]"),
        2: ("apiGroups", "string", "[]"),
        3: ("resources", "string", "[]"),
        4: ("resourceNames", "string", "[]"),
        5: ("nonResourceURLs", "string", "[]"),
    },
    "RoleBinding": {
        1: ("metadata", META, ""),
        2: ("subjects", "Subject", "[]"),
        3: ("roleRef", "RoleRef", ""),
    },
    "ClusterRoleBinding": {
        1: ("metadata", META, ""),
        2: ("subjects", "Subject", "[]"),
        3: ("roleRef", "RoleRef", ""),
    },
    "Subject": {
        1: ("kind", "string", ""),
        2: ("apiGroup", "string", ""),
        3: ("name", "string", ""),
        4: ("namespace", "string", ""),
    },
    "RoleRef": {1: ("apiGroup", "string", ""), 2: ("kind", "string", ""), 3: ("name", "string", "")},
    # authentication.k8s.io/v1
    "TokenRequest": {1: ("metadata", META, ""), 2: ("spec", "TokenRequestSpec", "")},
    "TokenRequestSpec": {
        1: ("audiences", "string", "[]"),
        4: ("expirationSeconds", "int", ""),
        3: ("boundObjectRef", "BoundObjectReference", ""),
    },
    "BoundObjectReference": {
        1: ("kind", "string", ""),
        2: ("apiVersion", "string", ""),
        3: ("name", "string", ""),
        4: ("uid", "string", ""),
    },
    # authorization.k8s.io/v1 (kubectl auth can-i)
    "SelfSubjectReview": {1: ("metadata", META, "")},
    "SelfSubjectAccessReview": {1: ("metadata", META, ""), 2: ("spec", "SubjectAccessReviewSpec", "")},
    "SubjectAccessReview": {1: ("metadata", META, ""), 2: ("spec", "SubjectAccessReviewSpec", "")},
    "LocalSubjectAccessReview": {1: ("metadata", META, ""), 2: ("spec", "SubjectAccessReviewSpec", "")},
    "SelfSubjectRulesReview": {1: ("metadata", META, ""), 2: ("spec", "SelfSubjectRulesReviewSpec", "")},
    "SelfSubjectRulesReviewSpec": {1: ("namespace", "string", "")},
    "SubjectAccessReviewSpec": {
        1: ("resourceAttributes", "ResourceAttributes", ""),
        2: ("nonResourceAttributes", "NonResourceAttributes", ""),
        3: ("user", "string", ""),
        4: ("groups", "string", "[]"),
        6: ("uid", "string", ""),
    },
    "ResourceAttributes": {
        1: ("namespace", "string", ""),
        2: ("verb", "string", ""),
        3: ("group", "string", ""),
        4: ("version", "string", ""),
        5: ("resource", "string", ""),
        6: ("subresource", "string", ""),
        7: ("name", "string", ""),
    },
    "NonResourceAttributes": {1: ("path", "string", ""), 2: ("verb", "string", "")},
    "DeleteOptions": {
        4: ("gracePeriodSeconds", "int", ""),
        3: ("orphanDependents", "bool", ""),
        5: ("propagationPolicy", "string", ""),
        6: ("dryRun", "string", "[]"),
    },
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, raw value) triples of one message."""
    out, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((number, wire, value))
    return out


def _scalar(kind: str, raw: Any) -> Any:
    if kind == "string":
        return raw.decode("utf-8")
    if kind == "bytes":
        return base64.b64encode(raw).decode()  # JSON carries []byte as base64, as the API does
    if kind == "bool":
        return bool(raw)
    if kind == "int":
        return raw - (1 << 64) if raw >= 1 << 63 else raw
    return decode_message(kind, raw)


def _simplify(kind: str, value: dict[str, Any]) -> Any:
    if kind == "Time":
        seconds = value.get("seconds", 0)
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if seconds else None
    if kind == "IntOrString":
        return value.get("strVal", "") if value.get("type") == 1 else value.get("intVal", 0)
    if kind == "Quantity":
        return value.get("string", "")
    return value


def decode_message(kind: str, data: bytes) -> Any:
    schema = MESSAGES[kind]
    result: dict[str, Any] = {}
    for number, _wire, raw in _fields(data):
        if number not in schema:
            continue  # fields the devstack does not need are dropped
        name, field_kind, cardinality = schema[number]
        if cardinality.startswith("map:"):
            entry = {n: r for n, _, r in _fields(raw)}
            value_kind = cardinality[4:]
            key = entry.get(1, b"").decode("utf-8")
            result.setdefault(name, {})[key] = _simplify(value_kind, _scalar(value_kind, entry.get(2, b"")))
        elif cardinality == "[]":
            result.setdefault(name, []).append(_simplify(field_kind, _scalar(field_kind, raw)))
        else:
            result[name] = _simplify(field_kind, _scalar(field_kind, raw))
    # Go's protobuf writes zero values that JSON would omit: drop them.
    return {k: v for k, v in result.items() if v not in ("", 0, None, {}, [])}


def decode_body(body: bytes) -> dict[str, Any]:
    """A `k8s\\0`-prefixed runtime.Unknown envelope holding a built-in object, as a JSON-like dict."""
    if not body.startswith(MAGIC):
        raise errors.bad_request("the body of the request was in an unknown format - missing protobuf magic")
    envelope = decode_message("Unknown", body[len(MAGIC) :])
    type_meta = envelope.get("typeMeta") or {}
    kind = type_meta.get("kind", "")
    if kind not in MESSAGES or "raw" not in envelope:
        raise errors.StatusError(
            415,
            "UnsupportedMediaType",
            f"the devstack API server cannot decode {kind} from protobuf; send application/json",
            {},
        )
    obj = decode_message(kind, base64.b64decode(envelope["raw"]))
    return {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind, **obj}
