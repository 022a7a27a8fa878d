"""A Tenant's life with the real operator process: provisioned, isolated, repaired, changed, rotated.

One operator (module scope) and two nations: NOR provisioned once and reused by the tests in file order,
SWE as the "other nation" for isolation. Offboarding, duplicates and rotation by period have their own
nations in test_tenant_offboarding.py.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator

import hvac
import pytest

from sovereign.clients.vault import list_kv_paths
from sovereign.platform_setup import install_nation_vault_policy
from tests.helpers import ROOT, kubectl, wait_until
from tests.operator.harness import OperatorProcess, Platform
from tests.operator.tenants import (
    apply_tenant,
    condition,
    delete_tenant,
    events_for,
    get_json,
    rotate_key_with_cli,
    tenant,
    wait_ready,
)

NATION, OTHER = "NOR", "SWE"
NS = "tenant-nor"
TIMER_LOG = "Timer 'reconcile_periodically' succeeded"


@pytest.fixture(scope="module")
def nations(platform: Platform, running_operator: OperatorProcess) -> Iterator[Platform]:
    apply_tenant(
        platform.kube,
        "nor",
        NATION,
        quotas={"cpu": "2", "memory": "8Gi", "maxModels": 3},
        admins=[{"kind": "Group", "name": "nor-admins"}],
    )
    apply_tenant(platform.kube, "swe", OTHER, clearance="NATO RESTRICTED")
    wait_ready(platform.kube, "nor")
    wait_ready(platform.kube, "swe")
    try:
        yield platform
    finally:
        delete_tenant(platform.kube, "nor")
        delete_tenant(platform.kube, "swe")


def test_tenant_becomes_ready_with_every_condition_true(nations: Platform) -> None:
    body = tenant(nations.kube, "nor")
    status = body["status"]
    for kind in ("Ready", "NamespaceReady", "KeysReady", "IdentityReady"):
        found = condition(body, kind)
        assert found["status"] == "True", (kind, found)
        assert found["reason"] and found["message"] and found["lastTransitionTime"]
        assert found["observedGeneration"] == body["metadata"]["generation"]
    assert status["namespace"] == NS and status["vaultRole"] == "tenant-nor" and status["keyVersion"] == 1
    assert status["observedGeneration"] == body["metadata"]["generation"] and status["lastKeyRotation"]
    assert "sovereign.ai/offboarding" in body["metadata"]["finalizers"]

    table = kubectl(nations.kube, "get", "tenants", "nor").stdout.split("\n")
    assert table[0].split() == ["NAME", "NATION", "CLEARANCE", "READY", "KEY", "VERSION", "AGE"]
    assert table[1].split()[:6] == ["nor", "NOR", "NATO", "SECRET", "True", "1"]

    reasons = {event["reason"] for event in events_for(nations.kube, "nor")}
    assert {"Created", "KeyCreated", "RoleWritten", "IssuerCreated"} <= reasons
    assert "PolicyWritten" not in reasons  # the nations' policy is platform setup's, never the operator's


def test_namespace_and_its_objects_exist_with_the_right_contents(nations: Platform) -> None:
    kube = nations.kube
    namespace = get_json(kube, "namespace", NS)
    assert namespace["metadata"]["labels"]["sovereign.ai/nation"] == NATION
    owner = namespace["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("Tenant", "nor")

    quota = get_json(kube, "resourcequota", "tenant-quota", "-n", NS)
    assert quota["spec"]["hard"]["requests.cpu"] == "2" and quota["spec"]["hard"]["limits.memory"] == "8Gi"
    assert quota["spec"]["hard"]["count/modeldeployments.sovereign.ai"] == "3"
    assert get_json(kube, "limitrange", "tenant-limits", "-n", NS)["spec"]["limits"]
    policy = get_json(kube, "networkpolicy", "tenant-isolation", "-n", NS)["spec"]
    assert policy["podSelector"] == {} and policy["policyTypes"] == ["Ingress", "Egress"]
    assert get_json(kube, "serviceaccount", "model-serving", "-n", NS) is not None
    binding = get_json(kube, "rolebinding", "tenant-admins", "-n", NS)
    assert binding["roleRef"]["name"] == "sovereign-namespace-admin"
    assert [s["name"] for s in binding["subjects"]] == ["nor-admins"]
    assert get_json(kube, "clusterrole", "sovereign-namespace-admin") is not None

    jwks = json.loads(get_json(kube, "configmap", "identity-jwks", "-n", NS)["data"]["jwks.json"])
    assert jwks == tenant(kube, "nor")["status"]["identity"]["jwks"]
    assert jwks["keys"][0]["crv"] == "Ed25519" and "d" not in jwks["keys"][0], "public half only"


def test_vault_holds_the_nations_key_role_and_kv(nations: Platform) -> None:
    root = nations.root_vault()
    key = root.secrets.transit.read_key("tenant-nor")["data"]
    assert key["type"] == "aes256-gcm96" and key["deletion_allowed"] is False
    # One policy for every nation, templated on the ServiceAccount's namespace; none per nation.
    policy = root.sys.read_acl_policy("sovereign-nation")["data"]["policy"]
    assert "transit/encrypt/{{identity.entity.aliases.auth_kubernetes_" in policy
    assert "tenant-nor" not in root.sys.list_acl_policies()["data"]["keys"]
    role = root.auth.kubernetes.read_role("tenant-nor")
    assert role["bound_service_account_names"] == ["model-serving"]
    assert role["bound_service_account_namespaces"] == [NS]
    assert role["token_policies"] == ["sovereign-nation"]
    assert root_kv_paths(root, "tenants/tenant-nor") == ["tenants/tenant-nor/tenant"]
    # The dev issuer's key: ed25519 in transit, never exportable; its public key is the published JWKS.
    issuer = root.secrets.transit.read_key("tenant-nor-issuer")["data"]
    assert issuer["type"] == "ed25519" and issuer["deletion_allowed"] is False
    assert issuer["exportable"] is False and issuer["allow_plaintext_backup"] is False
    jwk = tenant(nations.kube, "nor")["status"]["identity"]["jwks"]["keys"][0]
    assert base64.urlsafe_b64decode(jwk["x"] + "=") == base64.b64decode(issuer["keys"]["1"]["public_key"])
    with pytest.raises(hvac.exceptions.InvalidRequest):  # not even root can take it out of Vault
        root.secrets.transit.export_key("tenant-nor-issuer", key_type="signing-key")
    assert '.metadata.service_account_namespace}}-issuer"' in policy and "transit/sign/*" not in policy
    # The gateway's key (federation assertions): the same kind, its key set in status.federation.
    gateway = root.secrets.transit.read_key("tenant-nor-gateway")["data"]
    assert gateway["type"] == "ed25519" and gateway["exportable"] is False
    jwk = tenant(nations.kube, "nor")["status"]["federation"]["jwks"]["keys"][0]
    assert base64.urlsafe_b64decode(jwk["x"] + "=") == base64.b64decode(gateway["keys"]["1"]["public_key"])


# A PEM private key, the field the dev issuer's key was once kept in, a private JWK's `d` member.
PRIVATE_KEY_MARKS = ("PRIVATE KEY", "privateKeyPem", '"d":')


def _holds_a_private_key(value: object) -> bool:
    text = json.dumps(value, sort_keys=True)
    return any(mark in text for mark in PRIVATE_KEY_MARKS)


def test_no_private_key_is_stored_in_kv_configmaps_or_status(nations: Platform) -> None:
    """After provisioning, no private key of the nation is kept anywhere the platform stores things: not
    under its KV prefix (every path, every field), not in a ConfigMap of its namespace or the platform's,
    not in its Tenant's status. The issuer's private key exists only inside Vault's transit engine."""
    root = nations.root_vault()
    paths = root_kv_paths(root, "tenants/tenant-nor")
    assert paths, "the nation's KV prefix holds its records"
    for path in paths:
        data = root.secrets.kv.v2.read_secret_version(path, raise_on_deleted_version=True)["data"]["data"]
        assert not _holds_a_private_key(data), path
    assert root_kv_paths(root, "tenants/nor") == [], "nothing under the prefix of earlier releases"
    for namespace in (NS, "sovereign-system"):
        for item in get_json(nations.kube, "configmap", "-n", namespace)["items"]:
            assert not _holds_a_private_key(item.get("data") or {}), f"{namespace}/{item['metadata']['name']}"
    status = tenant(nations.kube, "nor")["status"]
    assert status["identity"]["jwks"]["keys"] and not _holds_a_private_key(status)


