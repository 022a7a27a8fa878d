"""The catalogue: the Tenants, the models and datasets with their markings, and the policy bundle, as the
cluster holds them now. What `sovereign policy check` and `sovereign access-matrix` decide with.

A ModelDeployment in namespace `tenant-<nation>` (the namespace of that nation's Tenant) is the Model
`<nation lowercase>/<spec.model>`; a DataSet there is the Dataset `<nation lowercase>/<metadata.name>`; both
are owned by that nation. Objects anywhere else, with markings that do not validate, or whose name two objects
claim, are left out with a warning: a resource the catalogue cannot vouch for is never decided on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from sovereign.clients.kubernetes import list_sovereign_objects, list_tenants, read_configmap_data
from sovereign.domain.markings import Classification, Resource, ResourceKind, ResourceMarkings
from sovereign.domain.nations import dataset_name, is_nation_code, served_model_name, tenant_namespace
from sovereign.domain.platform_names import PLATFORM_NAMESPACE
from sovereign.policy.bundle import BUNDLE_CONFIGMAP, PolicyBundle
from sovereign.policy.matrix import MatrixTenant

BASE_ONLY_NOTE = "no nation rules published; deciding with the base policies"


@dataclass(frozen=True)
class Catalogue:
    tenants: list[dict[str, Any]]  # the Tenant objects, as the API returns them
    resources: dict[tuple[ResourceKind, str], Resource]  # by (kind, `<nation>/<name>`)
    bundle: PolicyBundle
    bundle_published: bool  # False: the ConfigMap is absent and `bundle` holds the base policies only
    warnings: list[str] = field(default_factory=list)

    def resource(self, kind: ResourceKind, name: str) -> Resource | None:
        return self.resources.get((kind, name))

    def tenant_for(self, nation: str) -> dict[str, Any] | None:
        return tenant_for(self.tenants, nation)


def tenant_for(tenants: Iterable[Mapping[str, Any]], nation: str) -> dict[str, Any] | None:
    """The nation's Tenant (the oldest, if a duplicate slipped in: the one the operator provisions)."""
    matches = [dict(t) for t in tenants if (t.get("spec") or {}).get("nation") == nation]
    if not matches:
        return None
    return min(matches, key=lambda t: (t["metadata"].get("creationTimestamp", ""), t["metadata"]["name"]))


def resources_from_objects(
    tenants: Iterable[Mapping[str, Any]],
    model_deployments: Iterable[Mapping[str, Any]],
    datasets: Iterable[Mapping[str, Any]],
) -> tuple[dict[tuple[ResourceKind, str], Resource], list[str]]:
    """The resources the objects describe, and a warning for each object left out (pure)."""
    owners: dict[str, str] = {}  # tenant namespace → nation
    for tenant in tenants:
        nation = (tenant.get("spec") or {}).get("nation")
        if isinstance(nation, str) and is_nation_code(nation):
            owners[tenant_namespace(nation)] = nation
    warnings: list[str] = []
    claimed: dict[tuple[ResourceKind, str], list[tuple[str, Resource]]] = defaultdict(list)
    sources = [
        (ResourceKind.model, "ModelDeployment", model_deployments),
        (ResourceKind.dataset, "DataSet", datasets),
    ]
    for kind, object_kind, objects in sources:
        for obj in objects:
            metadata = obj.get("metadata") or {}
            where = f"{object_kind} {metadata.get('namespace')}/{metadata.get('name')}"
            spec = obj.get("spec") or {}
            nation = owners.get(str(metadata.get("namespace")))
            if nation is None:
                warnings.append(f"{where} skipped: not in a tenant namespace (tenant-<nation> of a Tenant)")
                continue
            local = spec.get("model") if kind is ResourceKind.model else metadata.get("name")
            if not isinstance(local, str) or not local:
                warnings.append(f"{where} skipped: it has no {'spec.model' if local is None else 'name'}")
                continue
            try:
                markings = ResourceMarkings.model_validate(spec.get("markings")).owned_by(nation)
                named = served_model_name if kind is ResourceKind.model else dataset_name
                resource = Resource(kind=kind, name=named(nation, local), markings=markings)
            except ValidationError as error:
                first = error.errors()[0]
                path = ".".join(str(p) for p in first["loc"])
                warnings.append(f"{where} skipped: invalid markings ({path}: {first['msg']})")
                continue
            claimed[(kind, resource.name)].append((where, resource))
    resources: dict[tuple[ResourceKind, str], Resource] = {}
    for key, claims in claimed.items():
        if len(claims) > 1:
            claimants = ", ".join(sorted(where for where, _ in claims))
            warnings.append(f"{key[0].value} {key[1]} skipped: claimed by several objects ({claimants})")
            continue
        resources[key] = claims[0][1]
    return dict(sorted(resources.items(), key=lambda item: (item[0][0].value, item[0][1]))), warnings


def bundle_from_configmap(data: Mapping[str, str] | None) -> tuple[PolicyBundle, bool]:
    """The published bundle (BundleError if it is torn or edited), or the base policies when none is."""
    if data is None:
        return PolicyBundle.load(), False
    return PolicyBundle.from_configmap_data(data), True


def load_catalogue(api: Any, namespace: str = PLATFORM_NAMESPACE) -> Catalogue:
    """Everything from the cluster: Tenants, ModelDeployments and DataSets in all namespaces, the bundle."""
    tenants = list_tenants(api)
    resources, warnings = resources_from_objects(
        tenants, list_sovereign_objects(api, "modeldeployments"), list_sovereign_objects(api, "datasets")
    )
    bundle, published = bundle_from_configmap(read_configmap_data(api, namespace, BUNDLE_CONFIGMAP))
    return Catalogue(tenants, resources, bundle, published, warnings)


def tenant_clearance(tenant: Mapping[str, Any]) -> Classification | None:
    try:
        return Classification((tenant.get("spec") or {}).get("clearance", ""))
    except ValueError:
        return None


def matrix_tenants(
    tenant_bodies: Sequence[Mapping[str, Any]], nations: Sequence[str] = ()
) -> tuple[list[MatrixTenant], list[str]]:
    """One MatrixTenant per nation with a valid Tenant (only `nations` if given), and warnings."""
    wanted = {n.strip().upper() for n in nations}
    tenants, warnings = [], []
    seen: set[str] = set()
    for body in tenant_bodies:
        nation = (body.get("spec") or {}).get("nation")
        if not isinstance(nation, str) or nation in seen or (wanted and nation not in wanted):
            continue
        chosen = tenant_for(tenant_bodies, nation) or dict(body)
        clearance = tenant_clearance(chosen)
        if clearance is None:
            warnings.append(f"Tenant {chosen['metadata']['name']} skipped: no valid spec.clearance")
            continue
        seen.add(nation)
        suspended = bool((chosen.get("spec") or {}).get("suspended", False))
        tenants.append(MatrixTenant(nation, clearance, suspended))
    missing = sorted(wanted - seen)
    if missing:
        warnings.append(f"no Tenant for {', '.join(missing)}")
    return sorted(tenants, key=lambda t: t.nation), warnings
