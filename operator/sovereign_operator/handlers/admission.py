"""The validating admission webhooks: a bad Tenant, TenantPolicy, ModelDeployment or DataSet is refused at
apply time, naming the field.

The checks live in tenant_validation.py and resource_validation.py; this module only gathers their inputs.
Metadata-only updates (kopf's finalizer, annotations) are never refused, or an object admitted under older
rules could not even be deleted. Served and registered
with the API server by admission_server.configure_admission (kopf docs: /admission, "Validation handlers").
"""

from __future__ import annotations

from typing import Any

import kopf

from sovereign.clients.kubernetes import list_tenants
from sovereign_operator.constants import GROUP, VERSION
from sovereign_operator.reconcile.context import operator_context
from sovereign_operator.resource_validation import (
    TenantFacts,
    problems_with_dataset,
    problems_with_model_deployment,
    problems_with_tenant_policy,
    tenant_facts_by_nation,
)
from sovereign_operator.tenant_validation import (
    problems_with_issuer_uniqueness,
    problems_with_nation_uniqueness,
    problems_with_tenant_spec,
    problems_with_tenant_update,
)

UNPROCESSABLE = 422  # the API server's own code for an invalid object
CONFLICT = 409  # another Tenant holds the nation or the token issuer


# Sync on purpose: kopf runs sync handlers in its thread pool, so listing Tenants does not block the loop.
@kopf.on.validate(GROUP, VERSION, "tenants", operations=["CREATE", "UPDATE"])
def validate_tenant(
    name: str, spec: kopf.Spec, old: kopf.Body | None, operation: str, memo: kopf.Memo, **_: Any
) -> None:
    new_spec = dict(spec)
    if operation == "UPDATE" and old is not None:
        if dict(old.get("spec") or {}) == new_spec:
            # Metadata only (kopf's finalizer, a rotation request): never block these, or a Tenant admitted
            # under older rules could not even be offboarded.
            return
        problems = problems_with_tenant_update(old.get("spec") or {}, new_spec)
    else:
        problems = []
    problems += problems_with_tenant_spec(new_spec)
    if problems:
        raise kopf.AdmissionError("; ".join(problems), code=UNPROCESSABLE)
    # Webhook handlers get a copy of the operator's memo (kopf docs: /admission, "In-memory containers"):
    # the operator's one context, whose API client serves every admission request.
    tenants = list_tenants(operator_context(memo).api)
    nations = [(tenant["metadata"]["name"], (tenant.get("spec") or {}).get("nation")) for tenant in tenants]
    conflicts = problems_with_nation_uniqueness(name, new_spec.get("nation"), nations)
    conflicts = conflicts or problems_with_issuer_uniqueness(name, new_spec, tenants)
    if conflicts:
        raise kopf.AdmissionError("; ".join(conflicts), code=CONFLICT)


@kopf.on.validate(GROUP, VERSION, "tenantpolicies", operations=["CREATE", "UPDATE"])
def validate_tenant_policy(
    name: str, namespace: str | None, spec: kopf.Spec, old: kopf.Body | None, memo: kopf.Memo, **_: Any
) -> None:
    if _metadata_only(spec, old):
        return
    problems = problems_with_tenant_policy(name, namespace, spec.get("cedar"), _tenants(memo))
    if problems:
        raise kopf.AdmissionError("; ".join(problems), code=UNPROCESSABLE)


@kopf.on.validate(GROUP, VERSION, "modeldeployments", operations=["CREATE", "UPDATE"])
def validate_model_deployment(
    namespace: str | None, spec: kopf.Spec, old: kopf.Body | None, memo: kopf.Memo, **_: Any
) -> None:
    if _metadata_only(spec, old):
        return
    problems = problems_with_model_deployment(dict(spec), namespace, _tenants(memo))
    if problems:
        raise kopf.AdmissionError("; ".join(problems), code=UNPROCESSABLE)


@kopf.on.validate(GROUP, VERSION, "datasets", operations=["CREATE", "UPDATE"])
def validate_dataset(
    namespace: str | None, spec: kopf.Spec, old: kopf.Body | None, memo: kopf.Memo, **_: Any
) -> None:
    if _metadata_only(spec, old):
        return
    source_root = operator_context(memo).config.dataset_source_root
    problems = problems_with_dataset(dict(spec), namespace, _tenants(memo), source_root)
    if problems:
        raise kopf.AdmissionError("; ".join(problems), code=UNPROCESSABLE)


def _metadata_only(spec: kopf.Spec, old: kopf.Body | None) -> bool:
    return old is not None and dict(old.get("spec") or {}) == dict(spec)


def _tenants(memo: kopf.Memo) -> dict[str, TenantFacts]:
    return tenant_facts_by_nation(list_tenants(operator_context(memo).api))
