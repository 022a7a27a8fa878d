"""The operator's own Vault policy (policies/vault/sovereign-operator.hcl), against the devstack's Vault.

It may manage the nations' keys, policies, roles and KV prefixes, and must never use a key: a token with
only this policy (and `default`) gets 403 on every transit path that takes or returns plaintext.
Vault docs: /vault/docs/concepts/policies
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hvac
import hvac.exceptions
import pytest
from sovereign_operator.constants import OPERATOR_VAULT_POLICY

from sovereign.clients.vault import ensure_auth_method, ensure_secrets_engine
from sovereign.platform_setup import (
    OPERATOR_POLICY_NAME,
    OPERATOR_POLICY_PATH,
    create_operator_token,
    install_operator_vault_policy,
)

PLAINTEXT = base64.b64encode(b"NATO SECRET // REL TO FRA").decode()
ANY = 'path "secret/data/tenants/zzz/*" {\n  capabilities = ["read"]\n}\n'


@pytest.fixture(scope="module")
def root(vault_server) -> hvac.Client:
    client = vault_server.client()
    # Idempotent, so tests sharing the session's Vault may have done it already.
    ensure_secrets_engine(client, "transit", "transit")
    ensure_secrets_engine(client, "secret", "kv", options={"version": "2"})
    ensure_auth_method(client, "kubernetes", "kubernetes")
    install_operator_vault_policy(client)
    return client


@pytest.fixture(scope="module")
def operator(vault_server, root: hvac.Client) -> hvac.Client:
    return vault_server.client(create_operator_token(root))


@pytest.fixture
def suffix() -> str:
    """Unique per test, so tests sharing the session's Vault never touch each other's keys."""
    return f"zzz-{uuid.uuid4().hex[:8]}"


def test_policy_name_matches_the_operator_constant() -> None:
    assert OPERATOR_POLICY_NAME == OPERATOR_VAULT_POLICY
    assert OPERATOR_POLICY_PATH.is_file()


def test_operator_token_carries_only_its_policy(operator: hvac.Client) -> None:
    assert sorted(operator.auth.token.lookup_self()["data"]["policies"]) == ["default", "sovereign-operator"]


def test_operator_runs_a_key_from_creation_to_shredding(root: hvac.Client, operator: hvac.Client, suffix):
    transit = operator.secrets.transit
    key = f"tenant-{suffix}"
    transit.create_key(key)
    assert transit.read_key(key)["data"]["latest_version"] == 1
    assert key in transit.list_keys()["data"]["keys"]
    transit.rotate_key(key)
    assert transit.read_key(key)["data"]["latest_version"] == 2
    transit.update_key_configuration(key, deletion_allowed=True)
    transit.delete_key(key)
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.transit.read_key(key)


def test_operator_writes_and_deletes_a_tenant_policy(root: hvac.Client, operator: hvac.Client, suffix):
    name = f"tenant-{suffix}"
    operator.sys.create_or_update_acl_policy(name=name, policy=ANY)
    assert operator.sys.read_acl_policy(name)["data"]["policy"] == ANY
    assert name in operator.sys.list_acl_policies()["data"]["keys"]
    operator.sys.delete_acl_policy(name)
    assert name not in root.sys.list_acl_policies()["data"]["keys"]


def test_operator_writes_and_deletes_a_tenant_role(operator: hvac.Client, suffix) -> None:
    kubernetes = operator.auth.kubernetes
    name = f"tenant-{suffix}"
    kubernetes.create_role(
        name=name,
        bound_service_account_names=["model-serving"],
        bound_service_account_namespaces=[name],
        policies=[name],
        ttl="1h",
    )
    assert kubernetes.read_role(name)["token_policies"] == [name]
    assert name in kubernetes.list_roles()["keys"]
    kubernetes.delete_role(name)
    with pytest.raises(hvac.exceptions.InvalidPath):
        kubernetes.read_role(name)


def test_operator_writes_reads_and_deletes_tenant_records(operator: hvac.Client, suffix) -> None:
    kv = operator.secrets.kv.v2
    path = f"tenants/{suffix}/x"
    kv.create_or_update_secret(path=path, secret={"onboarded": "yes"}, mount_point="secret")
    read = kv.read_secret_version(path=path, mount_point="secret", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"onboarded": "yes"}
    assert suffix + "/" in kv.list_secrets(path="tenants", mount_point="secret")["data"]["keys"]
    kv.delete_latest_version_of_secret(path=path, mount_point="secret")
    kv.delete_metadata_and_all_versions(path=path, mount_point="secret")
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_version(path=path, mount_point="secret", raise_on_deleted_version=True)


def test_operator_reads_mounts_and_auth_methods(operator: hvac.Client) -> None:
    assert "transit/" in operator.sys.list_mounted_secrets_engines()["data"]
    assert "kubernetes/" in operator.sys.list_auth_methods()["data"]


# --- What the operator must never do ------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    id: str
    attempt: Callable[[hvac.Client, str, str], Any]  # (operator, key, a ciphertext under key) -> anything


def transit(client: hvac.Client) -> Any:
    return client.secrets.transit


REFUSALS = [
    Refusal("decrypt", lambda op, key, ct: transit(op).decrypt_data(key, ciphertext=ct)),
    Refusal("encrypt", lambda op, key, ct: transit(op).encrypt_data(key, plaintext=PLAINTEXT)),
    # datakey/plaintext is granted on tenant-* keys (the operator seals its audit records), no other key.
    Refusal(
        "datakey-plaintext-not-tenant",
        lambda op, key, ct: transit(op).generate_data_key(key.replace("tenant-", "x-"), "plaintext"),
    ),
    Refusal("datakey-wrapped", lambda op, key, ct: transit(op).generate_data_key(key, "wrapped")),
    Refusal("rewrap", lambda op, key, ct: transit(op).rewrap_data(key, ciphertext=ct)),
    Refusal("sign", lambda op, key, ct: transit(op).sign_data(key, hash_input=PLAINTEXT)),
    Refusal(
        "verify",
        lambda op, key, ct: transit(op).verify_signed_data(key, PLAINTEXT, signature="vault:v1:AA=="),
    ),
    Refusal("export", lambda op, key, ct: transit(op).export_key(key, key_type="encryption-key")),
    Refusal("backup", lambda op, key, ct: transit(op).backup_key(key)),
    Refusal("key-not-named-tenant", lambda op, key, ct: transit(op).create_key(key.replace("tenant-", "x-"))),
    *(
        Refusal(f"policy-{name}", lambda op, key, ct, n=name: op.sys.create_or_update_acl_policy(n, ANY))
        for name in ("sovereign-operator", "default", "root", "rootish", "xtenant-zzz")
    ),
    Refusal("delete-own-policy", lambda op, key, ct: op.sys.delete_acl_policy("sovereign-operator")),
    Refusal("enable-auth-method", lambda op, key, ct: op.sys.enable_auth_method("userpass", path=key)),
    Refusal("enable-secrets-engine", lambda op, key, ct: op.sys.enable_secrets_engine("transit", path=key)),
    Refusal(
        "configure-kubernetes-auth", lambda op, key, ct: op.auth.kubernetes.configure("https://evil:6443")
    ),
    Refusal("role-not-named-tenant", lambda op, key, ct: op.auth.kubernetes.create_role("x", ["a"], ["b"])),
    Refusal("token-with-root-policy", lambda op, key, ct: op.auth.token.create(policies=["root"])),
    Refusal("token-with-tenant-policy", lambda op, key, ct: op.auth.token.create(policies=[key])),
    Refusal(
        "kv-outside-tenants",
        lambda op, key, ct: op.secrets.kv.v2.create_or_update_secret("platform/x", {"a": "b"}),
    ),
]


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda refusal: refusal.id)
def test_operator_is_forbidden(root: hvac.Client, operator: hvac.Client, suffix, refusal: Refusal) -> None:
    key = f"tenant-{suffix}"
    root.secrets.transit.create_key(key, exportable=True, allow_plaintext_backup=True)
    ciphertext = root.secrets.transit.encrypt_data(key, plaintext=PLAINTEXT)["data"]["ciphertext"]
    try:
        with pytest.raises(hvac.exceptions.Forbidden):
            refusal.attempt(operator, key, ciphertext)
    finally:
        root.secrets.transit.update_key_configuration(key, deletion_allowed=True)
        root.secrets.transit.delete_key(key)


def test_operator_makes_an_issuer_key_it_can_never_sign_with(
    root: hvac.Client, operator: hvac.Client, suffix
):
    """A nation's dev issuer key: the operator creates it (ed25519, not exportable) and reads its public
    key for the key set; signing, verifying and exporting are refused."""
    key = f"tenant-{suffix}-issuer"
    operator.secrets.transit.create_key(key, key_type="ed25519", exportable=False)
    try:
        read = operator.secrets.transit.read_key(key)["data"]
        assert read["type"] == "ed25519" and read["exportable"] is False
        assert len(base64.b64decode(read["keys"]["1"]["public_key"])) == 32
        attempts = {
            "sign": lambda: operator.secrets.transit.sign_data(key, hash_input=PLAINTEXT),
            "verify": lambda: operator.secrets.transit.verify_signed_data(
                key, PLAINTEXT, signature="vault:v1:" + base64.b64encode(bytes(64)).decode()
            ),
            "export": lambda: operator.secrets.transit.export_key(key, key_type="signing-key"),
        }
        for name, attempt in attempts.items():
            with pytest.raises(hvac.exceptions.Forbidden):
                attempt()
                raise AssertionError(f"{name} was allowed")
        # Root may sign: the key works, the refusals above are the policy's.
        assert root.secrets.transit.sign_data(key, hash_input=PLAINTEXT)["data"]["signature"].startswith(
            "vault:v1:"
        )
    finally:
        root.secrets.transit.update_key_configuration(key, deletion_allowed=True)
        root.secrets.transit.delete_key(key)


# --- Why the operator's token carries no other policy ---------------------------------------------------


def test_deny_outranks_a_broader_grant_but_not_a_more_specific_one(vault_server, root: hvac.Client, suffix):
    """Vault applies the one highest-priority rule across all of a token's policies.

    Vault docs: /vault/docs/concepts/policies#priority-matching: `transit/decrypt/*` beats `transit/*` (its
    first wildcard comes later), and an exact `transit/decrypt/<key>` beats both.
    """
    key = f"tenant-{suffix}"
    root.secrets.transit.create_key(key)
    ciphertext = root.secrets.transit.encrypt_data(key, plaintext=PLAINTEXT)["data"]["ciphertext"]
    grants = {"broad": "transit/*", "specific": f"transit/decrypt/{key}"}
    for name, path in grants.items():
        rule = f'path "{path}" {{\n  capabilities = ["update"]\n}}\n'
        root.sys.create_or_update_acl_policy(f"{key}-{name}", rule)
    try:

        def token_with(extra: str) -> hvac.Client:
            created = root.auth.token.create(policies=[OPERATOR_POLICY_NAME, f"{key}-{extra}"], ttl="5m")
            return vault_server.client(created["auth"]["client_token"])

        with pytest.raises(hvac.exceptions.Forbidden):
            token_with("broad").secrets.transit.decrypt_data(key, ciphertext=ciphertext)
        decrypted = token_with("specific").secrets.transit.decrypt_data(key, ciphertext=ciphertext)
        assert decrypted["data"]["plaintext"] == PLAINTEXT
    finally:
        for name in grants:
            root.sys.delete_acl_policy(f"{key}-{name}")
        root.secrets.transit.update_key_configuration(key, deletion_allowed=True)
        root.secrets.transit.delete_key(key)
