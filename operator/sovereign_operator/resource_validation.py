"""What makes a nation's resources acceptable, as pure functions: each returns `field.path: problem` strings.

- ModelDeployment and DataSet: the spec against its model; markings the owning Tenant may hold (classification
  within its clearance, releasable only to nations that have a Tenant, never both released and denied).
- ModelDeployment: no engineArgs that load code or unpinned files (`REFUSED_ENGINE_ARGS`).
- DataSet: its source under the owning nation's data root (`sovereign.dataplane.sources`).
- TenantPolicy: in a tenant namespace, with rules the nation may add (sovereign.policy.nation_rules).

The owning nation is the Tenant whose namespace (`tenant-<nation>`) holds the object. The admission webhook
(handlers/admission.py) gathers the Tenants and refuses with these messages; no I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from sovereign.dataplane.sources import SOURCE_FIELD, SourceOutsideDataRoot, confined_source
from sovereign.domain.markings import NATO, Classification, ResourceMarkings
from sovereign.domain.nations import tenant_namespace
from sovereign.policy.nation_rules import problems_with_nation_rules
from sovereign.specs.dataset import DataSetSpec
from sovereign.specs.model_deployment import ModelDeploymentSpec, refused_engine_args
from sovereign_operator.spec_problems import problems_with_spec_model

NOT_IN_TENANT_NAMESPACE = "TenantPolicy must be in a tenant namespace (tenant-<nation>)"


@dataclass(frozen=True)
class TenantFacts:
    """What admission needs to know of a Tenant: its name, nation and clearance."""

    name: str
    nation: str
    clearance: str


def tenant_facts_by_nation(tenants: Iterable[Mapping[str, Any]]) -> dict[str, TenantFacts]:
    """nation → facts of the Tenant bodies given; for a nation claimed twice, the oldest Tenant's."""
    by_nation: dict[str, TenantFacts] = {}
    oldest_first = sorted(
        tenants, key=lambda t: (str(t["metadata"].get("creationTimestamp", "")), t["metadata"]["name"])
    )
    for tenant in oldest_first:
        spec = tenant.get("spec") or {}
        nation = spec.get("nation")
        if isinstance(nation, str) and nation not in by_nation:
            by_nation[nation] = TenantFacts(tenant["metadata"]["name"], nation, str(spec.get("clearance")))
    return by_nation


def nation_of_namespace(namespace: str | None, nations: Iterable[str]) -> str | None:
    """The nation whose tenant namespace `namespace` is, among the nations that have a Tenant."""
    return next((nation for nation in nations if tenant_namespace(nation) == namespace), None)


def problems_with_model_deployment(
    spec: Mapping[str, Any], namespace: str | None, tenants: Mapping[str, TenantFacts]
) -> list[str]:
    problems = _problems_with_marked_resource(
        "ModelDeployment", ModelDeploymentSpec, spec, namespace, tenants
    )
    refused = refused_engine_args(spec.get("engineArgs"))
    return problems + [f"spec.engineArgs.{key}: refused: {why}" for key, why in refused.items()]


def problems_with_dataset(
    spec: Mapping[str, Any], namespace: str | None, tenants: Mapping[str, TenantFacts], source_root: str
) -> list[str]:
    """Also: `spec.source` under the nation's data root, `<source_root>/<nation lowercase>`."""
    problems = _problems_with_marked_resource("DataSet", DataSetSpec, spec, namespace, tenants)
    nation = nation_of_namespace(namespace, tenants)
    source = spec.get("source")
    if nation is not None and isinstance(source, str) and source:
        problems += problems_with_source(source, nation, source_root)
    return problems


def problems_with_source(source: str, nation: str, source_root: str) -> list[str]:
    """Why `nation` may not read its documents from `source`: it is not under the nation's data root once
    normalised (`..` resolved); [] when it may."""
    try:
        confined_source(source_root, nation, source)
    except SourceOutsideDataRoot as error:
        return [f"{SOURCE_FIELD}: {error}"]
    return []


def problems_with_markings(
    markings: ResourceMarkings, owner: TenantFacts, nations: Iterable[str]
) -> list[str]:
    """Markings the owning Tenant may put on its resource, given the nations that have a Tenant."""
    problems = []
    if markings.classification > Classification(owner.clearance):
        problems.append(
            f"spec.markings.classification: {markings.classification} exceeds the clearance of Tenant "
            f"{owner.name} ({owner.clearance})"
        )
    members = set(nations)
    problems += [
        f"spec.markings.releasableTo: {nation} has no Tenant"
        for nation in markings.releasable_to
        if nation != NATO and nation not in members
    ]
    problems += [
        f"spec.markings.deniedNations: {nation} is also in releasableTo (released and denied at once)"
        for nation in markings.denied_nations
        if nation in markings.releasable_to
    ]
    return problems


def problems_with_tenant_policy(
    name: str, namespace: str | None, cedar: object, nations: Iterable[str]
) -> list[str]:
    """Why TenantPolicy `namespace/name` may not add `cedar` to its nation's rules; [] when it may."""
    nation = nation_of_namespace(namespace, nations)
    if nation is None:
        return [f"{NOT_IN_TENANT_NAMESPACE}; {namespace} belongs to no Tenant"]
    if not isinstance(cedar, str) or not cedar.strip():
        return [f"TenantPolicy {namespace}/{name}: spec.cedar: holds no policy"]
    return [
        f"TenantPolicy {namespace}/{name}: spec.cedar: {problem}"
        for problem in problems_with_nation_rules(nation, cedar)
    ]


def _problems_with_marked_resource(
    kind: str,
    model: type[BaseModel],
    spec: Mapping[str, Any],
    namespace: str | None,
    tenants: Mapping[str, TenantFacts],
) -> list[str]:
    problems = problems_with_spec_model(model, spec)
    nation = nation_of_namespace(namespace, tenants)
    if nation is None:
        where = f"metadata.namespace: {kind} must be in a tenant namespace (tenant-<nation>)"
        return [*problems, f"{where}; {namespace} belongs to no Tenant"]
    try:
        markings = ResourceMarkings.model_validate(spec.get("markings"))
    except ValidationError:
        return problems  # the model's problems name the markings' fields already
    return problems + problems_with_markings(markings, tenants[nation], tenants)
