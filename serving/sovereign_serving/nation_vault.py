"""A Vault client logged in as a nation: what the nation's processes on Ray (audit writer, ingest job,
retriever) use to reach its transit key, with the ServiceAccount token in a file (Kubernetes auth)."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Protocol

import hvac

from sovereign.clients import vault as vault_client

# Log in again when this share of the Vault token's TTL has passed.
# Vault docs: /vault/docs/concepts/tokens#ttl
RENEW_AT_FRACTION = 0.75


class VaultLogin(Protocol):
    """What a login needs (AuditSink and VaultSink both have it)."""

    @property
    def vault_addr(self) -> str: ...
    @property
    def auth_mount(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def token_file(self) -> str: ...
    @property
    def ca_cert(self) -> str | None: ...


class NationVault:
    """A Vault client logged in as the nation, renewed from the token file when due or after a 403."""

    def __init__(self, sink: VaultLogin) -> None:
        self._sink = sink
        self._client: hvac.Client | None = None
        self._login_again_at = 0.0
        self._guard = threading.Lock()
        self._ca_file: str | None = None

    def client(self) -> hvac.Client:
        with self._guard:
            if self._client is None or time.monotonic() >= self._login_again_at:
                jwt = Path(self._sink.token_file).read_text().strip()  # re-read: the file is refreshed
                client, ttl = vault_client.kubernetes_login(
                    self._sink.vault_addr, self._sink.auth_mount, self._sink.role, jwt, verify=self._verify()
                )
                self._client = client
                renew_in = ttl * RENEW_AT_FRACTION if ttl > 0 else float("inf")  # no TTL: until a 403
                self._login_again_at = time.monotonic() + renew_in
            return self._client

    def forget(self) -> None:
        with self._guard:
            self._client = None

    def _verify(self) -> str | None:
        """The sink's CA as a file (requests verifies against a path), written once to a private temp file;
        without one, $VAULT_CACERT or the system's trust store. Never unverified."""
        if self._sink.ca_cert is None:
            return None
        if self._ca_file is None:
            descriptor, path = tempfile.mkstemp(prefix="sovereign-vault-ca-", suffix=".pem")  # mode 0600
            with os.fdopen(descriptor, "w") as file:
                file.write(self._sink.ca_cert)
            self._ca_file = path
        return self._ca_file


def vault_outage(error: BaseException) -> vault_client.VaultUnavailable | None:
    """VaultSealed / VaultUnreachable when `error` (raised here, or by a Ray actor or Serve replica, which
    Ray hands back as a RayTaskError whose `cause` is the original) means the nation's Vault is sealed or
    unreachable; None otherwise."""
    cause = getattr(error, "cause", None)  # ray.exceptions.RayTaskError
    for candidate in (error, cause) if isinstance(cause, BaseException) else (error,):
        outage = vault_client.classify_vault_error(candidate)
        if outage is not None:
            return outage
    return None
