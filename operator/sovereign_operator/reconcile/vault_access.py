"""Which Vault holds a nation's keys, and a logged-in hvac client for it.

A Tenant without `spec.vault`, or whose `spec.vault.address` is the platform's, uses the platform's Vault
with the operator's own token. Any other address is the nation's own Vault (bring-your-own): the operator
logs in there with Kubernetes auth at `spec.vault.authMount`, role `config.nation_vault_role`, presenting a
token of its own ServiceAccount (the projected token file in a pod, else one from the TokenRequest API).
Logged-in clients are cached per Vault and logged in again before their token expires, or on the next pass
after a 403.
Every Vault call still goes through sovereign.clients.vault; tokens are never logged or put in messages.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import hvac
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from sovereign.clients import kubernetes as kube
from sovereign.clients import vault as vault_client
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.config import OperatorConfig

log = logging.getLogger(__name__)

# Log in again when this share of the token's TTL has passed (Vault docs: /vault/docs/concepts/tokens#ttl).
RENEW_AT_FRACTION = 0.75
TOKEN_REQUEST_SECONDS = 600  # the shortest a TokenRequest may ask for; used once, for the login only


class VaultLoginFailed(vault_client.VaultUnavailable):
    """The operator could not log in to a nation's Vault (no ServiceAccount token, no CA, or refused)."""


def normalized_address(address: str) -> str:
    return address.strip().rstrip("/").lower()


@dataclass(frozen=True)
class _Key:
    address: str
    auth_mount: str
    ca_digest: str | None  # a changed CA bundle makes a new client


@dataclass
class _Session:
    client: hvac.Client
    login_again_at: float  # time.monotonic()


