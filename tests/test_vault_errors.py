"""What a failed Vault call means, classified once (sovereign.clients.vault.classify_vault_error) for the
operator's Tenant conditions and the gateway's 503 codes; every error here is caused for real against a real
OpenBao of this module's own (stopped, sealed, refused) or a closed port."""

from __future__ import annotations

import json
from collections.abc import Iterator

import hvac
import pytest
import requests
from sovereign_devstack.pki import CertificateAuthority
from sovereign_devstack.processes import free_loopback_port
from sovereign_operator.reconcile.tenant import vault_failure
from sovereign_operator.reconcile.vault_access import VaultLoginFailed
from sovereign_serving.gateway._errors import vault_unavailable
from sovereign_serving.ingest import error_line

from sovereign.clients.vault import (
    VaultSealed,
    VaultUnavailable,
    VaultUnreachable,
    classify_vault_error,
    unchecked_vault_client,
    vault_client,
)
from tests.servers import VaultServer, running_vault


@pytest.fixture(scope="module")
def vault(
    tmp_path_factory: pytest.TempPathFactory, devstack_ca: CertificateAuthority
) -> Iterator[VaultServer]:
    with running_vault(tmp_path_factory.mktemp("vault-errors"), devstack_ca) as server:
        server.client().sys.enable_secrets_engine("transit", path="transit")
        server.client().secrets.transit.create_key(name="tenant-xyz")
        yield server


@pytest.fixture
def sealed(vault: VaultServer) -> Iterator[VaultServer]:
    vault.seal()
    try:
        yield vault
    finally:
        vault.unseal()


def _raised(call: object) -> BaseException:
    try:
        call()  # type: ignore[operator]
    except Exception as error:  # noqa: BLE001 — the error is what the test looks at
        return error
    raise AssertionError("the call did not fail")


def test_a_closed_port_is_unreachable() -> None:
    address = f"https://127.0.0.1:{free_loopback_port()}"
    error = _raised(lambda: unchecked_vault_client(address).secrets.transit.read_key(name="tenant-xyz"))
    assert isinstance(error, requests.ConnectionError)
    outage = classify_vault_error(error, address)
    assert isinstance(outage, VaultUnreachable)
    assert str(outage) == f"Vault at {address} is unreachable: check that it is running and reachable"
    assert outage.__cause__ is error


def test_a_tls_handshake_that_timed_out_is_unreachable_not_a_certificate_problem() -> None:
    # As requests raises it when a slow Vault does not finish a new connection's handshake within the
    # client's timeout (seen against a Vault slowed to 12 s per chunk); made here, since the timing that
    # puts the timeout inside the handshake rather than a read cannot be caused reliably.
    address = "https://127.0.0.1:8200"
    error = requests.exceptions.SSLError(
        "HTTPSConnectionPool(host='127.0.0.1', port=8200): Max retries exceeded with url: "
        "/v1/sys/seal-status (Caused by SSLError(TimeoutError('_ssl.c:1000: The handshake operation timed "
        "out')))"
    )
    outage = classify_vault_error(error, address)
    assert isinstance(outage, VaultUnreachable)
    assert str(outage).startswith(f"Vault at {address} is unreachable: it did not finish the TLS handshake")
    assert "VAULT_CACERT" not in str(outage)


@pytest.mark.process
def test_an_untrusted_certificate_is_unreachable_and_names_vault_cacert(vault: VaultServer) -> None:
    error = _raised(lambda: unchecked_vault_client(vault.url, verify=True).sys.read_seal_status())
    assert isinstance(error, requests.exceptions.SSLError)
    outage = classify_vault_error(error, vault.url)
    assert isinstance(outage, VaultUnreachable)
    assert "TLS handshake" in str(outage) and "VAULT_CACERT" in str(outage)


