"""A Vault-API-compatible dev server (like `vault server -dev`): in memory, real crypto, real ACL rules.

Run it with `python -m sovereign_devstack.vault --host H --port P --root-token T`. Modules:
server (HTTP), core (token check, create/update, ACL, routing), acl and policies (HCL rules), tokens and
token_api (auth/token/), sys_api (sys/), mounts, transit, kv (KV v2), auth_kubernetes and token_review.
"""
