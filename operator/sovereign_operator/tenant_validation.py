"""What makes a Tenant acceptable, as pure functions: each returns `field.path: problem` strings, no I/O.

The admission webhook (handlers/admission.py) refuses a Tenant with these messages; the CRD's schema already
refuses most malformed bodies first, so these checks cover what a structural schema cannot express:
quantities that parse but are negative or not finite, a rotation period below one second, subject rules,
one Tenant per nation, one Tenant per token issuer, and an immutable nation.

Token issuers: a gateway trusts every Tenant's issuer and refuses a configuration in which two Tenants
name one (it could not tell their users apart), so the webhook refuses a Tenant whose issuer
(`spec.identity.issuer`, or without `spec.identity` the dev issuer the operator would make for its nation)
another Tenant already names; and the operator, for a Tenant admitted anyway (webhook down, two Tenants
created at once), keeps the older Tenant (by creationTimestamp, then name) and leaves the other out of every
gateway's configuration (`tenants_sharing_an_issuer`, Ready=False `IssuerConflict`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from kubernetes.utils import parse_quantity

from sovereign.domain.nations import dev_issuer
from sovereign.domain.platform_names import PLATFORM_NAMESPACE
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.spec_problems import problems_with_spec_model

# Kubernetes resource.Quantity with its sign (k8s docs: /docs/reference/kubernetes-api/common-definitions/
# quantity/); parse_quantity alone accepts "NaN", "inf" and surrounding blanks, which the API never does.
_QUANTITY = re.compile(r"[+-]?[0-9.]+(?:[eEinumkKMGTP]*[-+]?[0-9]*)")
_QUANTITY_FIELDS = ("cpu", "memory")

# A Go time.Duration string, as `keyRotation.period` is written (`720h`, `1h30m`, `90s`).
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_SECONDS_PER_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
MINIMUM_ROTATION_SECONDS = 1.0

# Fields whose pydantic pattern errors are replaced by the clearer messages of the checks below.
_REPLACED_PATTERN_ERRORS = {("quotas", "cpu"), ("quotas", "memory"), ("keyRotation", "period")}


def problems_with_tenant_spec(spec: Mapping[str, Any]) -> list[str]:
    """Everything wrong with a Tenant's `spec` (camelCase, as sent to the API), each naming its field."""
    problems = problems_with_spec_model(TenantSpec, spec, _REPLACED_PATTERN_ERRORS)
    quotas = spec.get("quotas")
    if isinstance(quotas, Mapping):
        for name in _QUANTITY_FIELDS:
            if name in quotas:
                problems += _quantity_problems(f"spec.quotas.{name}", quotas[name])
    rotation = spec.get("keyRotation")
    if isinstance(rotation, Mapping) and "period" in rotation:
        problems += _rotation_period_problems("spec.keyRotation.period", rotation["period"])
    admins = spec.get("admins")
    if isinstance(admins, list):
        for index, subject in enumerate(admins):
            if isinstance(subject, Mapping):
                problems += _subject_problems(f"spec.admins[{index}]", subject)
    identity = spec.get("identity")
    if isinstance(identity, Mapping) and not identity.get("jwks") and not identity.get("jwksUri"):
        problems.append("spec.identity: needs jwks or jwksUri to verify the nation's tokens")
    return problems


def problems_with_tenant_update(old_spec: Mapping[str, Any], new_spec: Mapping[str, Any]) -> list[str]:
    """A Tenant's nation names its keys and namespace: changing it would orphan both."""
    old_nation, new_nation = old_spec.get("nation"), new_spec.get("nation")
    if old_nation != new_nation:
        return [f"spec.nation: is immutable (was {old_nation!r}, now {new_nation!r}); create a new Tenant"]
    return []


def problems_with_nation_uniqueness(
    name: str, nation: object, existing: Iterable[tuple[str, str | None]]
) -> list[str]:
    """One Tenant per nation: `existing` holds (Tenant name, its nation) of every Tenant in the cluster."""
    taken_by = sorted(other for other, other_nation in existing if other_nation == nation and other != name)
    if taken_by:
        return [f"spec.nation: {nation!r} already belongs to Tenant {taken_by[0]!r}; one Tenant per nation"]
    return []


def intended_issuer(spec: Mapping[str, Any]) -> str:
    """The issuer a Tenant's users come from: `spec.identity.issuer`, else its nation's dev issuer."""
    identity = spec.get("identity")
    if isinstance(identity, Mapping) and identity.get("issuer"):
        return str(identity["issuer"])
    return dev_issuer(str(spec.get("nation")))


def served_issuer(tenant: Mapping[str, Any]) -> str | None:
    """The issuer a gateway trusts for a Tenant object, as `trusted_issuer_from_tenant` reads it
    (spec.identity, else the issuer the operator published in status.identity); None before it has one."""
    spec, status = tenant.get("spec") or {}, tenant.get("status") or {}
    source = spec.get("identity") or status.get("identity") or {}
    issuer = source.get("issuer") if isinstance(source, Mapping) else None
    return str(issuer) if issuer else None


