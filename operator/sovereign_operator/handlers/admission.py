"""The validating admission webhooks: a bad Tenant, TenantPolicy, ModelDeployment or DataSet is refused at
apply time, naming the field.

The checks live in tenant_validation.py and resource_validation.py; this module only gathers their inputs.
Metadata-only updates (kopf's finalizer, annotations) are never refused, or an object admitted under older
rules could not even be deleted. Served and registered
with the API server by admission_server.configure_admission (kopf docs: /admission, "Validation handlers").
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from sovereign.catalogue import bundle_from_configmap, matrix_tenants, resources_from_objects
from sovereign.clients.kubernetes import list_tenants, read_configmap_data
from sovereign.policy.bundle import BUNDLE_CONFIGMAP
from sovereign.policy.diff import MAX_WARNING_CHARS
from sovereign.policy.verify import verify_bundle
from sovereign.tenant_policy_diff import load_tenant_policy_change
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
# A TenantPolicy is verified and what it changes computed within this many seconds of the webhook's 10: past
# it, the policy is admitted with a warning saying so (the operator verifies every bundle before publishing).
REVIEW_SECONDS = 5.0


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
    name: str,
    namespace: str | None,
    spec: kopf.Spec,
    old: kopf.Body | None,
    memo: kopf.Memo,
    warnings: list[str],
    logger: kopf.Logger,
    **_: Any,
) -> None:
    if _metadata_only(spec, old):
        return
    problems = problems_with_tenant_policy(name, namespace, spec.get("cedar"), _tenants(memo))
    if problems:
        raise kopf.AdmissionError("; ".join(problems), code=UNPROCESSABLE)
    refusal, lines = _review(memo, str(namespace), name, str(spec["cedar"]), logger)
    if refusal is not None:
        raise kopf.AdmissionError(refusal, code=UNPROCESSABLE)
    # Admission warnings reach the client as `Warning:` lines (kubectl prints them): what the rule grants.
    warnings.extend(lines)


@kopf.on.validate(GROUP, VERSION, "modeldeployments", operations=["CREATE", "UPDATE"])
def validate_model_deployment(
    namespace: str | None, spec: kopf.Spec, body: kopf.Body, old: kopf.Body | None, memo: kopf.Memo, **_: Any
) -> None:
    if _metadata_only(spec, old):
        return
    tenants = list_tenants(operator_context(memo).api)
    problems = problems_with_model_deployment(dict(spec), namespace, tenant_facts_by_nation(tenants))
    problems = problems or _exposed(memo, tenants, _in_namespace(body, namespace), model=True)
    if problems:
        raise kopf.AdmissionError("; ".join(problems), code=UNPROCESSABLE)


@kopf.on.validate(GROUP, VERSION, "datasets", operations=["CREATE", "UPDATE"])
def validate_dataset(
    namespace: str | None, spec: kopf.Spec, body: kopf.Body, old: kopf.Body | None, memo: kopf.Memo, **_: Any
) -> None:
    if _metadata_only(spec, old):
        return
    source_root = operator_context(memo).config.dataset_source_root
    tenants = list_tenants(operator_context(memo).api)
    problems = problems_with_dataset(dict(spec), namespace, tenant_facts_by_nation(tenants), source_root)
    problems = problems or _exposed(memo, tenants, _in_namespace(body, namespace), model=False)
    if problems:
        raise kopf.AdmissionError("; ".join(problems), code=UNPROCESSABLE)


def _exposed(
    memo: kopf.Memo, tenants: list[dict[str, Any]], obj: dict[str, Any], *, model: bool
) -> list[str]:
    """Why the published policies would break an invariant on this model or dataset; [] when proven.

    A bundle is verified on the resources listed when it is published; one admitted later could meet a
    policy no earlier resource did (one about its level or compartments only). Checking every Tenant's users
    on it alone is milliseconds, so it is done here: such a resource is refused, never served.
    """
    context = operator_context(memo)
    models, datasets = ([obj], []) if model else ([], [obj])
    resources, _ = resources_from_objects(tenants, models, datasets)
    if not resources:
        return []  # its markings or namespace are refused by the checks above
    data = read_configmap_data(context.api, context.config.platform_namespace, BUNDLE_CONFIGMAP)
    bundle, _ = bundle_from_configmap(data)
    users, _ = matrix_tenants(tenants)
    verification = verify_bundle(bundle, users, list(resources.values()))
    if verification.ok:
        return []
    what = "ModelDeployment" if model else "DataSet"
    return [f"the published policies would not keep their invariants on this {what}: "
            f"{verification.first_problem()}"]  # fmt: skip


def _in_namespace(body: kopf.Body, namespace: str | None) -> dict[str, Any]:
    obj = dict(body)
    obj["metadata"] = {**dict(body.get("metadata") or {}), "namespace": namespace}
    return obj


def _metadata_only(spec: kopf.Spec, old: kopf.Body | None) -> bool:
    return old is not None and dict(old.get("spec") or {}) == dict(spec)


def _tenants(memo: kopf.Memo) -> dict[str, TenantFacts]:
    return tenant_facts_by_nation(list_tenants(operator_context(memo).api))


def _review(
    memo: kopf.Memo,
    namespace: str,
    name: str,
    cedar: str,
    logger: kopf.Logger,
) -> tuple[str | None, list[str]]:
    """Why the TenantPolicy is refused (its bundle would break an invariant), or None and warning lines
    with the cells it grants and removes (a line saying why if they were not computed).

    Refused here, a nation's rule that breaks an invariant (or that no verification can enumerate) never
    reaches the operator, which would otherwise keep every nation's bundle unpublished until it goes. Run on
    its own thread so the webhook answers within REVIEW_SECONDS whatever the API server or the catalogue's
    size; the comparison itself stops at the same deadline, so a late one does not run on.
    """
    context = operator_context(memo)
    subject = f"TenantPolicy {namespace}/{name}"
    deadline = time.monotonic() + REVIEW_SECONDS

    def review() -> tuple[str | None, list[str]]:
        change, _ = load_tenant_policy_change(
            context.api, namespace, name, cedar, platform_namespace=context.config.platform_namespace
        )
        verification = change.verify()
        if not verification.ok:
            return f"{subject}: the policy bundle would not be published: {verification.first_problem()}", []
        return None, change.diff(deadline=deadline).warning_lines(subject)

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy-review")
    future = executor.submit(review)
    executor.shutdown(wait=False)
    try:
        return future.result(timeout=REVIEW_SECONDS)
    except TimeoutError:
        late = f"not verified nor compared within {REVIEW_SECONDS:.0f} s (the operator verifies it)"
        return None, [f"{subject}: {late}"[:MAX_WARNING_CHARS]]
    except Exception as error:  # noqa: BLE001 — an unreachable catalogue or rules it cannot enumerate: say so
        logger.warning(f"what {subject} changes was not computed: {error}")
        return None, [f"{subject}: what it changes was not computed: {error}"[:MAX_WARNING_CHARS]]