def root_kv_paths(root: hvac.Client, prefix: str) -> list[str]:
    return list_kv_paths(root, "secret", prefix)


def test_records_left_under_the_old_kv_prefix_are_deleted(
    nations: Platform, running_operator: OperatorProcess
) -> None:
    """What an earlier release kept under tenants/<nation>/ (its identity record held the issuer's private
    key) is deleted, every version, on the operator's next pass: listed and deleted, never read (the
    operator's policy refuses the read)."""
    root = nations.root_vault()
    legacy = {"privateKeyPem": "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI...\n", "kid": "old"}
    root.secrets.kv.v2.create_or_update_secret("tenants/nor/identity", secret=legacy)
    root.secrets.kv.v2.create_or_update_secret("tenants/nor/tenant", secret={"nation": "NOR"})
    with pytest.raises(hvac.exceptions.Forbidden):
        nations.vault(nations.operator_token).secrets.kv.v2.read_secret_version("tenants/nor/identity")

    def removed() -> bool:
        return root_kv_paths(root, "tenants/nor") == []

    wait_until(removed, "the old prefix's records deleted", timeout=30)
    assert "LegacyRecordsRemoved" in {event["reason"] for event in events_for(nations.kube, "nor")}
    # The pass that deleted it has finished once two more have run; they find nothing to delete.
    ticks = running_operator.log_text().count(TIMER_LOG)
    wait_until(lambda: running_operator.log_text().count(TIMER_LOG) >= ticks + 4, "timer passes", timeout=20)
    assert removed()


