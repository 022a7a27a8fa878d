"""Every Vault client verifies Vault's certificate: against $VAULT_CACERT (read at call time), or a CA given,
else the system's trust store; never unverified. Against the session's real OpenBao."""

from __future__ import annotations

import pytest

from sovereign.clients.vault import VaultUnreachable, kubernetes_login, tls_verify, vault_client
from tests.servers import VaultServer


def test_vault_cacert_is_read_when_the_client_is_made(
    vault_server: VaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULT_CACERT", raising=False)
    with pytest.raises(VaultUnreachable, match="unreachable"):  # the devstack CA is in no system store
        vault_client(vault_server.url, vault_server.root_token)
    monkeypatch.setenv("VAULT_CACERT", str(vault_server.ca_cert))
    assert vault_client(vault_server.url, vault_server.root_token).is_authenticated()


def test_a_ca_given_outranks_vault_cacert(
    vault_server: VaultServer, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("VAULT_CACERT", str(tmp_path / "absent.pem"))
    client = vault_client(vault_server.url, vault_server.root_token, verify=str(vault_server.ca_cert))
    assert client.is_authenticated()


def test_unverified_is_refused() -> None:
    with pytest.raises(ValueError, match="always verified"):
        tls_verify(False)
    with pytest.raises(ValueError, match="always verified"):
        kubernetes_login("https://127.0.0.1:1", "kubernetes", "role", "jwt", verify=False)
