"""Fixtures that start the devstack's real processes on free loopback ports and talk to them over HTTP."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sovereign_devstack.keys import write_service_account_key
from sovereign_devstack.kube.audit_log import AUDIT_LOG_ENV
from sovereign_devstack.kubeconfig import write_kubeconfig
from sovereign_devstack.otlp_receiver import OtlpReceiver
from sovereign_devstack.processes import free_loopback_port, start_service, stop_service
from sovereign_devstack.services import kube_api_spec, vault_spec

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@dataclass(frozen=True)
class KubeAPI:
    url: str
    kubeconfig: Path
    service_account_key: Path  # PEM private key the API server signs ServiceAccount tokens with
    service_account_public_key: Path
    service_account_certificate: Path  # self-signed, for Vault's pem_keys
    audit_log: Path  # one JSON audit event per resource request, for the whole session (RBAC test)

    def env(self) -> dict[str, str]:
        """An environment for kubectl and kopf subprocesses pointed at this API server."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}


@dataclass(frozen=True)
class VaultServer:
    url: str
    root_token: str


@pytest.fixture(scope="session")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeAPI]:
    state_dir = tmp_path_factory.mktemp("kube")
    key_files = write_service_account_key(state_dir / "sa.key")
    port = free_loopback_port()
    audit_log = state_dir / "audit.jsonl"
    spec = kube_api_spec(port, key_files.private_key)
    start_service(dataclasses.replace(spec, env={AUDIT_LOG_ENV: str(audit_log)}), state_dir)
    url = f"http://127.0.0.1:{port}"
    kubeconfig = write_kubeconfig(state_dir / "kubeconfig", url, token="devstack-admin")
    try:
        yield KubeAPI(
            url=url,
            kubeconfig=kubeconfig,
            service_account_key=key_files.private_key,
            service_account_public_key=key_files.public_key,
            service_account_certificate=key_files.certificate,
            audit_log=audit_log,
        )
    finally:
        stop_service(state_dir, "kube-apiserver")


@contextlib.contextmanager
def running_vault(state_dir: Path) -> Iterator[VaultServer]:
    port = free_loopback_port()
    token = "devstack-root"
    start_service(vault_spec(port, token), state_dir)
    try:
        yield VaultServer(url=f"http://127.0.0.1:{port}", root_token=token)
    finally:
        stop_service(state_dir, "vault")


@pytest.fixture(scope="session")
def vault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VaultServer]:
    """One Vault for the session; the platform fixture prepares it (transit, KV, Kubernetes auth)."""
    with running_vault(tmp_path_factory.mktemp("vault")) as server:
        yield server


@pytest.fixture
def fresh_vault(tmp_path: Path) -> Iterator[VaultServer]:
    """A Vault of the test's own, for tests that change what the session's Vault is prepared with."""
    with running_vault(tmp_path / "vault") as server:
        yield server


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """A real OTLP/HTTP trace receiver on a free loopback port; point OTEL_EXPORTER_OTLP_ENDPOINT at
    `.endpoint` and read what arrived with `.spans()` (flattened) or `.raw_bodies()` (the bytes)."""
    with OtlpReceiver() as receiver:
        yield receiver
