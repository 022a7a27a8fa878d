"""The operator's own Vault policy (policies/vault/sovereign-operator.hcl) and the nations' one policy
(sovereign-nation.hcl), against the devstack's Vault (real OpenBao).

The operator may manage the nations' keys, roles and provisioning records, and must never use a key nor
widen what a nation's token may do: a token with only its policy (and `default`) gets 403 on every transit
path that takes or returns plaintext, on every ACL policy write, and on every role or key parameter its
policy does not pin (allowed_parameters). A nation's token, logged in through Kubernetes auth, reaches its
own key, issuer key and KV prefix only, whichever role it used.
Vault docs: /vault/docs/concepts/policies
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import hvac
import hvac.exceptions
import pytest
from sovereign_operator.builders import build_vault_role_for_tenant
from sovereign_operator.reconcile.tenant_keys import KEY_TYPE

from sovereign.clients import vault as vault_client
from sovereign.domain.nations import NATION_VAULT_POLICY
from sovereign.domain.platform_names import OPERATOR_VAULT_POLICY
from sovereign.platform_setup import (
    OPERATOR_POLICY_PATH,
    OPERATOR_WRITTEN_MARK,
    create_operator_token,
    install_operator_vault_policy,
    remove_operator_written_policies,
)
from sovereign.specs.tenant import TenantSpec
from tests.helpers import kubectl
from tests.operator.harness import Platform

PLAINTEXT = base64.b64encode(b"NATO SECRET // REL TO FRA").decode()
ANY = 'path "secret/data/tenants/zzz/*" {\n  capabilities = ["read"]\n}\n'
# The role body the operator writes (build_vault_role_for_tenant), for a namespace of the test's own.
ROLE = {
    "bound_service_account_names": "model-serving",
    "bound_service_account_namespaces": "tenant-zzz",
    "token_policies": "sovereign-nation",
    "token_ttl": "1h",
}


@pytest.fixture(scope="module")
def root(platform: Platform) -> hvac.Client:
    """The platform's Vault as its admin prepared it (transit, KV, Kubernetes auth, sovereign-nation)."""
    client = platform.root_vault()
    install_operator_vault_policy(client)  # idempotent
    return client


@pytest.fixture(scope="module")
def operator(platform: Platform, root: hvac.Client) -> hvac.Client:
    return platform.vault(create_operator_token(root))


@pytest.fixture
def suffix() -> str:
    """Unique per test, so tests sharing the session's Vault never touch each other's keys."""
    return f"zzz-{uuid.uuid4().hex[:8]}"


def post(client: hvac.Client, path: str, body: Any) -> Any:
    """A request sent exactly as given (hvac's helpers add or reshape parameters)."""
    return client.adapter.post(f"/v1/{path}", json=body)


def test_the_operators_policy_file_ships_with_the_platform() -> None:
    assert OPERATOR_POLICY_PATH.is_file()


def test_operator_token_carries_only_its_policy(operator: hvac.Client) -> None:
    assert sorted(operator.auth.token.lookup_self()["data"]["policies"]) == ["default", "sovereign-operator"]


def test_operator_runs_a_key_from_creation_to_shredding(root: hvac.Client, operator: hvac.Client, suffix):
    """Every call the operator makes on a nation's key, as sovereign.clients.vault sends it."""
    key = f"tenant-{suffix}"
    vault_client.create_transit_key(operator, "transit", key, KEY_TYPE)
    assert vault_client.read_transit_key(operator, "transit", key)["latest_version"] == 1
    assert key in operator.secrets.transit.list_keys()["data"]["keys"]
    vault_client.rotate_transit_key(operator, "transit", key)
    assert vault_client.read_transit_key(operator, "transit", key)["latest_version"] == 2
    # Its administrative audit records are sealed under fresh data keys (never decrypted).
    assert operator.secrets.transit.generate_data_key(key, "plaintext")["data"]["ciphertext"]
    vault_client.set_transit_key_deletion_allowed(operator, "transit", key, False)
    vault_client.set_transit_key_deletion_allowed(operator, "transit", key, True)
    assert vault_client.delete_transit_key(operator, "transit", key)
    assert vault_client.read_transit_key(root, "transit", key) is None


