# Vault ACL policy sovereign-operator: what the operator's own token may do.
#
# The operator creates, rotates and shreds each nation's transit keys, writes the nation's Kubernetes auth
# role, and keeps one provisioning record per nation under the KV prefix tenants/. It manages keys; it must
# never be able to USE them: every transit path that returns or consumes plaintext is denied below.
# It writes no ACL policy: every nation's token carries the one templated policy sovereign-nation, written
# by the Vault admin at platform setup (sovereign-nation.hcl). What it may write is pinned with
# allowed_parameters (Vault docs: /vault/docs/concepts/policies#parameter-constraints): a request carrying
# any parameter not listed, or a value not listed, is refused with 403, so no role it writes can give
# another policy or bind another ServiceAccount, and no key it makes can be exportable or imported.
#
# Priority (Vault docs: /vault/docs/concepts/policies#priority-matching): one rule governs a request path,
# the exact match if any, else the highest-priority wildcard, where a first wildcard later in the pattern
# wins. The denies are written on the mount's operation prefixes (transit/decrypt/*, ...), and no grant here
# overlaps them: the grants are under transit/keys/, so no more specific operator rule can win over a
# deny — except transit/datakey/plaintext/tenant-*, which is meant to (see below). Attach no other policy
# to this token (besides `default`, which has no transit rules): a more specific
# rule in another policy, e.g. `transit/decrypt/tenant-fra`, WOULD win over `transit/decrypt/*`.
#
# Mount paths are the platform's (transit/, secret/, auth/kubernetes/); a nation that brings its own Vault
# gives the operator a token there under this same policy (sovereign.platform_setup.prepare_nation_vault).

# --- Transit keys: lifecycle only -----------------------------------------------------------------

# Create (POST keys/:name with `type` only), read (GET), rotate (POST keys/:name/rotate, no parameters),
# delete (DELETE, after keys/:name/config deletion_allowed: the crypto-shred). Vault docs:
# /vault/api-docs/secret/transit. The glob also covers keys/:name/config, /import, /import_version and /trim,
# so the parameters are pinned: `type` one of the two kinds the platform makes (a nation's data key, its
# issuer's signing key), `deletion_allowed` any value; any other parameter is refused. So no key can be
# created or configured `exportable` or `allow_plaintext_backup` (which would let its material leave
# Vault), no key material can be imported (`ciphertext`), no version trimmed (`min_available_version`),
# no `derived`/`convergent_encryption` and no `min_decryption_version` set.
path "transit/keys/tenant-*" {
  capabilities = ["create", "read", "update", "delete", "list"]
  allowed_parameters = {
    "type"             = ["aes256-gcm96", "ed25519"]
    "deletion_allowed" = []
  }
}

# LIST transit/keys is checked as "transit/keys/" and then without the slash; a glob on tenant-* cannot
# match it. Listing shows key names only.
path "transit/keys" {
  capabilities = ["list"]
}

# --- Transit: never use a key ----------------------------------------------------------------------

# Encrypt, decrypt, rewrap and datakey all take or return a nation's data or data keys; the operator has no
# business with either. Explicit denies (not just absence) so that widening the grants later cannot grant
# them by accident: deny wins over every other capability on the same rule.
# Vault docs: /vault/docs/concepts/policies#capabilities ("deny ... always takes precedence")
path "transit/encrypt/*" {
  capabilities = ["deny"]
}

path "transit/decrypt/*" {
  capabilities = ["deny"]
}

path "transit/rewrap/*" {
  capabilities = ["deny"]
}

# datakey/plaintext/:name returns a plaintext data key; datakey/wrapped/:name one the nation can unwrap.
path "transit/datakey/*" {
  capabilities = ["deny"]
}

# The one exception: the operator appends administrative records (key rotated, key shredded, ...) to each
# nation's audit log, sealed under fresh data keys from datakey/plaintext (Vault makes a random key and
# answers it with its wrapped form; Vault docs: /vault/api-docs/secret/transit#generate-data-key). That lets
# it encrypt for a nation, never decrypt: a fresh random key reveals nothing, and decrypt stays denied, so
# the wrapped keys of the nation's own records (and every other ciphertext) stay out of its reach.
# This rule outranks the deny above on purpose: its first glob comes later in the pattern
# (/vault/docs/concepts/policies#priority-matching); datakey/wrapped and other key names stay denied.
path "transit/datakey/plaintext/tenant-*" {
  capabilities = ["update"]
}

