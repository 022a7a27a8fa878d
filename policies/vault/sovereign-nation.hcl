# Vault ACL policy sovereign-nation: what a nation's own token may do. One policy for every nation.
#
# Written once by the Vault admin at platform setup (sovereign.platform_setup.prepare_vault, and
# prepare_nation_vault on a nation's own Vault), never by the operator: the operator's token cannot write
# any ACL policy, and its Kubernetes auth roles can name this policy only (sovereign-operator.hcl).
#
# Templated (Vault docs: /vault/docs/concepts/policies#templated-policies): the parameter
#   {{identity.entity.aliases.KUBERNETES_AUTH_ACCESSOR.metadata.service_account_namespace}}
# is the namespace of the ServiceAccount the token logged in as through Kubernetes auth (the method sets it
# on the entity alias; Vault docs: /vault/docs/auth/kubernetes). Platform setup replaces
# KUBERNETES_AUTH_ACCESSOR with the accessor of auth/kubernetes/ (read from sys/auth).
# A nation's namespace tenant-<nation> is also its transit key's name, its issuer and gateway keys' prefix
# (tenant-<nation>-issuer, tenant-<nation>-gateway), its Kubernetes auth role's name and its KV prefix
# (tenants/tenant-<nation>/), so every path below names the logged-in nation's own and nobody else's,
# whichever role it logged in with.
# A namespace name is a DNS label (no "/", "*" or "+"), so the value cannot reach another path. A token
# without such an alias (made by root, from another auth method) matches no path here: nothing is granted.
#
# Mount paths are the platform's (transit/, secret/); a nation's own Vault is prepared with the same.

# --- Transit: use the nation's own key ------------------------------------------------------------------

# Exact paths, no glob: no other key name (tenant-fra2, ...) can ever match. `update` only, not `create`:
# encrypt with `create` would upsert a missing key. Vault docs: /vault/api-docs/secret/transit#encrypt-data
path "transit/encrypt/{{identity.entity.aliases.KUBERNETES_AUTH_ACCESSOR.metadata.service_account_namespace}}" {
  capabilities = ["update"]
}

path "transit/decrypt/{{identity.entity.aliases.KUBERNETES_AUTH_ACCESSOR.metadata.service_account_namespace}}" {
  capabilities = ["update"]
}

path "transit/rewrap/{{identity.entity.aliases.KUBERNETES_AUTH_ACCESSOR.metadata.service_account_namespace}}" {
  capabilities = ["update"]
}

# The audit writer's data keys. Vault docs: /vault/api-docs/secret/transit#generate-data-key
path "transit/datakey/plaintext/{{identity.entity.aliases.KUBERNETES_AUTH_ACCESSOR.metadata.service_account_namespace}}" {
  capabilities = ["update"]
}

path "transit/datakey/wrapped/{{identity.entity.aliases.KUBERNETES_AUTH_ACCESSOR.metadata.service_account_namespace}}" {
  capabilities = ["update"]
}

# Its key's metadata (versions, creation times); never the key material (export and backup are not here).
path "transit/keys/{{identity.entity.aliases.KUBERNETES_AUTH_ACCESSOR.metadata.service_account_namespace}}" {
  capabilities = ["read"]
}

# --- Transit: the nation's dev issuer signs its users' tokens --------------------------------------------

# Sign with its own issuer key (ed25519, not exportable); never verify, export or configure it.
path "transit/sign/{{identity.entity.aliases.KUBERNETES_AUTH_ACCESSOR.metadata.service_account_namespace}}-issuer" {
  capabilities = ["update"]
}

# The issuer key's public parts, for the kid of the version it signs with.
path "transit/keys/{{identity.entity.aliases.KUBERNETES_AUTH_ACCESSOR.metadata.service_account_namespace}}-issuer" {
  capabilities = ["read"]
}

# --- Transit: the nation's gateway signs its federation assertions --------------------------------------

# Sign with its own gateway key (ed25519, not exportable): the assertions its gateway sends to other nations'
# federation routes, naming its user. Never verify, export or configure it.
path "transit/sign/{{identity.entity.aliases.KUBERNETES_AUTH_ACCESSOR.metadata.service_account_namespace}}-gateway" {
  capabilities = ["update"]
}

# The gateway key's public parts, for the kid of the version it signs with.
path "transit/keys/{{identity.entity.aliases.KUBERNETES_AUTH_ACCESSOR.metadata.service_account_namespace}}-gateway" {
  capabilities = ["read"]
}

# --- KV v2: the nation's own prefix tenants/tenant-<nation>/ ----------------------------------------------

# KV v2 splits data and metadata under the mount (Vault docs: /vault/docs/secrets/kv/kv-v2#acl-rules). The
# "/" before "*" keeps tenants/tenant-fra from reaching tenants/tenant-fra2/.
path "secret/data/tenants/{{identity.entity.aliases.KUBERNETES_AUTH_ACCESSOR.metadata.service_account_namespace}}/*" {
  capabilities = ["create", "read", "update", "patch", "delete"]
}

path "secret/metadata/tenants/{{identity.entity.aliases.KUBERNETES_AUTH_ACCESSOR.metadata.service_account_namespace}}/*" {
  capabilities = ["read", "list", "delete"]
}

# LIST on the prefix itself is also checked against the path without its trailing slash.
path "secret/metadata/tenants/{{identity.entity.aliases.KUBERNETES_AUTH_ACCESSOR.metadata.service_account_namespace}}" {
  capabilities = ["list"]
}

# The operator's provisioning record: read-only. An exact path outranks the prefix glob above
# (Vault docs: /vault/docs/concepts/policies#priority-matching).
path "secret/data/tenants/{{identity.entity.aliases.KUBERNETES_AUTH_ACCESSOR.metadata.service_account_namespace}}/tenant" {
  capabilities = ["read"]
}

path "secret/metadata/tenants/{{identity.entity.aliases.KUBERNETES_AUTH_ACCESSOR.metadata.service_account_namespace}}/tenant" {
  capabilities = ["read"]
}
