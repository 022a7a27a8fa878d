"""The operator's constants: its API group, labels, mounts and its own names. Every name derived from a
nation (namespace, keys, role, KV prefix, ...) is made in sovereign.domain.nations."""

from __future__ import annotations

from sovereign.domain.nations import kv_prefix

GROUP = "sovereign.ai"
VERSION = "v1alpha1"

# Labels and annotations (k8s docs: /docs/concepts/overview/working-with-objects/common-labels/).
NATION_LABEL = "sovereign.ai/nation"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "sovereign-operator"
ROTATE_KEY_ANNOTATION = "sovereign.ai/rotate-key-requested-at"  # `sovereign keys rotate` sets it
# The sha256 of the spec the operator last wrote: the API server adds defaults to what it stores, so the
# live spec never equals the desired one and cannot say alone whether the desired one changed.
APPLIED_SPEC_ANNOTATION = "sovereign.ai/applied-spec-sha256"

# The finalizer that holds a Tenant until its offboarding (crypto-shredding included) is complete.
OFFBOARDING_FINALIZER = "sovereign.ai/offboarding"

# In the platform's namespace (sovereign.domain.platform_names), the record of shredded nations.
SHRED_RECORDS_CONFIGMAP = "shred-records"

# Vault mounts used when the Tenant brings no Vault of its own.
DEFAULT_TRANSIT_MOUNT = "transit"
DEFAULT_KV_MOUNT = "secret"
DEFAULT_KUBERNETES_AUTH_MOUNT = "kubernetes"

# A nation's own Vault (Tenant spec.vault): the operator logs in there with Kubernetes auth, under the role
# and as the ServiceAccount of sovereign.domain.platform_names. In a pod this projected token file is used;
# elsewhere a token from the TokenRequest API.
SERVICE_ACCOUNT_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"

NAMESPACE_ADMIN_ROLE = "sovereign-namespace-admin"


# Records under a nation's KV prefix the nation may read but never write (sovereign-nation.hcl): its
# provisioning record.
OPERATOR_KV_RECORDS = ("tenant",)


# What the builders name inside a nation's namespace (one object of each kind per nation).
TENANT_QUOTA = "tenant-quota"
TENANT_LIMIT_RANGE = "tenant-limits"
TENANT_NETWORK_POLICY = "tenant-isolation"
TENANT_ADMINS_ROLE_BINDING = "tenant-admins"

# Set by the API server on every Namespace; NetworkPolicies select namespaces by it.
# k8s docs: /docs/reference/labels-annotations-taints/#kubernetes-io-metadata-name
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
GPU_RESOURCE = "nvidia.com/gpu"
VAULT_ROLE_TOKEN_TTL = "1h"


def operator_labels() -> dict[str, str]:
    """Labels on what the operator makes for no nation in particular (the shared ClusterRole)."""
    return {MANAGED_BY_LABEL: MANAGED_BY}


def tenant_labels(nation: str) -> dict[str, str]:
    """Labels on everything the operator makes for a nation; handlers select its children by them."""
    return {NATION_LABEL: nation, **operator_labels()}


def operator_kv_record(nation: str, record: str) -> str:
    """Path (below the KV mount) of one of the operator's records for the nation; see OPERATOR_KV_RECORDS."""
    if record not in OPERATOR_KV_RECORDS:
        raise ValueError(f"{record!r} is not one of the operator's KV records {OPERATOR_KV_RECORDS}")
    return f"{kv_prefix(nation)}/{record}"
