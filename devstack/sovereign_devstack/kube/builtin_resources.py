"""The built-in kinds this API server serves, with their discovery names and their `kubectl get` columns.

Names, short names, scopes and subresources follow `kubectl api-resources` of a v1.32 cluster.
"""

from __future__ import annotations

from typing import Any

from sovereign_devstack.kube import tables
from sovereign_devstack.kube.resource_types import ResourceType

CREATE_ONLY = ("create",)


def _count(field: str) -> Any:
    return lambda obj: len(obj.get(field) or {})


def _ports(obj: dict[str, Any]) -> str:
    ports = (obj.get("spec") or {}).get("ports") or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _builtin(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool,
    *short: str,
    subresources: tuple[str, ...] = (),
    verbs: tuple[str, ...] | None = None,
    columns: list[Any] | None = None,
    categories: tuple[str, ...] = (),
) -> ResourceType:
    rt = ResourceType(
        group=group,
        versions=[version],
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=list(short),
        subresources=subresources,
        builtin_columns=columns or [],
        categories=list(categories),
    )
    if verbs is not None:
        rt.verbs = verbs
    return rt


def _events(group: str, version: str, regarding: str, message: str, last: str) -> ResourceType:
    """Events print like `kubectl get events`: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE."""

    def last_seen(o: dict[str, Any]) -> str:
        return tables.age(o.get(last) or o.get("eventTime") or o["metadata"].get("creationTimestamp"))

    def involved(o: dict[str, Any]) -> str:
        ref = o.get(regarding) or {}
        return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"

    rt = _builtin(
        group,
        version,
        "events",
        "Event",
        True,
        "ev",
        columns=[
            ("Last Seen", "string", last_seen),
            ("Type", "string", lambda o: o.get("type", "")),
            ("Reason", "string", lambda o: o.get("reason", "")),
            ("Object", "string", involved),
            ("Message", "string", lambda o: o.get(message, "")),
        ],
    )
    rt.name_and_age = False
    return rt


def _param_kind(obj: dict[str, Any]) -> str:
    kind = (obj.get("spec") or {}).get("paramKind")
    return f"{kind.get('apiVersion', '')}/{kind.get('kind', '')}" if kind else "<unset>"


