"""The devstack's Vault is the real OpenBao server: TLS-only, initialized once, keys kept across a restart."""

from __future__ import annotations

import base64
import ssl
import stat

import httpx
import hvac
import pytest
import requests
from sovereign_devstack import openbao
from sovereign_devstack.pki import ensure_ca

from tests.servers import VaultServer


def _health(vault: VaultServer) -> dict:
    answer = httpx.get(
        f"{vault.url}/v1/sys/health?sealedcode=200",
        verify=ssl.create_default_context(cafile=vault.ca_cert),
        timeout=5,
    )
    return answer.json()


def test_it_is_openbao_serving_tls_verified_against_the_devstack_ca(fresh_vault: VaultServer) -> None:
    assert fresh_vault.url.startswith("https://")
    health = _health(fresh_vault)
    assert health["initialized"] and not health["sealed"]
    assert fresh_vault.client().is_authenticated()

    # Plain HTTP on the same port gets Go's TLS listener's refusal, never a Vault answer.
    plain = httpx.get(fresh_vault.url.replace("https://", "http://") + "/v1/sys/health", timeout=5)
    assert plain.status_code == 400
    assert "HTTPS server" in plain.text and "initialized" not in plain.text


def test_a_client_trusting_another_ca_refuses_the_server(fresh_vault: VaultServer, tmp_path) -> None:
    other = ensure_ca(tmp_path / "other-ca")
    client = hvac.Client(url=fresh_vault.url, token=fresh_vault.root_token, verify=str(other.certificate))
    with pytest.raises(requests.exceptions.SSLError):
        client.sys.read_health_status(method="GET")


def test_init_file_is_private_and_holds_the_keys_it_was_initialized_with(fresh_vault: VaultServer) -> None:
    init_file = fresh_vault.server.init_file
    assert stat.S_IMODE(init_file.stat().st_mode) == 0o600
    keys = openbao.read_init(init_file)
    assert keys is not None
    assert (keys.root_token, keys.unseal_key) == (fresh_vault.root_token, fresh_vault.unseal_key)
    # A second initialize is a no-op: the server keeps the keys it has.
    assert openbao.initialize(fresh_vault.server) == keys


def test_restart_comes_back_sealed_and_unseal_brings_the_same_transit_key_back(
    fresh_vault: VaultServer,
) -> None:
    root = fresh_vault.client()
    root.sys.enable_secrets_engine("transit")
    root.secrets.transit.create_key("nation")
    plaintext = base64.b64encode(b"earlier ciphertext").decode()
    ciphertext = root.secrets.transit.encrypt_data("nation", plaintext)["data"]["ciphertext"]

    fresh_vault.stop()
    fresh_vault.start()
    health = _health(fresh_vault)
    assert health["initialized"] and health["sealed"]
    with pytest.raises(hvac.exceptions.VaultDown):
        fresh_vault.client().secrets.transit.decrypt_data("nation", ciphertext)

    fresh_vault.unseal()
    assert not _health(fresh_vault)["sealed"]
    decrypted = fresh_vault.client().secrets.transit.decrypt_data("nation", ciphertext)
    assert decrypted["data"]["plaintext"] == plaintext


def test_seal_makes_health_say_sealed_until_unsealed(fresh_vault: VaultServer) -> None:
    fresh_vault.seal()
    assert _health(fresh_vault)["sealed"]
    assert openbao.seal_status(fresh_vault.server).sealed
    fresh_vault.unseal()
    assert not openbao.seal_status(fresh_vault.server).sealed
    assert fresh_vault.client().is_authenticated()


def test_its_audit_log_records_requests_but_never_tokens_or_secrets(fresh_vault: VaultServer) -> None:
    root = fresh_vault.client()
    root.sys.enable_secrets_engine("transit")
    root.secrets.transit.create_key("nation")
    plaintext = base64.b64encode(b"plaintext-marker").decode()
    root.secrets.transit.encrypt_data("nation", plaintext)
    child = root.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    log = fresh_vault.server.audit_log.read_text()
    assert '"path":"transit/encrypt/nation"' in log
    assert stat.S_IMODE(fresh_vault.server.audit_log.stat().st_mode) == 0o600
    for secret in (fresh_vault.root_token, child, plaintext, fresh_vault.unseal_key):
        assert secret not in log