def test_operator_reads_the_nation_policy_and_writes_none(operator: hvac.Client, suffix) -> None:
    assert vault_client.read_acl_policy(operator, NATION_VAULT_POLICY) is not None
    refused = [
        lambda: operator.sys.create_or_update_acl_policy(name=f"tenant-{suffix}", policy=ANY),
        lambda: operator.sys.create_or_update_acl_policy(name=NATION_VAULT_POLICY, policy=ANY),
        lambda: operator.sys.delete_acl_policy(NATION_VAULT_POLICY),
        lambda: operator.sys.list_acl_policies(),
        lambda: operator.sys.read_acl_policy(OPERATOR_VAULT_POLICY),
    ]
    for attempt in refused:
        with pytest.raises(hvac.exceptions.Forbidden):
            attempt()


def test_operator_writes_and_deletes_a_tenant_role(operator: hvac.Client, suffix) -> None:
    spec = TenantSpec.model_validate({"nation": "FRA", "displayName": "France", "clearance": "NATO SECRET"})
    role = build_vault_role_for_tenant(spec)
    name = f"tenant-{suffix}"
    vault_client.write_kubernetes_role(operator, "kubernetes", name, role.body)
    read = vault_client.read_kubernetes_role(operator, "kubernetes", name)
    assert read["token_policies"] == ["sovereign-nation"] and read["bound_service_account_names"] == [
        "model-serving"
    ]
    assert name in operator.auth.kubernetes.list_roles()["keys"]
    assert vault_client.delete_kubernetes_role(operator, "kubernetes", name)
    assert vault_client.read_kubernetes_role(operator, "kubernetes", name) is None


def test_operator_keeps_only_the_provisioning_marker(root: hvac.Client, operator: hvac.Client, suffix):
    kv = operator.secrets.kv.v2
    prefix = f"tenants/tenant-{suffix}"
    vault_client.write_kv(operator, "secret", f"{prefix}/tenant", {"managedBy": "x"}, only_if_absent=True)
    assert vault_client.read_kv(operator, "secret", f"{prefix}/tenant") == {"managedBy": "x"}
    root.secrets.kv.v2.create_or_update_secret(f"{prefix}/app", secret={"k": "v"})
    for attempt in (
        lambda: kv.read_secret_version(f"{prefix}/app", raise_on_deleted_version=True),
        lambda: kv.read_secret_metadata(f"{prefix}/app"),
        lambda: kv.create_or_update_secret(f"{prefix}/app", secret={"k": "w"}),
        lambda: kv.create_or_update_secret(f"{prefix}/tenant", secret={"managedBy": "y"}),  # only cas=0
    ):
        with pytest.raises(hvac.exceptions.Forbidden):
            attempt()
    # Offboarding: list names and delete every version, without reading a value.
    assert sorted(vault_client.delete_kv_tree(operator, "secret", prefix)) == [
        f"{prefix}/app",
        f"{prefix}/tenant",
    ]
    assert vault_client.list_kv_paths(root, "secret", prefix) == []


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


