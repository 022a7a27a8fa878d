# Vault ACL policy sovereign-operator: what the operator's own token may do.
#
# The operator creates, rotates and shreds each nation's transit key, writes the nation's ACL policy and
# Kubernetes auth role, and keeps platform records under the KV prefix tenants/. It manages keys; it must
# never be able to USE them: every transit path that returns or consumes plaintext is denied below.
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
# gives the operator a token there under its own policy.

# --- Transit keys: lifecycle only -----------------------------------------------------------------

# Create (POST keys/:name), read (GET), delete (DELETE, after config deletion_allowed=true: the crypto-shred).
# The glob also covers keys/tenant-*/config (deletion_allowed, auto_rotate_period, min_decryption_version)
# and keys/tenant-*/rotate. Vault docs: /vault/api-docs/secret/transit
path "transit/keys/tenant-*" {
  capabilities = ["create", "read", "update", "delete", "list"]
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

# Export returns the key material itself (if a key was ever made exportable through keys/:name/config).
path "transit/export/*" {
  capabilities = ["deny"]
}

# Backup returns key material too, and restore/import would let the operator plant a key whose material
# it knows. Denied for the same reason; the wrapping key is what BYOK imports are encrypted to.
# (keys/tenant-*/import itself is under the grant above and cannot be denied by a `keys/+/import` rule,
# which would have lower priority; without the wrapping key no import can be built.)
path "transit/backup/*" {
  capabilities = ["deny"]
}

path "transit/restore*" {
  capabilities = ["deny"]
}

path "transit/wrapping_key" {
  capabilities = ["deny"]
}

# --- ACL policies: the nations' own, and nothing else ----------------------------------------------

# Only names starting tenant-: the operator cannot rewrite its own policy, `default`, or any other.
# (`root` cannot be written by anyone.) Vault docs: /vault/api-docs/system/policies
path "sys/policies/acl/tenant-*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# LIST sys/policies/acl: to find policies of nations that no longer exist.
path "sys/policies/acl" {
  capabilities = ["list"]
}

# --- Kubernetes auth roles: bind a nation's serving ServiceAccount to its policy --------------------

# Vault docs: /vault/api-docs/auth/kubernetes#create-role
path "auth/kubernetes/role/tenant-*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

path "auth/kubernetes/role" {
  capabilities = ["list"]
}

# --- KV v2: the nations' prefixes tenants/<nation>/ ------------------------------------------------

# The operator seeds a nation's prefix and empties it at offboarding. This does let it read what nations
# keep there: KV is for configuration, never for data that must stay out of the operator's reach.
# Vault docs: /vault/docs/secrets/kv/kv-v2#acl-rules (data/ and metadata/ are separate paths)
path "secret/data/tenants/*" {
  capabilities = ["create", "read", "update", "delete"]
}

# Metadata: list what is kept, and delete all versions when a nation leaves.
path "secret/metadata/tenants/*" {
  capabilities = ["read", "list", "delete"]
}

# --- Checks before work: are the mounts and the auth method there? ---------------------------------

# Read only: enabling or tuning mounts and auth methods (sys/mounts/:path, sys/auth/:path) is not granted.
path "sys/mounts" {
  capabilities = ["read"]
}

path "sys/auth" {
  capabilities = ["read"]
}