def test_serving_account_uses_its_own_key_and_nothing_of_another_nation(nations: Platform) -> None:
    token = kubectl(nations.kube, "create", "token", "model-serving", "-n", NS).stdout.strip()
    serving = nations.vault()
    serving.auth.kubernetes.login(role="tenant-nor", jwt=token)

    plaintext = base64.b64encode(b"nor classified").decode()
    sealed = serving.secrets.transit.encrypt_data("tenant-nor", plaintext)["data"]["ciphertext"]
    assert serving.secrets.transit.decrypt_data("tenant-nor", sealed)["data"]["plaintext"] == plaintext
    serving.secrets.kv.v2.create_or_update_secret("tenants/tenant-nor/app", secret={"k": "v"})
    with pytest.raises(hvac.exceptions.Forbidden):  # the operator's record is read-only for the nation
        serving.secrets.kv.v2.create_or_update_secret("tenants/tenant-nor/tenant", secret={"nation": "x"})
    with pytest.raises(hvac.exceptions.Forbidden):
        serving.secrets.kv.v2.delete_metadata_and_all_versions("tenants/tenant-nor/tenant")
    # It signs with its own issuer key, and with no other nation's; it can neither verify nor export.
    message = base64.b64encode(b"header.payload").decode()
    signed = serving.secrets.transit.sign_data("tenant-nor-issuer", hash_input=message)["data"]["signature"]
    assert serving.secrets.transit.sign_data("tenant-nor-gateway", hash_input=message)["data"]["signature"]
    assert signed.startswith("vault:v1:") and len(base64.b64decode(signed.split(":")[2])) == 64
    for attempt in (
        lambda: serving.secrets.transit.sign_data("tenant-swe-issuer", hash_input=message),
        lambda: serving.secrets.transit.sign_data("tenant-swe-gateway", hash_input=message),
        lambda: serving.secrets.transit.verify_signed_data("tenant-nor-issuer", message, signature=signed),
        lambda: serving.secrets.transit.export_key("tenant-nor-issuer", key_type="signing-key"),
    ):
        with pytest.raises(hvac.exceptions.Forbidden):
            attempt()

    with pytest.raises(hvac.exceptions.Forbidden):
        serving.secrets.transit.encrypt_data("tenant-swe", plaintext)
    with pytest.raises(hvac.exceptions.Forbidden):
        serving.secrets.kv.v2.read_secret_version("tenants/tenant-swe/tenant", raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.Forbidden):  # a role of another nation refuses this account
        nations.vault().auth.kubernetes.login(role="tenant-swe", jwt=token)

    operator = nations.vault(nations.operator_token)
    with pytest.raises(hvac.exceptions.Forbidden):  # the operator manages keys but never uses them
        operator.secrets.transit.decrypt_data("tenant-nor", sealed)
    with pytest.raises(hvac.exceptions.Forbidden):  # nor signs for a nation
        operator.secrets.transit.sign_data("tenant-nor-issuer", hash_input=message)


def test_steady_state_writes_nothing(nations: Platform, running_operator: OperatorProcess) -> None:
    kube = nations.kube

    def versions() -> dict[str, str]:
        found = {"tenant": tenant(kube, "nor")["metadata"]["resourceVersion"]}
        for kind in ("namespace/" + NS, "clusterrole/sovereign-namespace-admin"):
            found[kind] = get_json(kube, *kind.split("/"))["metadata"]["resourceVersion"]
        listed = get_json(
            kube, "resourcequota,limitrange,networkpolicy,serviceaccount,rolebinding,configmap", "-n", NS
        )
        found.update(
            {i["kind"] + i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in listed["items"]}
        )
        return found

    before = versions()
    ticks = running_operator.log_text().count(TIMER_LOG)
    # Two timer passes per Tenant (NOR, SWE) have run once four more have been logged.
    wait_until(lambda: running_operator.log_text().count(TIMER_LOG) >= ticks + 4, "timer passes", timeout=20)
    assert versions() == before