def role(op: hvac.Client, key: str, body: Any) -> Any:
    return post(op, f"auth/kubernetes/role/{key}", body)


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
    Refusal("hmac", lambda op, key, ct: transit(op).generate_hmac(key, hash_input=PLAINTEXT)),
    Refusal("sign", lambda op, key, ct: transit(op).sign_data(key, hash_input=PLAINTEXT)),
    Refusal(
        "verify",
        lambda op, key, ct: transit(op).verify_signed_data(key, PLAINTEXT, signature="vault:v1:AA=="),
    ),
    Refusal("export", lambda op, key, ct: transit(op).export_key(key, key_type="encryption-key")),
    Refusal("backup", lambda op, key, ct: transit(op).backup_key(key)),
    Refusal("key-not-named-tenant", lambda op, key, ct: transit(op).create_key(key.replace("tenant-", "x-"))),
    # transit/keys/tenant-* pins `type` and `deletion_allowed`: nothing can make a key's material leave.
    Refusal("key-exportable", lambda op, key, ct: post(op, f"transit/keys/{key}-2", {"exportable": True})),
    Refusal(
        "key-plaintext-backup",
        lambda op, key, ct: post(
            op, f"transit/keys/{key}-2", {"type": "ed25519", "allow_plaintext_backup": True}
        ),
    ),
    Refusal("key-other-type", lambda op, key, ct: post(op, f"transit/keys/{key}-2", {"type": "rsa-4096"})),
    Refusal("key-derived", lambda op, key, ct: post(op, f"transit/keys/{key}-2", {"derived": True})),
    Refusal(
        "config-exportable", lambda op, key, ct: post(op, f"transit/keys/{key}/config", {"exportable": True})
    ),
    Refusal(
        "config-plaintext-backup",
        lambda op, key, ct: post(op, f"transit/keys/{key}/config", {"allow_plaintext_backup": True}),
    ),
    Refusal(
        "config-min-decryption-version",
        lambda op, key, ct: post(op, f"transit/keys/{key}/config", {"min_decryption_version": 2}),
    ),
    Refusal(
        "import",
        lambda op, key, ct: post(
            op, f"transit/keys/{key}-2/import", {"ciphertext": "AA==", "type": "aes256-gcm96"}
        ),
    ),
    Refusal("trim", lambda op, key, ct: post(op, f"transit/keys/{key}/trim", {"min_available_version": 1})),
    Refusal("restore", lambda op, key, ct: transit(op).restore_key("AA==", name=f"{key}-2")),
    # auth/kubernetes/role/tenant-* pins every parameter (model-serving, tenant-*, sovereign-nation, 1h).
    Refusal(
        "role-foreign-policy",
        lambda op, key, ct: role(op, key, {**ROLE, "token_policies": "sovereign-operator"}),
    ),
    Refusal(
        "role-extra-policy",
        lambda op, key, ct: role(op, key, {**ROLE, "token_policies": "sovereign-nation,default"}),
    ),
    Refusal("role-legacy-policies-field", lambda op, key, ct: role(op, key, {**ROLE, "policies": "root"})),
    Refusal(
        "role-foreign-service-account",
        lambda op, key, ct: role(op, key, {**ROLE, "bound_service_account_names": "attacker"}),
    ),
    Refusal(
        "role-any-service-account",
        lambda op, key, ct: role(op, key, {**ROLE, "bound_service_account_names": "*"}),
    ),
    Refusal(
        "role-foreign-namespace",
        lambda op, key, ct: role(op, key, {**ROLE, "bound_service_account_namespaces": "kube-system"}),
    ),
    Refusal("role-extra-parameter", lambda op, key, ct: role(op, key, {**ROLE, "token_max_ttl": "8760h"})),
    Refusal("role-other-ttl", lambda op, key, ct: role(op, key, {**ROLE, "token_ttl": "8760h"})),
    Refusal("role-audience", lambda op, key, ct: role(op, key, {**ROLE, "audience": "attacker"})),
    Refusal(
        "role-json-list-body",
        lambda op, key, ct: role(op, key, {**ROLE, "token_policies": ["sovereign-nation"]}),
    ),
    Refusal(
        "role-hvac-create-role",
        lambda op, key, ct: op.auth.kubernetes.create_role(
            key, ["model-serving"], [key], ttl="1h", policies=[NATION_VAULT_POLICY]
        ),
    ),
    Refusal("role-not-named-tenant", lambda op, key, ct: role(op, key.replace("tenant-", "x-"), ROLE)),
    *(
        Refusal(f"policy-{name}", lambda op, key, ct, n=name: op.sys.create_or_update_acl_policy(n, ANY))
        for name in ("sovereign-operator", "sovereign-nation", "default", "root", "tenant-zzz")
    ),
    Refusal("delete-own-policy", lambda op, key, ct: op.sys.delete_acl_policy("sovereign-operator")),
    Refusal("enable-auth-method", lambda op, key, ct: op.sys.enable_auth_method("userpass", path=key)),
    Refusal("enable-secrets-engine", lambda op, key, ct: op.sys.enable_secrets_engine("transit", path=key)),
    Refusal(
        "configure-kubernetes-auth", lambda op, key, ct: op.auth.kubernetes.configure("https://evil:6443")
    ),
    Refusal("token-with-root-policy", lambda op, key, ct: op.auth.token.create(policies=["root"])),
    Refusal(
        "token-with-nation-policy", lambda op, key, ct: op.auth.token.create(policies=[NATION_VAULT_POLICY])
    ),
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
    vault_client.create_signing_key(operator, "transit", key)
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
            created = root.auth.token.create(policies=[OPERATOR_VAULT_POLICY, f"{key}-{extra}"], ttl="5m")
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


