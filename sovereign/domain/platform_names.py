"""The platform's own names, the same for every nation: where its pieces live and who the operator is to
Kubernetes and to Vault. Platform setup writes them, the operator logs in with them and the CLI reads the
cluster by them; each is written here only. Names derived from a nation are in `nations.py`."""

from __future__ import annotations

# Where the platform's own pieces live (the operator, the published policy bundle, the shred records).
PLATFORM_NAMESPACE = "sovereign-system"

# The operator's ServiceAccount, `namespace/name`: Vault's Kubernetes auth roles for the operator bind it.
OPERATOR_SERVICE_ACCOUNT = f"{PLATFORM_NAMESPACE}/sovereign-operator"

# The operator's Vault ACL policy (policies/vault/sovereign-operator.hcl): manage the nations' keys, never
# use them. Platform setup writes it; the operator's token carries it.
OPERATOR_VAULT_POLICY = "sovereign-operator"

# The Kubernetes auth role the operator logs in with at a nation's own Vault (a Tenant's spec.vault): the
# nation's Vault admin creates it with platform setup, bound to OPERATOR_SERVICE_ACCOUNT.
NATION_VAULT_OPERATOR_ROLE = "sovereign-operator"