class VaultClients:
    """The platform's client, and one cached, logged-in client per nation's Vault."""

    def __init__(self, config: OperatorConfig, api: ApiClient, platform: hvac.Client) -> None:
        self.config, self.api, self.platform = config, api, platform
        self._sessions: dict[_Key, _Session] = {}
        self._key_locks: dict[_Key, threading.Lock] = {}
        self._guard = threading.Lock()
        self._ca_dir: Path | None = None

    def is_platform(self, spec: TenantSpec) -> bool:
        return spec.vault is None or normalized_address(spec.vault.address) == normalized_address(
            self.config.vault_addr
        )

    def address_for(self, spec: TenantSpec) -> str:
        if spec.vault is None or self.is_platform(spec):
            return self.config.vault_addr
        return spec.vault.address

    def for_tenant(self, spec: TenantSpec) -> hvac.Client:
        """The client for the Vault that holds this Tenant's keys, logged in (again, if its token is due)."""
        return self.platform if self.is_platform(spec) else self._nation_client(spec)

    def forget(self, spec: TenantSpec) -> None:
        """Drop the cached login of the Tenant's Vault: the next pass logs in afresh.

        Called when that Vault answered 403 (token expired or revoked early). The failing pass is not
        repeated on the spot, so a step that already ran (a rotation) is never done twice in one pass.
        """
        if self.is_platform(spec) or spec.vault is None:
            return
        address = normalized_address(spec.vault.address)
        with self._guard:
            for key in [key for key in self._sessions if key.address == address]:
                self._sessions.pop(key, None)

    # -- a nation's Vault -------------------------------------------------------------------------------

    def _nation_client(self, spec: TenantSpec) -> hvac.Client:
        assert spec.vault is not None
        ca_bundle = self._ca_bundle(spec)
        key = _Key(
            normalized_address(spec.vault.address),
            spec.vault.auth_mount,
            hashlib.sha256(ca_bundle.encode()).hexdigest() if ca_bundle else None,
        )
        with self._guard:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:  # one login at a time per Vault; the others wait and reuse it
            session = self._sessions.get(key)
            if session is not None and time.monotonic() < session.login_again_at:
                return session.client
            verify: bool | str = self._ca_file(ca_bundle) if ca_bundle else True
            try:
                client, ttl = vault_client.kubernetes_login(
                    spec.vault.address,
                    spec.vault.auth_mount,
                    self.config.nation_vault_role,
                    self._service_account_token(),
                    verify=verify,
                )
            except vault_client.VAULT_ERRORS as error:
                with self._guard:
                    self._sessions.pop(key, None)
                if isinstance(error, hvac.exceptions.VaultError):
                    role, mount = self.config.nation_vault_role, spec.vault.auth_mount
                    raise VaultLoginFailed(
                        f"Vault at {spec.vault.address} refused the operator's login (role {role} at "
                        f"auth/{mount}): {type(error).__name__}: {error}"
                    ) from error
                raise
            # A token without a TTL (lease_duration 0) does not expire: keep it until a 403.
            login_again_at = time.monotonic() + (ttl * RENEW_AT_FRACTION if ttl > 0 else float("inf"))
            with self._guard:
                self._sessions[key] = _Session(client, login_again_at)
            log.info("logged in to Vault at %s as role %s", spec.vault.address, self.config.nation_vault_role)
            return client

    def _service_account_token(self) -> str:
        """In a pod, the projected token (the kubelet keeps it fresh); elsewhere, a TokenRequest.

        k8s docs: /docs/concepts/security/service-accounts/#get-a-token
        """
        token_file = Path(self.config.service_account_token_file)
        if token_file.is_file():
            return token_file.read_text().strip()
        namespace, name = self.config.operator_service_account.split("/", 1)
        try:
            return kube.create_namespaced_service_account_token(
                self.api, namespace, name, expiration_seconds=TOKEN_REQUEST_SECONDS
            )
        except ApiException as error:
            raise VaultLoginFailed(
                f"no ServiceAccount token for {namespace}/{name}: TokenRequest {error.status} {error.reason}"
            ) from error

    def _ca_bundle(self, spec: TenantSpec) -> str | None:
        return read_ca_bundle(self.api, spec)

    def _ca_file(self, ca_bundle: str) -> str:
        """requests verifies TLS against a file path: write the bundle once, named by its digest."""
        with self._guard:
            if self._ca_dir is None:
                self._ca_dir = Path(tempfile.mkdtemp(prefix="sovereign-vault-ca-"))
            path = self._ca_dir / f"{hashlib.sha256(ca_bundle.encode()).hexdigest()}.pem"
            if not path.exists():
                path.write_text(ca_bundle)
        return str(path)


def read_ca_bundle(api: ApiClient, spec: TenantSpec) -> str | None:
    """The PEM CA bundle the Tenant's own Vault is verified with (spec.vault.caBundleSecretRef); None when
    the Tenant names none (the system's trust store). Raises VaultLoginFailed if the Secret is unreadable."""
    reference = spec.vault.ca_bundle_secret_ref if spec.vault else None
    if reference is None:
        return None
    try:
        value = kube.read_secret_value(api, reference.namespace, reference.name, reference.key)
    except ApiException as error:
        raise VaultLoginFailed(
            f"CA bundle Secret {reference.namespace}/{reference.name}: {error.status} {error.reason}"
        ) from error
    if not value:
        raise VaultLoginFailed(
            f"CA bundle Secret {reference.namespace}/{reference.name} has no key {reference.key!r}"
        )
    return value


def vault_ca_for_tenant(config: OperatorConfig, api: ApiClient, spec: TenantSpec) -> str | None:
    """The PEM CA the nation's processes verify the Vault holding its keys with: the platform Vault's
    (the file VAULT_CACERT names) or the nation's own caBundle; None: the system's trust store."""
    own = spec.vault is not None and normalized_address(spec.vault.address) != normalized_address(
        config.vault_addr
    )
    if own:
        return read_ca_bundle(api, spec)
    return Path(config.vault_cacert).read_text() if config.vault_cacert else None