# --- A nation's token: its own key, issuer key and records, nobody else's -----------------------------------


@dataclass(frozen=True)
class NationInVault:
    namespace: str  # == its transit key, its role, its KV prefix's last segment
    jwt: str  # its model-serving ServiceAccount's token (TokenRequest, as the admin)


def login(platform: Platform, role_name: str, jwt: str) -> hvac.Client:
    client, _ = vault_client.kubernetes_login(
        platform.vault_url, "kubernetes", role_name, jwt, verify=str(platform.vault_cacert)
    )
    return client


@pytest.fixture(scope="module")
def two_nations(
    platform: Platform, root: hvac.Client, operator: hvac.Client
) -> Iterator[list[NationInVault]]:
    """Two namespaces of the test's own (not the operator tests' nations), provisioned in Vault by the
    operator's token exactly as the operator does it: keys, pinned role, marker."""
    namespaces = [f"tenant-v{uuid.uuid4().hex[:6]}" for _ in range(2)]
    made = []
    try:
        for namespace in namespaces:
            kubectl(platform.kube, "create", "namespace", namespace)
            kubectl(platform.kube, "create", "serviceaccount", "model-serving", "-n", namespace)
            vault_client.create_transit_key(operator, "transit", namespace, KEY_TYPE)
            vault_client.create_signing_key(operator, "transit", f"{namespace}-issuer")
            vault_client.write_kubernetes_role(
                operator, "kubernetes", namespace, {**ROLE, "bound_service_account_namespaces": namespace}
            )
            vault_client.write_kv(operator, "secret", f"tenants/{namespace}/tenant", {"n": namespace}, True)
            root.secrets.kv.v2.create_or_update_secret(f"tenants/{namespace}/notes", secret={"n": namespace})
            jwt = kubectl(platform.kube, "create", "token", "model-serving", "-n", namespace).stdout.strip()
            made.append(NationInVault(namespace, jwt))
        yield made
    finally:
        for namespace in namespaces:
            kubectl(platform.kube, "delete", "namespace", namespace, "--wait=false", check=False)
            for key in (namespace, f"{namespace}-issuer"):
                if vault_client.read_transit_key(root, "transit", key) is not None:
                    vault_client.set_transit_key_deletion_allowed(root, "transit", key, True)
                    vault_client.delete_transit_key(root, "transit", key)
            vault_client.delete_kubernetes_role(root, "kubernetes", namespace)
            vault_client.delete_kv_tree(root, "secret", f"tenants/{namespace}")