def builtin_resource_types() -> list[ResourceType]:
    return [
        _builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            False,
            "ns",
            subresources=("status", "finalize"),
            columns=[("Status", "string", lambda o: (o.get("status") or {}).get("phase", ""))],
        ),
        _builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            True,
            "sa",
            subresources=("token",),
            columns=[("Secrets", "integer", lambda o: len(o.get("secrets") or []))],
        ),
        _builtin("", "v1", "resourcequotas", "ResourceQuota", True, "quota", subresources=("status",)),
        _builtin("", "v1", "limitranges", "LimitRange", True, "limits"),
        _builtin(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            True,
            "cm",
            columns=[
                ("Data", "integer", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}))
            ],
        ),
        _builtin(
            "",
            "v1",
            "secrets",
            "Secret",
            True,
            columns=[
                ("Type", "string", lambda o: o.get("type", "Opaque")),
                ("Data", "integer", _count("data")),
            ],
        ),
        _builtin(
            "",
            "v1",
            "services",
            "Service",
            True,
            "svc",
            subresources=("status",),
            categories=("all",),
            columns=[
                ("Type", "string", lambda o: (o.get("spec") or {}).get("type", "ClusterIP")),
                ("Cluster-IP", "string", lambda o: (o.get("spec") or {}).get("clusterIP", "<none>")),
                (
                    "External-IP",
                    "string",
                    lambda o: ",".join((o.get("spec") or {}).get("externalIPs") or []) or "<none>",
                ),
                ("Port(s)", "string", _ports),
            ],
        ),
        _events("", "v1", "involvedObject", "message", "lastTimestamp"),
        _events("events.k8s.io", "v1", "regarding", "note", "deprecatedLastTimestamp"),
        _builtin("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, "netpol"),
        _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
        _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
        _builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
        _builtin("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
        _builtin("coordination.k8s.io", "v1", "leases", "Lease", True),
        _builtin(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            False,
        ),
        # k8s docs: /docs/reference/access-authn-authz/validating-admission-policy/ (enforced: admission.py)
        _builtin(
            "admissionregistration.k8s.io",
            "v1",
            "validatingadmissionpolicies",
            "ValidatingAdmissionPolicy",
            False,
            subresources=("status",),
            columns=[
                ("Validations", "integer", lambda o: len((o.get("spec") or {}).get("validations") or [])),
                ("ParamKind", "string", lambda o: _param_kind(o)),
            ],
        ),
        _builtin(
            "admissionregistration.k8s.io",
            "v1",
            "validatingadmissionpolicybindings",
            "ValidatingAdmissionPolicyBinding",
            False,
            columns=[
                ("PolicyName", "string", lambda o: (o.get("spec") or {}).get("policyName", "")),
                ("ParamRef", "string", lambda o: "<unset>"),
            ],
        ),
        _builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            False,
            "crd",
            "crds",
            subresources=("status",),
        ),
        _builtin("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, verbs=CREATE_ONLY),
    ]


NAME_RULES = {
    # k8s docs: /docs/concepts/overview/working-with-objects/names/ — most names are DNS subdomains,
    # namespaces are DNS labels, services RFC 1035 labels, RBAC names only path segments.
    ("", "namespaces"): "label",
    ("", "services"): "label1035",
    ("rbac.authorization.k8s.io", "roles"): "path",
    ("rbac.authorization.k8s.io", "rolebindings"): "path",
    ("rbac.authorization.k8s.io", "clusterroles"): "path",
    ("rbac.authorization.k8s.io", "clusterrolebindings"): "path",
}


_EVENT_V1 = (
    "involvedObject",
    "reason",
    "message",
    "source",
    "firstTimestamp",
    "lastTimestamp",
    "count",
    "type",
    "eventTime",
    "series",
    "action",
    "related",
    "reportingComponent",
    "reportingInstance",
)
_EVENT_EVENTS_V1 = (
    "eventTime",
    "series",
    "reportingController",
    "reportingInstance",
    "action",
    "reason",
    "regarding",
    "related",
    "note",
    "type",
    "deprecatedSource",
    "deprecatedFirstTimestamp",
    "deprecatedLastTimestamp",
    "deprecatedCount",
)
# The top-level fields each built-in kind has besides apiVersion/kind/metadata: others are unknown fields,
# dropped with a warning or refused under fieldValidation=Strict, as kube-apiserver's decoder does.
# k8s docs: /docs/reference/using-api/api-concepts/#field-validation
TOP_LEVEL_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "namespaces"): ("spec", "status"),
    ("", "serviceaccounts"): ("secrets", "imagePullSecrets", "automountServiceAccountToken"),
    ("", "resourcequotas"): ("spec", "status"),
    ("", "limitranges"): ("spec",),
    ("", "configmaps"): ("data", "binaryData", "immutable"),
    ("", "secrets"): ("data", "stringData", "type", "immutable"),
    ("", "services"): ("spec", "status"),
    ("", "events"): _EVENT_V1,
    ("events.k8s.io", "events"): _EVENT_EVENTS_V1,
    ("networking.k8s.io", "networkpolicies"): ("spec",),
    ("rbac.authorization.k8s.io", "roles"): ("rules",),
    ("rbac.authorization.k8s.io", "clusterroles"): ("rules", "aggregationRule"),
    ("rbac.authorization.k8s.io", "rolebindings"): ("subjects", "roleRef"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): ("subjects", "roleRef"),
    ("coordination.k8s.io", "leases"): ("spec",),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): ("webhooks",),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"): ("spec", "status"),
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"): ("spec",),
    ("apiextensions.k8s.io", "customresourcedefinitions"): ("spec", "status"),
}