def problems_with_issuer_uniqueness(
    name: str, spec: Mapping[str, Any], existing: Iterable[Mapping[str, Any]]
) -> list[str]:
    """One Tenant per token issuer: `existing` holds every Tenant object in the cluster (this one's old self
    included, which is skipped); each other Tenant claims its intended and its published issuer."""
    issuer = intended_issuer(spec)
    for other in sorted(existing, key=lambda t: str(t["metadata"]["name"])):
        other_name = other["metadata"]["name"]
        if other_name == name:
            continue
        claimed = {intended_issuer(other.get("spec") or {}), served_issuer(other)}
        if issuer in claimed:
            taken = f"the token issuer of Tenant {other_name!r} ({(other.get('spec') or {}).get('nation')})"
            if isinstance(spec.get("identity"), Mapping):
                return [
                    f"spec.identity.issuer: {issuer!r} is already {taken}; each nation needs its own issuer"
                ]
            return [f"spec.identity: without it, the dev issuer {issuer!r} would be used, already {taken}"]
    return []


def tenants_sharing_an_issuer(tenants: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """Tenant name → (the older Tenant that keeps the issuer, the issuer), for every Tenant whose served
    issuer an older Tenant (by creationTimestamp, then name) also names: those are left out of the gateways'
    configuration, which a gateway would otherwise refuse as a whole."""
    by_issuer: dict[str, list[tuple[str, str]]] = {}
    for tenant in tenants:
        issuer = served_issuer(tenant)
        if issuer is not None:
            metadata = tenant["metadata"]
            by_issuer.setdefault(issuer, []).append(
                (str(metadata.get("creationTimestamp", "")), str(metadata["name"]))
            )
    losers: dict[str, tuple[str, str]] = {}
    for issuer, claimants in by_issuer.items():
        (_, keeper), *others = sorted(claimants)
        losers.update({name: (keeper, issuer) for _, name in others})
    return losers


def rotation_period_seconds(period: str) -> float | None:
    """Seconds in a Go duration string such as `720h` or `1h30m`; None if it is not one."""
    if not period or _DURATION_PART.sub("", period):
        return None
    return sum(float(amount) * _SECONDS_PER_UNIT[unit] for amount, unit in _DURATION_PART.findall(period))


def _quantity_problems(path: str, value: object) -> list[str]:
    if not isinstance(value, str):
        return []  # the model reports the type (the CRD declares quantities as strings)
    if not _QUANTITY.fullmatch(value):
        return [f'{path}: "{value}" is not a Kubernetes quantity (e.g. "500m", "2", "8Gi")']
    try:
        amount = Decimal(parse_quantity(value))
    except (ValueError, InvalidOperation):
        return [f'{path}: "{value}" is not a Kubernetes quantity (e.g. "500m", "2", "8Gi")']
    if not math.isfinite(amount):
        return [f'{path}: "{value}" is not a finite quantity']
    if amount < 0:
        return [f'{path}: "{value}" is negative']
    return []


def _rotation_period_problems(path: str, value: object) -> list[str]:
    seconds = rotation_period_seconds(value) if isinstance(value, str) else None
    if seconds is None:
        return [f'{path}: "{value}" is not a duration (e.g. "720h", "1h30m", "90s")']
    if seconds < MINIMUM_ROTATION_SECONDS:
        return [f'{path}: "{value}" is shorter than {MINIMUM_ROTATION_SECONDS:g}s']
    return []


def _subject_problems(path: str, subject: Mapping[str, Any]) -> list[str]:
    # RBAC subjects (k8s docs: /docs/reference/access-authn-authz/rbac/#referring-to-subjects): a
    # ServiceAccount is named within a namespace; a User or Group has none.
    kind, namespace = subject.get("kind"), subject.get("namespace")
    if kind == "ServiceAccount" and not namespace:
        return [f"{path}.namespace: a ServiceAccount subject needs its namespace"]
    if kind in ("User", "Group") and namespace:
        return [f"{path}.namespace: a {kind} subject has no namespace"]
    # The chart's admission policy refuses the operator such a binding (Kubernetes identities, the platform's
    # own ServiceAccounts): say so at apply time rather than leave the Tenant never Ready.
    if kind in ("User", "Group") and str(subject.get("name", "")).startswith("system:"):
        return [f"{path}.name: a nation's admin cannot be a Kubernetes identity (system:*)"]
    if kind == "ServiceAccount" and namespace == PLATFORM_NAMESPACE:
        return [f"{path}.namespace: a nation's admin cannot be a ServiceAccount of {PLATFORM_NAMESPACE}"]
    return []