def uses_of(nation: hvac.Client, namespace: str) -> dict[str, Callable[[], Any]]:
    """Every use of `namespace`'s key, issuer key and records, made with the token `nation`."""
    transit, kv = nation.secrets.transit, nation.secrets.kv.v2
    return {
        "encrypt": lambda: transit.encrypt_data(namespace, plaintext=PLAINTEXT),
        "datakey-wrapped": lambda: transit.generate_data_key(namespace, "wrapped"),
        "datakey-plaintext": lambda: transit.generate_data_key(namespace, "plaintext"),
        "read-key": lambda: transit.read_key(namespace),
        "read-issuer-key": lambda: transit.read_key(f"{namespace}-issuer"),
        "sign-as-issuer": lambda: vault_client.sign_with_transit_key(
            nation, "transit", f"{namespace}-issuer", b"claims", 1
        ),
        "read-record": lambda: kv.read_secret_version(
            f"tenants/{namespace}/notes", raise_on_deleted_version=True
        ),
        "write-record": lambda: kv.create_or_update_secret(f"tenants/{namespace}/more", secret={"a": "b"}),
        "read-marker": lambda: kv.read_secret_version(
            f"tenants/{namespace}/tenant", raise_on_deleted_version=True
        ),
        "list-records": lambda: kv.list_secrets(f"tenants/{namespace}"),
    }


def test_a_nation_token_reaches_its_own_paths(platform: Platform, two_nations: list[NationInVault]) -> None:
    fra = two_nations[0]
    vault = login(platform, fra.namespace, fra.jwt)
    assert vault.auth.token.lookup_self()["data"]["policies"] == ["default", "sovereign-nation"]
    for use in uses_of(vault, fra.namespace).values():
        use()
    ciphertext = vault.secrets.transit.encrypt_data(fra.namespace, plaintext=PLAINTEXT)["data"]["ciphertext"]
    assert (
        vault.secrets.transit.decrypt_data(fra.namespace, ciphertext=ciphertext)["data"]["plaintext"]
        == PLAINTEXT
    )
    # Its provisioning record is the operator's: read-only for the nation.
    with pytest.raises(hvac.exceptions.Forbidden):
        vault.secrets.kv.v2.create_or_update_secret(f"tenants/{fra.namespace}/tenant", secret={"a": "b"})


def test_a_nation_token_is_refused_on_another_nations_paths(
    platform: Platform, operator: hvac.Client, two_nations: list[NationInVault]
) -> None:
    """FRA's token on DEU's key, issuer key and records: 403 each. Also when the operator has rewritten
    DEU's role to bind every tenant-* namespace (its pin allows the prefix glob) and FRA logs in with it:
    the policy's template follows the namespace FRA's ServiceAccount is in, not the role."""
    fra, deu = two_nations
    widened = {**ROLE, "bound_service_account_namespaces": "tenant-*"}
    tokens = {"own-role": login(platform, fra.namespace, fra.jwt)}
    vault_client.write_kubernetes_role(operator, "kubernetes", deu.namespace, widened)
    try:
        tokens["deu-role-widened"] = login(platform, deu.namespace, fra.jwt)
    finally:
        vault_client.write_kubernetes_role(
            operator, "kubernetes", deu.namespace, {**ROLE, "bound_service_account_namespaces": deu.namespace}
        )
    for how, vault in tokens.items():
        for name, use in uses_of(vault, deu.namespace).items():
            with pytest.raises(hvac.exceptions.Forbidden):
                use()
                raise AssertionError(f"FRA's token ({how}) was allowed {name} on DEU's paths")
        vault.secrets.transit.encrypt_data(fra.namespace, plaintext=PLAINTEXT)  # its own, still
    with pytest.raises(hvac.exceptions.VaultError):
        login(platform, deu.namespace, fra.jwt)  # DEU's role as written binds DEU's namespace only


def test_platform_setup_removes_policies_the_operator_wrote(root: hvac.Client, suffix) -> None:
    written, foreign = f"tenant-{suffix}", f"tenant-{suffix}-site"
    root.sys.create_or_update_acl_policy(written, f"# {OPERATOR_WRITTEN_MARK} from the Tenant.\n{ANY}")
    root.sys.create_or_update_acl_policy(foreign, ANY)  # a site's own policy of that name stays
    try:
        assert written in remove_operator_written_policies(root)
        assert vault_client.read_acl_policy(root, written) is None
        assert vault_client.read_acl_policy(root, foreign) is not None
    finally:
        root.sys.delete_acl_policy(foreign)