@pytest.mark.process
def test_a_sealed_vault_says_so_and_what_to_do(sealed: VaultServer) -> None:
    client = sealed.client()
    for call in (
        lambda: client.secrets.transit.read_key(name="tenant-xyz"),
        lambda: client.secrets.transit.generate_data_key(name="tenant-xyz", key_type="wrapped"),
        lambda: hvac.Client(url=sealed.url, verify=str(sealed.ca_cert)).auth.kubernetes.login("r", "jwt"),
    ):
        error = _raised(call)
        assert isinstance(error, hvac.exceptions.VaultDown)
        outage = classify_vault_error(error, sealed.url)
        assert isinstance(outage, VaultSealed)
        assert str(outage).startswith(f"Vault at {sealed.url} is sealed: it serves no key until unsealed")
        assert "sovereign vault unseal" in str(outage)


@pytest.mark.process
def test_the_checked_client_and_a_wrapped_cause_classify_the_same(sealed: VaultServer) -> None:
    checked = _raised(lambda: vault_client(sealed.url, verify=str(sealed.ca_cert)))
    assert isinstance(checked, VaultSealed)
    assert classify_vault_error(checked) is checked
    # The operator wraps a failed login to a nation's Vault; the cause still decides.
    login = _raised(
        lambda: hvac.Client(url=sealed.url, verify=str(sealed.ca_cert)).auth.kubernetes.login("r", "j")
    )
    try:
        raise VaultLoginFailed("Vault refused the operator's login") from login
    except VaultLoginFailed as wrapped:
        assert isinstance(classify_vault_error(wrapped), VaultSealed)


@pytest.mark.process
def test_refusals_and_absent_paths_are_not_outages(vault: VaultServer) -> None:
    forbidden = _raised(lambda: vault.client(token="not-a-token").secrets.transit.read_key(name="tenant-xyz"))
    absent = _raised(lambda: vault.client().secrets.transit.read_key(name="tenant-none"))
    refused = _raised(lambda: vault_client(vault.url, "not-a-token", verify=str(vault.ca_cert)))
    assert isinstance(forbidden, hvac.exceptions.Forbidden)
    assert isinstance(absent, hvac.exceptions.InvalidPath)
    assert type(refused) is VaultUnavailable
    for error in (forbidden, absent, refused, ValueError("not Vault's")):
        assert classify_vault_error(error) is None


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (VaultSealed("Vault at https://vault.example is sealed: unseal it"), "VaultSealed"),
        (VaultUnreachable("Vault at https://vault.example is unreachable"), "VaultUnreachable"),
        (
            VaultLoginFailed("no ServiceAccount token for sovereign-system/sovereign-operator"),
            "VaultLoginFailed",
        ),
        (VaultUnavailable("Vault at https://vault.example refused the token"), "VaultError"),
    ],
    ids=["sealed", "unreachable", "login-failed", "refused"],
)
def test_the_tenant_condition_reason_for_each_failure(error: Exception, reason: str) -> None:
    got, message = vault_failure("https://vault.example", error)
    assert got == reason
    assert "https://vault.example" in message and len(message) <= 500
    if reason in ("VaultSealed", "VaultUnreachable"):
        assert "retrying every 10 s" in message  # an outage heals by itself


@pytest.mark.parametrize(
    ("outage", "code"),
    [(VaultSealed("sealed"), "vault_sealed"), (VaultUnreachable("down"), "vault_unreachable")],
    ids=["sealed", "unreachable"],
)
def test_the_gateway_answers_503_with_a_code(outage: VaultUnavailable, code: str) -> None:
    answer = vault_unavailable(outage).response()
    body = json.loads(bytes(answer.body))["error"]
    assert answer.status_code == 503
    assert (body["type"], body["code"]) == ("server_error", code)
    assert "Vault" in body["message"] and "retry later" in body["message"]


@pytest.mark.process
def test_an_ingest_job_reports_a_sealed_vault_plainly(sealed: VaultServer) -> None:
    error = _raised(lambda: sealed.client().secrets.transit.encrypt_data(name="tenant-xyz", plaintext="AA=="))
    line = error_line("xyz/docs", error)
    assert line["error"].startswith("VaultSealed: Vault is sealed: it serves no key until unsealed")