# Sign with a nation's dev issuer key (keys tenant-<nation>-issuer, ed25519, not exportable) would mint that
# nation's user tokens; only the nation's own role may sign. The operator creates the key and reads its
# public parts (keys/, above) to publish the key set; it never signs nor verifies.
path "transit/sign/*" {
  capabilities = ["deny"]
}

path "transit/verify/*" {
  capabilities = ["deny"]
}

# An HMAC with a nation's key is a keyed digest of the nation's data: it could confirm a guessed plaintext.
path "transit/hmac/*" {
  capabilities = ["deny"]
}

# Export returns the key material itself (if a key was ever made exportable through keys/:name/config).
path "transit/export/*" {
  capabilities = ["deny"]
}

# Backup returns key material too, and restore/import would let the operator plant a key whose material
# it knows. Denied for the same reason; the wrapping key is what BYOK imports are encrypted to.
# (keys/tenant-*/import itself is under the grant above, whose allowed_parameters refuse its `ciphertext`.)
path "transit/backup/*" {
  capabilities = ["deny"]
}

path "transit/restore*" {
  capabilities = ["deny"]
}

path "transit/wrapping_key" {
  capabilities = ["deny"]
}

# --- ACL policies: read the nations' one policy, write none ---------------------------------------------

# Read only, to tell "platform setup not done" (KeysReady=False, NationPolicyMissing) from a Vault error.
# No write, no delete, no list: the operator can neither widen nor remove what a nation's token may do.
# Vault docs: /vault/api-docs/system/policies#read-acl-policy
path "sys/policies/acl/sovereign-nation" {
  capabilities = ["read"]
}

# --- Kubernetes auth roles: bind a nation's serving ServiceAccount to sovereign-nation -------------------

# Vault docs: /vault/api-docs/auth/kubernetes#create-role. Every parameter is pinned: the role binds the
# ServiceAccount model-serving only, gives the policy sovereign-nation only, for an hour. Vault compares each
# request value with the listed ones, so values are sent as comma-separated strings (a JSON list never
# equals a string and is refused); `policies`, `ttl`, `token_max_ttl`, `token_period`, `token_bound_cidrs`,
# `audience`, `alias_name_source` and every other field are refused. The namespace can only be pinned to a
# prefix glob (Vault has no stricter match; a comma string "tenant-fra,other" passes it too): what keeps a
# token to its own nation's paths is the template of sovereign-nation, which follows the namespace the
# ServiceAccount logged in from, whichever role it used.
path "auth/kubernetes/role/tenant-*" {
  capabilities = ["create", "read", "update", "delete", "list"]
  allowed_parameters = {
    "bound_service_account_names"      = ["model-serving"]
    "bound_service_account_namespaces" = ["tenant-*"]
    "token_policies"                   = ["sovereign-nation"]
    "token_ttl"                        = ["1h"]
  }
}

path "auth/kubernetes/role" {
  capabilities = ["list"]
}

# --- KV v2: one provisioning record per nation, and clearing a nation's prefix -------------------------

# The marker tenants/<ns>/tenant: write it when absent (check-and-set 0) and read it; no other record of any
# nation can be read or written. Vault docs: /vault/docs/secrets/kv/kv-v2#acl-rules ("+": one segment).
path "secret/data/tenants/+/tenant" {
  capabilities = ["create", "read"]
}

# Metadata: list what is kept under tenants/ and delete every version of it when a nation leaves (and the
# tree an older release kept under tenants/<nation>/). Listing shows names only, never a value.
path "secret/metadata/tenants/*" {
  capabilities = ["list", "delete"]
}

# --- Checks before work: are the mounts and the auth method there? ---------------------------------

# Read only: enabling or tuning mounts and auth methods (sys/mounts/:path, sys/auth/:path) is not granted.
path "sys/mounts" {
  capabilities = ["read"]
}

path "sys/auth" {
  capabilities = ["read"]
}
