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

from tests.conftest import ROOT
from tests.helpers import kubectl, wait_until
from tests.operator.conftest import OperatorProcess, Platform
from tests.operator.tenants import (
    apply_tenant,
    condition,
    delete_tenant,
    events_for,
    get_json,
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
    assert {"Created", "KeyCreated", "PolicyWritten", "RoleWritten", "IssuerCreated"} <= reasons


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


def test_vault_holds_the_nations_key_policy_role_and_kv(nations: Platform) -> None:
    root = nations.root_vault()
    key = root.secrets.transit.read_key("tenant-nor")["data"]
    assert key["type"] == "aes256-gcm96" and key["deletion_allowed"] is False
    policy = root.sys.read_acl_policy("tenant-nor")["data"]["policy"]
    assert 'transit/encrypt/tenant-nor"' in policy and "tenants/nor/" in policy
    role = root.auth.kubernetes.read_role("tenant-nor")
    assert role["bound_service_account_names"] == ["model-serving"]
    assert role["bound_service_account_namespaces"] == [NS]
    assert role["token_policies"] == ["tenant-nor"]
    identity = root.secrets.kv.v2.read_secret_version("tenants/nor/identity", raise_on_deleted_version=True)
    data = identity["data"]["data"]
    assert data["issuer"] == "https://identity.sovereign.local/nor" and data["audience"] == "sovereign-nor"
    assert data["privateKeyPem"].startswith("-----BEGIN PRIVATE KEY-----")


def test_serving_account_uses_its_own_key_and_nothing_of_another_nation(nations: Platform) -> None:
    token = kubectl(nations.kube, "create", "token", "model-serving", "-n", NS).stdout.strip()
    serving = nations.vault()
    serving.auth.kubernetes.login(role="tenant-nor", jwt=token)

    plaintext = base64.b64encode(b"nor classified").decode()
    sealed = serving.secrets.transit.encrypt_data("tenant-nor", plaintext)["data"]["ciphertext"]
    assert serving.secrets.transit.decrypt_data("tenant-nor", sealed)["data"]["plaintext"] == plaintext
    serving.secrets.kv.v2.create_or_update_secret("tenants/nor/app", secret={"k": "v"})
    assert serving.secrets.kv.v2.read_secret_version("tenants/nor/identity", raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.Forbidden):  # its issuer key is the operator's record: read-only
        serving.secrets.kv.v2.create_or_update_secret("tenants/nor/identity", secret={"privateKeyPem": "x"})
    with pytest.raises(hvac.exceptions.Forbidden):
        serving.secrets.kv.v2.delete_metadata_and_all_versions("tenants/nor/identity")

    with pytest.raises(hvac.exceptions.Forbidden):
        serving.secrets.transit.encrypt_data("tenant-swe", plaintext)
    with pytest.raises(hvac.exceptions.Forbidden):
        serving.secrets.kv.v2.read_secret_version("tenants/swe/tenant", raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.Forbidden):  # a role of another nation refuses this account
        nations.vault().auth.kubernetes.login(role="tenant-swe", jwt=token)

    operator = nations.vault(nations.operator_token)
    with pytest.raises(hvac.exceptions.Forbidden):  # the operator manages keys but never uses them
        operator.secrets.transit.decrypt_data("tenant-nor", sealed)


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


def test_deleted_vault_policy_and_role_are_restored(nations: Platform) -> None:
    root = nations.root_vault()
    root.sys.delete_acl_policy("tenant-nor")
    root.auth.kubernetes.delete_role("tenant-nor")

    def restored() -> bool:
        try:
            root.sys.read_acl_policy("tenant-nor")
            return bool(root.auth.kubernetes.read_role("tenant-nor"))
        except hvac.exceptions.InvalidPath:
            return False

    wait_until(restored, "Vault policy and role restored", timeout=60)


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

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sovereign.cli.main",
            "keys",
            "rotate",
            "--nation",
            NATION,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=nations.kube.env(),
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["keyVersion"] == before + 1
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
