"""Which Vault a Tenant uses, and how the operator's login to a nation's Vault is cached and renewed.

No processes: the login and the Kubernetes calls are replaced (test_bring_your_own_vault.py runs it all).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hvac
import pytest
from kubernetes.client.exceptions import ApiException
from sovereign_operator.config import OperatorConfig
from sovereign_operator.reconcile import vault_access
from sovereign_operator.reconcile.vault_access import VaultClients, VaultLoginFailed

from sovereign.specs.tenant import TenantSpec

PLATFORM = "http://vault.platform:8200"
NATION = "https://vault.svn.example:8200"


def spec(vault: dict[str, Any] | None = None) -> TenantSpec:
    body: dict[str, Any] = {"nation": "SVN", "displayName": "Slovenia", "clearance": "NATO SECRET"}
    if vault is not None:
        body["vault"] = vault
    return TenantSpec.model_validate(body)


class Fakes:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, ttl: int = 3600) -> None:
        self.logins: list[dict[str, Any]] = []
        self.token_requests: list[tuple[str, str]] = []
        self.secrets: dict[tuple[str, str, str], str] = {}
        self.now = 1000.0
        self.ttl = ttl
        monkeypatch.setattr(vault_access.vault_client, "kubernetes_login", self.login)
        monkeypatch.setattr(vault_access.kube, "create_namespaced_service_account_token", self.token_request)
        monkeypatch.setattr(vault_access.kube, "read_secret_value", self.read_secret)
        monkeypatch.setattr(vault_access.time, "monotonic", lambda: self.now)

    def login(self, address: str, mount: str, role: str, jwt: str, verify: bool | str) -> tuple[object, int]:
        self.logins.append({"address": address, "mount": mount, "role": role, "jwt": jwt, "verify": verify})
        return object(), self.ttl

    def token_request(self, api: object, namespace: str, name: str, expiration_seconds: int) -> str:
        self.token_requests.append((namespace, name))
        return f"requested-{len(self.token_requests)}"

    def read_secret(self, api: object, namespace: str, name: str, key: str) -> str | None:
        return self.secrets.get((namespace, name, key))


def clients(tmp_path: Path, **config: str) -> tuple[VaultClients, hvac.Client]:
    platform = hvac.Client(url=PLATFORM)
    settings = {"service_account_token_file": str(tmp_path / "absent"), **config}
    no_api: Any = None  # every Kubernetes call is faked
    return VaultClients(OperatorConfig(vault_addr=PLATFORM, **settings), no_api, platform), platform


def test_platform_vault_without_spec_vault_or_with_the_platforms_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes = Fakes(monkeypatch)
    vaults, platform = clients(tmp_path)
    assert vaults.for_tenant(spec()) is platform
    assert vaults.for_tenant(spec({"address": "HTTP://vault.platform:8200/"})) is platform
    assert vaults.address_for(spec()) == PLATFORM
    assert fakes.logins == [] and fakes.token_requests == []


def test_nation_vault_login_is_cached_and_renewed_before_expiry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes = Fakes(monkeypatch, ttl=100)
    vaults, _ = clients(tmp_path, operator_service_account="ops/operator", nation_vault_role="byo")
    tenant = spec({"address": NATION, "authMount": "k8s-svn"})
    first = vaults.for_tenant(tenant)
    assert vaults.for_tenant(tenant) is first and len(fakes.logins) == 1
    login = fakes.logins[0]
    assert (login["address"], login["mount"], login["role"], login["verify"]) == (
        NATION,
        "k8s-svn",
        "byo",
        True,
    )
    assert fakes.token_requests == [("ops", "operator")]

    fakes.now += 80  # past 75 % of the token's TTL: log in again with a fresh ServiceAccount token
    assert vaults.for_tenant(tenant) is not first and len(fakes.logins) == 2
    assert fakes.logins[1]["jwt"] == "requested-2"

    vaults.forget(tenant)  # after a 403
    vaults.for_tenant(tenant)
    assert len(fakes.logins) == 3


def test_projected_token_file_is_preferred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fakes = Fakes(monkeypatch)
    token_file = tmp_path / "token"
    token_file.write_text("projected-jwt\n")
    vaults, _ = clients(tmp_path, service_account_token_file=str(token_file))
    vaults.for_tenant(spec({"address": NATION}))
    assert fakes.logins[0]["jwt"] == "projected-jwt" and fakes.token_requests == []


def test_ca_bundle_from_the_referenced_secret_is_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes = Fakes(monkeypatch)
    vaults, _ = clients(tmp_path)
    reference = {"name": "svn-vault-ca", "namespace": "sovereign-system", "key": "ca.pem"}
    tenant = spec({"address": NATION, "caBundleSecretRef": reference})
    with pytest.raises(VaultLoginFailed, match="svn-vault-ca"):
        vaults.for_tenant(tenant)
    fakes.secrets[("sovereign-system", "svn-vault-ca", "ca.pem")] = "-----BEGIN CERTIFICATE-----\nA\n"
    vaults.for_tenant(tenant)
    assert Path(fakes.logins[0]["verify"]).read_text() == "-----BEGIN CERTIFICATE-----\nA\n"
    fakes.secrets[("sovereign-system", "svn-vault-ca", "ca.pem")] = "-----BEGIN CERTIFICATE-----\nB\n"
    vaults.for_tenant(tenant)  # a new CA bundle: a new client trusting it
    assert len(fakes.logins) == 2 and Path(fakes.logins[1]["verify"]).read_text().endswith("B\n")


def test_missing_service_account_is_a_login_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Fakes(monkeypatch)

    def refuse(*_: object, **__: object) -> str:
        raise ApiException(status=404, reason="Not Found")

    monkeypatch.setattr(vault_access.kube, "create_namespaced_service_account_token", refuse)
    vaults, _ = clients(tmp_path)
    with pytest.raises(VaultLoginFailed, match="sovereign-system/sovereign-operator: TokenRequest 404"):
        vaults.for_tenant(spec({"address": NATION}))