def test_deleted_network_policy_is_restored(nations: Platform) -> None:
    kubectl(nations.kube, "delete", "networkpolicy", "tenant-isolation", "-n", NS)
    wait_until(
        lambda: get_json(nations.kube, "networkpolicy", "tenant-isolation", "-n", NS),
        "NetworkPolicy restored",
        timeout=60,
    )
    assert any(e["reason"] == "Repaired" or e["reason"] == "Created" for e in events_for(nations.kube, "nor"))


def test_deleted_vault_role_is_restored(nations: Platform) -> None:
    root = nations.root_vault()
    root.auth.kubernetes.delete_role("tenant-nor")

    def restored() -> bool:
        try:
            return bool(root.auth.kubernetes.read_role("tenant-nor"))
        except hvac.exceptions.InvalidPath:
            return False

    wait_until(restored, "Vault role restored", timeout=60)


def test_a_missing_nation_policy_is_reported_not_written(nations: Platform) -> None:
    """Without sovereign-nation (platform setup not run on this Vault) KeysReady is False with reason
    NationPolicyMissing naming the setup step; the operator cannot write it. Setup heals it."""
    root = nations.root_vault()
    root.sys.delete_acl_policy("sovereign-nation")
    try:

        def reported() -> dict | None:
            keys = condition(tenant(nations.kube, "nor"), "KeysReady")
            return keys if keys.get("reason") == "NationPolicyMissing" else None

        keys = wait_until(reported, "KeysReady=False NationPolicyMissing", timeout=60)
        assert keys["status"] == "False" and "prepare_vault" in keys["message"]
        assert condition(tenant(nations.kube, "nor"), "Ready")["status"] == "False"
        assert "sovereign-nation" not in root.sys.list_acl_policies()["data"]["keys"]
    finally:
        install_nation_vault_policy(root)
    wait_ready(nations.kube, "nor")


def test_spec_change_of_quotas_and_admins_propagates(nations: Platform) -> None:
    apply_tenant(
        nations.kube,
        "nor",
        NATION,
        quotas={"cpu": "4", "memory": "8Gi", "maxModels": 5},
        admins=[{"kind": "Group", "name": "nor-admins"}, {"kind": "User", "name": "ingrid"}],
    )

    def propagated() -> bool:
        hard = get_json(nations.kube, "resourcequota", "tenant-quota", "-n", NS)["spec"]["hard"]
        subjects = get_json(nations.kube, "rolebinding", "tenant-admins", "-n", NS)["subjects"]
        return hard["requests.cpu"] == "4" and [s["name"] for s in subjects] == ["nor-admins", "ingrid"]

    wait_until(propagated, "quota and admins updated", timeout=30)
    body = tenant(nations.kube, "nor")
    wait_until(
        lambda: tenant(nations.kube, "nor")["status"]["observedGeneration"] == body["metadata"]["generation"],
        "observedGeneration follows the spec",
    )


def test_sovereign_keys_rotate_raises_the_key_version_and_old_ciphertext_still_decrypts(
    nations: Platform,
) -> None:
    root = nations.root_vault()
    plaintext = base64.b64encode(b"before rotation").decode()
    sealed_v1 = root.secrets.transit.encrypt_data("tenant-nor", plaintext)["data"]["ciphertext"]
    before = tenant(nations.kube, "nor")["status"]["keyVersion"]

    assert rotate_key_with_cli(nations.kube, NATION) == before + 1
    assert tenant(nations.kube, "nor")["status"]["keyVersion"] == before + 1
    assert root.secrets.transit.read_key("tenant-nor")["data"]["latest_version"] == before + 1
    assert root.secrets.transit.decrypt_data("tenant-nor", sealed_v1)["data"]["plaintext"] == plaintext
    assert any(e["reason"] == "KeyRotated" for e in events_for(nations.kube, "nor"))


def test_sovereign_keys_rotate_explains_an_unknown_nation(nations: Platform) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sovereign.cli.main", "keys", "rotate", "--nation", "BRA"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=nations.kube.env(),
        timeout=60,
    )
    assert result.returncode == 1
    assert "no Tenant for nation BRA" in result.stderr
