"""The devstack's real servers as the tests start them on free loopback ports: the Kubernetes API server and
OpenBao (as Vault), each over TLS from one CA, and what a test needs to reach them."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import hvac
from sovereign_devstack import openbao
from sovereign_devstack.keys import write_service_account_key
from sovereign_devstack.kube.audit_log import AUDIT_LOG_ENV
from sovereign_devstack.kubeconfig import admin_key_pair, serving_key_pair, write_kubeconfig
from sovereign_devstack.openbao import VAULT_SERVICE, OpenBaoServer, openbao_spec, start_openbao
from sovereign_devstack.pki import CertificateAuthority, KeyPair
from sovereign_devstack.processes import (
    free_loopback_port,
    is_running,
    read_pid,
    start_service,
    stop_service,
)
from sovereign_devstack.services import kube_api_spec


@dataclass(frozen=True)
class KubeAPI:
    """The session's API server (HTTPS from the session CA, authenticating and authorizing every request).
    `kubeconfig` is the admin's (client certificate CN kubernetes-admin, O system:masters)."""

    url: str
    kubeconfig: Path
    service_account_key: Path  # PEM private key the API server signs ServiceAccount tokens with
    service_account_public_key: Path
    service_account_certificate: Path  # self-signed, for Vault's pem_keys
    audit_log: Path  # one JSON audit event per resource request, for the whole session (RBAC test)
    ca_cert: Path  # the CA that signed the server's certificate (and verifies client certificates)
    admin_certificate: KeyPair  # the admin's client certificate and key

    def env(self) -> dict[str, str]:
        """An environment for kubectl and kopf subprocesses pointed at this API server."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def ssl_context(self, admin: bool = True) -> ssl.SSLContext:
        """Verifies the server; presents the admin's client certificate unless `admin` is False."""
        context = ssl.create_default_context(cafile=self.ca_cert)
        if admin:
            context.load_cert_chain(self.admin_certificate.certificate, self.admin_certificate.private_key)
        return context

    def http(self, token: str | None = None) -> httpx.Client:
        """An HTTPS client to the server as the admin, or with `token` as bearer (no client certificate)."""
        if token is None:
            return httpx.Client(base_url=self.url, verify=self.ssl_context())
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.url, verify=self.ssl_context(admin=False), headers=headers)

    def token_kubeconfig(self, path: Path, token: str) -> Path:
        """A kubeconfig for this server that authenticates with `token` (e.g. a ServiceAccount's)."""
        return write_kubeconfig(path, self.url, self.ca_cert, token=token, user="token-user")


@dataclass
class VaultServer:
    """A real OpenBao server (TLS from the session CA, raft storage under its directory), initialized and
    unsealed. `client()` verifies TLS; `stop()`/`start()`/`seal()`/`unseal()` are for fault tests: a
    restarted server keeps its data and port and comes back sealed."""

    server: OpenBaoServer
    state_dir: Path  # pid file and log
    root_token: str
    unseal_key: str
    ca: CertificateAuthority

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ca_cert(self) -> Path:
        return self.server.ca_file

    def client(self, token: str | None = None) -> hvac.Client:
        """An hvac client verifying the server's certificate; the root token unless `token` is given."""
        return hvac.Client(url=self.url, token=token or self.root_token, verify=str(self.ca_cert))

    def env(self) -> dict[str, str]:
        """What a subprocess needs to reach this Vault as the root (the CA it verifies against)."""
        return {"VAULT_ADDR": self.url, "VAULT_CACERT": str(self.ca_cert), "VAULT_TOKEN": self.root_token}

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL) the bao process and wait until it is gone."""
        pid = read_pid(self.state_dir, VAULT_SERVICE)
        if kill and pid is not None and is_running(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        stop_service(self.state_dir, VAULT_SERVICE)

    def start(self) -> None:
        """Start bao again on the same port and data: it answers, sealed."""
        start_service(openbao_spec(self.server, self.ca), self.state_dir)

    def seal(self) -> None:
        openbao.seal(self.server, self.root_token)

    def unseal(self) -> None:
        openbao.unseal(self.server, self.unseal_key)


@contextlib.contextmanager
def running_kube_api(
    state_dir: Path, ca: CertificateAuthority, port: int | None = None, **spec_options: Any
) -> Iterator[KubeAPI]:
    """The API server under `state_dir` over TLS from `ca`, and the admin's kubeconfig for it; `port` to
    start it again where its clients expect it (e.g. on the same `data_dir` after a restart)."""
    key_files = write_service_account_key(state_dir / "sa.key")
    port = port or free_loopback_port()
    audit_log = state_dir / "audit.jsonl"
    pki = state_dir / "pki"
    spec = kube_api_spec(
        port,
        key_files.private_key,
        serving=serving_key_pair(ca, pki),
        client_ca_file=ca.certificate,
        **spec_options,
    )
    start_service(dataclasses.replace(spec, env={AUDIT_LOG_ENV: str(audit_log)}), state_dir)
    url = f"https://127.0.0.1:{port}"
    admin = admin_key_pair(ca, pki)
    kubeconfig = write_kubeconfig(state_dir / "kubeconfig", url, ca.certificate, client=admin)
    try:
        yield KubeAPI(
            url=url,
            kubeconfig=kubeconfig,
            service_account_key=key_files.private_key,
            service_account_public_key=key_files.public_key,
            service_account_certificate=key_files.certificate,
            audit_log=audit_log,
            ca_cert=ca.certificate,
            admin_certificate=admin,
        )
    finally:
        stop_service(state_dir, "kube-apiserver")


@contextlib.contextmanager
def running_vault(state_dir: Path, ca: CertificateAuthority) -> Iterator[VaultServer]:
    """OpenBao under `state_dir` (config, raft data, init.json), started, initialized and unsealed."""
    server = OpenBaoServer(directory=state_dir / "vault", port=free_loopback_port(), ca_file=ca.certificate)
    keys = start_openbao(state_dir, server, ca)
    try:
        yield VaultServer(server, state_dir, keys.root_token, keys.unseal_key, ca)
    finally:
        stop_service(state_dir, VAULT_SERVICE)
