"""A nation's namespace and what is in it: quota, limits, network isolation, serving identity, admins.

Each object is compared with its builder's manifest and written only if it drifted (see objects.py).
"""

from __future__ import annotations

from typing import Any

import kopf

from sovereign.specs.tenant import TenantSpec
from sovereign_operator import failpoints
from sovereign_operator.builders import (
    build_admin_role_binding_for_tenant,
    build_limit_range_for_tenant,
    build_namespace_for_tenant,
    build_network_policy_for_tenant,
    build_resource_quota_for_tenant,
    build_serving_service_account_for_tenant,
)
from sovereign_operator.builders.conditions import NAMESPACE_READY, Condition
from sovereign_operator.reconcile.context import OperatorContext
from sovereign_operator.reconcile.objects import Outcome, ensure_object, owned_by


def namespaced_manifests(clients: OperatorContext, spec: TenantSpec) -> list[dict[str, Any]]:
    config = clients.config
    return [
        build_resource_quota_for_tenant(spec),
        build_limit_range_for_tenant(spec),
        build_network_policy_for_tenant(
            spec,
            platform_namespace=config.platform_namespace,
            vault_namespace=config.vault_namespace,
            vault_port=config.vault_port,
        ),
        build_serving_service_account_for_tenant(spec),
        build_admin_role_binding_for_tenant(spec),
    ]


def reconcile_namespace(clients: OperatorContext, spec: TenantSpec, body: kopf.Body) -> Condition:
    namespace = build_namespace_for_tenant(spec)
    outcome = ensure_object(clients.dynamic, owned_by(namespace, dict(body)))
    _report(body, namespace, outcome)
    failpoints.reach("provision:after-namespace")
    for manifest in namespaced_manifests(clients, spec):
        _report(body, manifest, ensure_object(clients.dynamic, manifest))
    name = namespace["metadata"]["name"]
    return Condition(NAMESPACE_READY, True, "Provisioned", f"namespace {name} and its policies are in place")


def _report(body: kopf.Body, manifest: dict[str, Any], outcome: Outcome) -> None:
    if outcome is Outcome.unchanged:
        return
    metadata = manifest["metadata"]
    where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    reason = "Created" if outcome is Outcome.created else "Repaired"
    kopf.info(dict(body), reason=reason, message=f"{manifest['kind']} {where}{metadata['name']} {outcome}")
