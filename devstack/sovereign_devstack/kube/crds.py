"""Serving CustomResourceDefinitions: a CRD object becomes a served resource type, and its status says so.

# k8s docs: /docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/
"""

from __future__ import annotations

from typing import Any

from sovereign_devstack.kube import errors
from sovereign_devstack.kube.resource_types import ResourceType
from sovereign_devstack.kube.store import now_rfc3339

CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
# kube-apiserver's finalizer: the CRD stays until all its custom objects are gone.
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


def validate_crd(crd: dict[str, Any]) -> None:
    name = crd["metadata"]["name"]
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    causes = []
    if not spec.get("group"):
        causes.append(errors.field_cause("spec.group", "Required value", "FieldValueRequired"))
    if not names.get("plural"):
        causes.append(errors.field_cause("spec.names.plural", "Required value", "FieldValueRequired"))
    if not names.get("kind"):
        causes.append(errors.field_cause("spec.names.kind", "Required value", "FieldValueRequired"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            errors.field_cause(
                "spec.scope",
                f'Unsupported value: "{spec.get("scope")}": supported values: "Cluster", "Namespaced"',
                "FieldValueNotSupported",
            )
        )
    versions = spec.get("versions") or []
    if not versions or sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(
            errors.field_cause(
                "spec.versions", "Invalid value: must have exactly one version marked as storage version"
            )
        )
    for i, version in enumerate(versions):
        if not (version.get("schema") or {}).get("openAPIV3Schema"):
            causes.append(
                errors.field_cause(
                    f"spec.versions[{i}].schema.openAPIV3Schema",
                    "Required value: schemas are required",
                    "FieldValueRequired",
                )
            )
    if names.get("plural") and spec.get("group") and name != f"{names['plural']}.{spec['group']}":
        causes.append(
            errors.field_cause(
                "metadata.name", f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'
            )
        )
    if causes:
        raise errors.invalid("apiextensions.k8s.io", "CustomResourceDefinition", name, causes)


def _defaulted_names(spec: dict[str, Any]) -> dict[str, Any]:
    names = dict(spec.get("names") or {})
    names.setdefault("singular", names.get("kind", "").lower())
    names.setdefault("listKind", names.get("kind", "") + "List")
    return names


def default_crd(crd: dict[str, Any]) -> None:
    """CRD v1 defaulting: names.singular/listKind, conversion None (the Age column is added by tables.py)."""
    spec = crd.setdefault("spec", {})
    spec["names"] = _defaulted_names(spec)
    spec.setdefault("conversion", {"strategy": "None"})


def resource_type(crd: dict[str, Any]) -> ResourceType:
    spec = crd["spec"]
    names = _defaulted_names(spec)
    served = [v for v in spec.get("versions") or [] if v.get("served", True)]
    served.sort(key=lambda v: not v.get("storage"))  # the storage version is preferred
    return ResourceType(
        group=spec["group"],
        versions=[v["name"] for v in served],
        plural=names["plural"],
        singular=names["singular"],
        kind=names["kind"],
        namespaced=spec.get("scope") == "Namespaced",
        short_names=list(names.get("shortNames") or []),
        categories=list(names.get("categories") or []),
        # Only the status subresource is served; `scale` is not implemented by the devstack.
        subresources=("status",) if served and "status" in (served[0].get("subresources") or {}) else (),
        crd_name=crd["metadata"]["name"],
        schemas={v["name"]: (v.get("schema") or {}).get("openAPIV3Schema") for v in served},
        printer_columns={v["name"]: list(v.get("additionalPrinterColumns") or []) for v in served},
    )


def established_status(crd: dict[str, Any]) -> dict[str, Any]:
    """The status kube's CRD controllers write: names accepted, established, storedVersions."""
    spec = crd["spec"]
    names = _defaulted_names(spec)
    now = now_rfc3339()
    previous = {c.get("type"): c for c in (crd.get("status") or {}).get("conditions") or []}

    def condition(kind: str, reason: str, message: str) -> dict[str, Any]:
        old = previous.get(kind)
        since = old["lastTransitionTime"] if old and old.get("status") == "True" else now
        return {
            "type": kind,
            "status": "True",
            "lastTransitionTime": since,
            "reason": reason,
            "message": message,
        }

    stored = list((crd.get("status") or {}).get("storedVersions") or [])
    for v in spec.get("versions") or []:
        if v.get("storage") and v["name"] not in stored:
            stored.append(v["name"])
    return {
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": names,
        "storedVersions": stored,
    }


def terminating_status(crd: dict[str, Any]) -> dict[str, Any]:
    status = dict(crd.get("status") or {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Terminating"]
    conditions.append(
        {
            "type": "Terminating",
            "status": "True",
            "lastTransitionTime": now_rfc3339(),
            "reason": "InstanceDeletionInProgress",
            "message": "CustomResource deletion is in progress",
        }
    )
    status["conditions"] = conditions
    return status
