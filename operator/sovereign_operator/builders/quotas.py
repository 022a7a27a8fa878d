"""What a nation's namespace may consume: its ResourceQuota, and the LimitRange that makes the quota usable.

A quota on requests.cpu/limits.cpu makes the API server refuse pods that do not set them; the LimitRange's
container defaults fill them in. k8s docs: /docs/concepts/policy/resource-quotas/#compute-resource-quota
"""

from __future__ import annotations

from typing import Any

from kubernetes.utils.quantity import parse_quantity

from sovereign.domain.nations import tenant_namespace
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.constants import GPU_RESOURCE, GROUP, TENANT_LIMIT_RANGE, TENANT_QUOTA, tenant_labels

# Container defaults for pods that state nothing (sidecars, jobs); model servers state their own.
DEFAULT_CONTAINER_REQUEST = {"cpu": "100m", "memory": "128Mi"}
DEFAULT_CONTAINER_LIMIT = {"cpu": "1", "memory": "1Gi"}


def build_resource_quota_for_tenant(spec: TenantSpec) -> dict[str, Any]:
    quotas = spec.quotas
    hard = {
        "requests.cpu": quotas.cpu,
        "limits.cpu": quotas.cpu,
        "requests.memory": quotas.memory,
        "limits.memory": quotas.memory,
        # Extended resources are quota'd by requests only (they cannot be overcommitted).
        # k8s docs: /docs/concepts/policy/resource-quotas/#resource-quota-for-extended-resources
        f"requests.{GPU_RESOURCE}": str(quotas.gpus),
        # Object count quota for a custom resource: `count/<resource>.<group>`.
        # k8s docs: /docs/concepts/policy/resource-quotas/#object-count-quota
        f"count/modeldeployments.{GROUP}": str(quotas.max_models),
    }
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {
            "name": TENANT_QUOTA,
            "namespace": tenant_namespace(spec.nation),
            "labels": tenant_labels(spec.nation),
        },
        "spec": {"hard": hard},
    }


def _smaller(first: str, second: str) -> str:
    return first if parse_quantity(first) <= parse_quantity(second) else second


def build_limit_range_for_tenant(spec: TenantSpec) -> dict[str, Any]:
    # The API server requires defaultRequest <= default <= max, so each default is capped by the quota: a
    # nation with a quota of 500m CPU gets a 500m default limit, not one its namespace could never admit.
    # k8s docs: /docs/concepts/policy/limit-range/#constraints-on-resource-limits-and-requests
    ceiling = {"cpu": spec.quotas.cpu, "memory": spec.quotas.memory}
    default = {name: _smaller(value, ceiling[name]) for name, value in DEFAULT_CONTAINER_LIMIT.items()}
    default_request = {
        name: _smaller(value, default[name]) for name, value in DEFAULT_CONTAINER_REQUEST.items()
    }
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {
            "name": TENANT_LIMIT_RANGE,
            "namespace": tenant_namespace(spec.nation),
            "labels": tenant_labels(spec.nation),
        },
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": default,
                    "defaultRequest": default_request,
                    # No single container may ask for more than the whole namespace's quota.
                    "max": ceiling,
                }
            ]
        },
    }
