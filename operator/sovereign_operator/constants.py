"""Names the operator gives to what it makes for a nation: one place, so builders, handlers and tests agree."""

from __future__ import annotations

GROUP = "sovereign.ai"
VERSION = "v1alpha1"

# Labels and annotations (k8s docs: /docs/concepts/overview/working-with-objects/common-labels/).
NATION_LABEL = "sovereign.ai/nation"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "sovereign-operator"
ROTATE_KEY_ANNOTATION = "sovereign.ai/rotate-key-requested-at"  # `sovereign keys rotate` sets it

# The finalizer that holds a Tenant until its offboarding (crypto-shredding included) is complete.
OFFBOARDING_FINALIZER = "sovereign.ai/offboarding"

# Where the platform's own pieces live (the gateway, the shred records).
PLATFORM_NAMESPACE = "sovereign-system"
SHRED_RECORDS_CONFIGMAP = "shred-records"

# Vault mounts used when the Tenant brings no Vault of its own.
DEFAULT_TRANSIT_MOUNT = "transit"
DEFAULT_KV_MOUNT = "secret"
DEFAULT_KUBERNETES_AUTH_MOUNT = "kubernetes"
OPERATOR_VAULT_POLICY = "sovereign-operator"

SERVING_SERVICE_ACCOUNT = "model-serving"
NAMESPACE_ADMIN_ROLE = "sovereign-namespace-admin"


def tenant_namespace(nation: str) -> str:
    return f"tenant-{nation.lower()}"


def transit_key_name(nation: str) -> str:
    return f"tenant-{nation.lower()}"


def vault_policy_name(nation: str) -> str:
    return f"tenant-{nation.lower()}"


def vault_role_name(nation: str) -> str:
    return f"tenant-{nation.lower()}"


def kv_prefix(nation: str) -> str:
    """The nation's KV v2 path prefix (below the mount): `tenants/<nation>/`."""
    return f"tenants/{nation.lower()}"
