"""The platform's only way to Vault: hvac, so the same code runs against a real Vault and the devstack's."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import hvac
import hvac.exceptions
import requests

from sovereign.telemetry import TracedJSONAdapter


class VaultUnavailable(RuntimeError):
    """Vault could not be reached, is sealed, or refused the token."""


class VaultUnreachable(VaultUnavailable):
    """No answer from Vault: down, or a network or TLS failure."""


class VaultSealed(VaultUnavailable):
    """Vault answers but is sealed (or not initialized): it serves no key until an operator unseals it.

    Vault docs: /vault/docs/concepts/seal (a restarted Vault starts sealed).
    """


# What a Vault call raises when Vault is down, sealed or refuses: callers report these and retry later.
VAULT_ERRORS: tuple[type[Exception], ...] = (
    requests.RequestException,
    hvac.exceptions.VaultError,
    VaultUnavailable,
)

UNSEAL_HINT = (
    "an operator of the platform must unseal it (`bao operator unseal` or `vault operator unseal`; "
    "`sovereign vault unseal` on the local platform)"
)


def classify_vault_error(error: BaseException, address: str | None = None) -> VaultUnavailable | None:
    """What a failed Vault call means for a person: VaultSealed (Vault answers but serves no key until it is
    unsealed), VaultUnreachable (no usable answer: down, network or TLS failure), or None for anything else
    (a refusal, an absent path, a bad request: not an outage, so not healed by waiting).

    The error's causes are looked through too (a login failure caused by a sealed Vault is a sealed Vault).
    The answer carries a message saying what to do; its __cause__ is `error`. Never holds a token.
    Vault docs: /vault/api-docs#http-status-codes (503: sealed or down for maintenance),
    /vault/docs/concepts/seal.
    """
    where = f"Vault at {address}" if address else "Vault"
    classified: VaultUnavailable | None = None
    for cause in _causes(error):
        if isinstance(cause, VaultSealed | VaultUnreachable):
            return cause
        if isinstance(cause, hvac.exceptions.VaultNotInitialized):
            classified = VaultSealed(f"{where} is not initialized: it serves no key until it is initialized")
        elif isinstance(cause, hvac.exceptions.VaultDown) and "sealed" in str(cause).lower():
            classified = VaultSealed(f"{where} is sealed: it serves no key until unsealed; {UNSEAL_HINT}")
        elif isinstance(cause, hvac.exceptions.VaultDown):
            classified = VaultUnreachable(f"{where} answers 503 (not serving requests yet); retry later")
        elif isinstance(cause, requests.exceptions.SSLError) and "timed out" in str(cause).lower():
            # A handshake that ran out of time (a new connection to a slow Vault): not a certificate problem.
            classified = VaultUnreachable(
                f"{where} is unreachable: it did not finish the TLS handshake in time; check that it is "
                "running and reachable"
            )
        elif isinstance(cause, requests.exceptions.SSLError):
            classified = VaultUnreachable(
                f"{where} failed the TLS handshake: check that the address is https and that VAULT_CACERT "
                "names the CA that signed Vault's certificate"
            )
        elif isinstance(cause, requests.ConnectionError | requests.Timeout):
            classified = VaultUnreachable(f"{where} is unreachable: check that it is running and reachable")
        if classified is not None:
            classified.__cause__ = error
            return classified
    return None


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__
    return chain


CACERT_ENV = "VAULT_CACERT"  # as Vault's own CLI: the PEM file of the CA that signed Vault's certificate


def tls_verify(verify: bool | str | None = None) -> bool | str:
    """What requests verifies Vault's certificate against: `verify` if given (a CA file, or True for the
    system trust store), else $VAULT_CACERT when set (read now, at call time), else the system trust store.
    Never False: every Vault connection is verified. Vault docs: /vault/docs/commands#vault_cacert
    """
    if verify is False:
        raise ValueError("Vault's TLS certificate is always verified (give a CA file instead of False)")
    if verify is None:
        return os.environ.get(CACERT_ENV) or True
    return verify


def _client(address: str, token: str | None, verify: bool | str | None) -> hvac.Client:
    # Every request is a CLIENT span (sovereign.telemetry); a no-op while tracing is not configured.
    return hvac.Client(
        url=address, token=token, verify=tls_verify(verify), timeout=10, adapter=TracedJSONAdapter
    )


def unchecked_vault_client(
    address: str, token: str | None = None, verify: bool | str | None = None
) -> hvac.Client:
    """A client that does not contact Vault yet: a long-running process starts even while Vault is down.

    `verify`: a CA file, or True for the system trust store; None: $VAULT_CACERT if set, else the system's.
    """
    return _client(address, token, verify)


def vault_client(address: str, token: str | None = None, verify: bool | str | None = None) -> hvac.Client:
    """A client for `address`, checked: Vault answers, is unsealed, and accepts `token` (if given).

    Raises VaultUnreachable (down, network or TLS failure), VaultSealed, or VaultUnavailable (token refused).
    """
    client = _client(address, token, verify)
    try:
        health = client.sys.read_health_status(method="GET")
    except requests.RequestException as error:
        raise VaultUnreachable(f"Vault at {address} is unreachable: {error}") from error
    status = health if isinstance(health, dict) else health.json()
    if status.get("sealed") or status.get("initialized") is False:
        raise VaultSealed(f"Vault at {address} is sealed: it serves no key until it is unsealed")
    if token is not None and not client.is_authenticated():
        raise VaultUnavailable(f"Vault at {address} refused the token")
    return client


def ensure_secrets_engine(
    client: hvac.Client, path: str, engine_type: str, options: dict[str, str] | None = None
) -> bool:
    """Mount `engine_type` at `path` unless it is there already; True if it was mounted now."""
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    existing = mounts.get(f"{path}/")
    if existing is not None:
        if existing["type"] != engine_type:
            raise ValueError(f"Vault path {path}/ holds a {existing['type']} engine, not {engine_type}")
        return False
    client.sys.enable_secrets_engine(backend_type=engine_type, path=path, options=options)
    return True


def ensure_auth_method(client: hvac.Client, path: str, method_type: str) -> bool:
    """Enable the auth method at `path` unless it is there already; True if it was enabled now."""
    methods = client.sys.list_auth_methods()["data"]
    existing = methods.get(f"{path}/")
    if existing is not None:
        if existing["type"] != method_type:
            raise ValueError(f"Vault auth path {path}/ holds a {existing['type']} method, not {method_type}")
        return False
    client.sys.enable_auth_method(method_type=method_type, path=path)
    return True


def configure_kubernetes_auth(
    client: hvac.Client,
    mount: str,
    kubernetes_host: str,
    pem_keys: list[str] | None = None,
    kubernetes_ca_cert: str | None = None,
    token_reviewer_jwt: str | None = None,
) -> None:
    """Point the Kubernetes auth method at the cluster.

    Vault docs: /vault/api-docs/auth/kubernetes#configure-method.

    Every login asks the cluster's TokenReview API whether the ServiceAccount token is still valid; with
    `pem_keys` Vault also checks the JWT's signature itself first (it does not skip the review).
    `kubernetes_ca_cert`: the PEM CA Vault verifies the API server's certificate with.
    `token_reviewer_jwt`: the token Vault calls TokenReview with (a ServiceAccount bound to the ClusterRole
    `system:auth-delegator`); without it Vault calls with each login's own JWT, which then needs that right
    (or, running in a pod, with its own ServiceAccount token).
    """
    client.auth.kubernetes.configure(
        kubernetes_host=kubernetes_host,
        pem_keys=pem_keys,
        kubernetes_ca_cert=kubernetes_ca_cert,
        token_reviewer_jwt=token_reviewer_jwt,
        mount_point=mount,
    )


# -- what the operator keeps in Vault for each nation --------------------------------------------------
# Every read returns None for "absent" so reconcilers can compare desired with live before writing.


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _absent_on_404(call: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R | None:
    try:
        return call(*args, **kwargs)
    except hvac.exceptions.InvalidPath:
        return None


def read_transit_key(client: hvac.Client, mount: str, name: str) -> dict[str, Any] | None:
    """Vault docs: /vault/api-docs/secret/transit#read-key (`keys` maps version → creation time)."""
    response = _absent_on_404(client.secrets.transit.read_key, name=name, mount_point=mount)
    return None if response is None else dict(response["data"])


def create_transit_key(client: hvac.Client, mount: str, name: str, key_type: str) -> None:
    client.secrets.transit.create_key(name=name, key_type=key_type, mount_point=mount)


def create_signing_key(client: hvac.Client, mount: str, name: str) -> None:
    """An ed25519 transit key that never leaves Vault: not exportable, no plaintext backup.

    Vault docs: /vault/api-docs/secret/transit#create-key: `exportable` and `allow_plaintext_backup`
    default to false and can never be turned back off. Only `type` is sent: the operator's policy pins the
    parameters of keys/tenant-* and refuses any other (policies/vault/sovereign-operator.hcl).
    """
    client.secrets.transit.create_key(name=name, key_type="ed25519", mount_point=mount)


def sign_with_transit_key(client: hvac.Client, mount: str, name: str, data: bytes, version: int) -> bytes:
    """Vault signs `data` with version `version` of the key `name` (the caller's token must hold update on
    `<mount>/sign/<name>`); the raw signature bytes.

    Vault docs: /vault/api-docs/secret/transit#sign-data — the answer is `vault:v<N>:<base64 signature>`;
    for ed25519 the input is signed as it is (no prehash) and the signature is 64 bytes.
    """
    response = client.secrets.transit.sign_data(
        name=name,
        hash_input=base64.b64encode(data).decode(),
        key_version=version,
        mount_point=mount,
    )
    prefix, signed_version, signature = str(response["data"]["signature"]).split(":", 2)
    if prefix != "vault" or signed_version != f"v{version}":
        raise ValueError(f"Vault signed with {prefix}:{signed_version}, not version {version} of {name}")
    return base64.b64decode(signature)


def set_transit_key_deletion_allowed(client: hvac.Client, mount: str, name: str, allowed: bool) -> None:
    """Vault docs: /vault/api-docs/secret/transit#deletion_allowed (a key is undeletable until set)."""
    client.secrets.transit.update_key_configuration(name=name, deletion_allowed=allowed, mount_point=mount)


def rotate_transit_key(client: hvac.Client, mount: str, name: str) -> None:
    """Vault docs: /vault/api-docs/secret/transit#rotate-key (old versions still decrypt)."""
    client.secrets.transit.rotate_key(name=name, mount_point=mount)


def delete_transit_key(client: hvac.Client, mount: str, name: str) -> bool:
    """Delete the key and every version of it: data encrypted under it can never be decrypted again."""
    if read_transit_key(client, mount, name) is None:
        return False
    client.secrets.transit.delete_key(name=name, mount_point=mount)
    return True


def read_acl_policy(client: hvac.Client, name: str) -> str | None:
    response = _absent_on_404(client.sys.read_acl_policy, name=name)
    return None if response is None else str(response["data"]["policy"])


def write_acl_policy(client: hvac.Client, name: str, hcl: str) -> None:
    client.sys.create_or_update_acl_policy(name=name, policy=hcl)


def read_kubernetes_role(client: hvac.Client, mount: str, name: str) -> dict[str, Any] | None:
    response = _absent_on_404(client.auth.kubernetes.read_role, name=name, mount_point=mount)
    return None if response is None else dict(response)


def write_kubernetes_role(client: hvac.Client, mount: str, name: str, body: dict[str, str]) -> None:
    """Create or update the role with exactly `body` (its fields as Vault names them, lists as comma
    strings), sent as it is: hvac's create_role would turn strings into JSON lists and add `policies` and
    `ttl`, which a policy pinning the role's parameters (allowed_parameters) refuses.
    Vault docs: /vault/api-docs/auth/kubernetes#create-role
    """
    client.adapter.post(f"/v1/auth/{mount}/role/{name}", json=body)


def delete_kubernetes_role(client: hvac.Client, mount: str, name: str) -> bool:
    if read_kubernetes_role(client, mount, name) is None:
        return False
    client.auth.kubernetes.delete_role(name=name, mount_point=mount)
    return True


def read_kv(client: hvac.Client, mount: str, path: str) -> dict[str, Any] | None:
    """The latest version's data of a KV v2 secret, or None if there is none (or it was deleted)."""
    response = _absent_on_404(
        client.secrets.kv.v2.read_secret_version, path=path, mount_point=mount, raise_on_deleted_version=True
    )
    return None if response is None else dict(response["data"]["data"])


def write_kv(
    client: hvac.Client, mount: str, path: str, data: dict[str, Any], only_if_absent: bool = False
) -> None:
    """With `only_if_absent`, check-and-set 0 so a concurrent writer cannot be overwritten.

    Vault docs: /vault/api-docs/secret/kv/kv-v2#create-update-secret (cas=0: write only if absent).
    """
    client.secrets.kv.v2.create_or_update_secret(
        path=path, secret=data, cas=0 if only_if_absent else None, mount_point=mount
    )


def list_kv_paths(client: hvac.Client, mount: str, prefix: str) -> list[str]:
    """Every secret path below `prefix` (recursively over LIST; folders end with `/`)."""
    response = _absent_on_404(client.secrets.kv.v2.list_secrets, path=prefix, mount_point=mount)
    if response is None:
        return []
    paths = []
    for entry in response["data"]["keys"]:
        child = f"{prefix.rstrip('/')}/{entry}"
        paths.extend(list_kv_paths(client, mount, child) if entry.endswith("/") else [child])
    return paths


def delete_kv(client: hvac.Client, mount: str, path: str) -> None:
    """Delete one secret with all its versions and metadata (absent: nothing to do).

    Vault docs: /vault/api-docs/secret/kv/kv-v2#delete-metadata-and-all-versions
    """
    client.secrets.kv.v2.delete_metadata_and_all_versions(path=path, mount_point=mount)


def delete_kv_tree(client: hvac.Client, mount: str, prefix: str) -> list[str]:
    """Delete every secret below `prefix` with all its versions and metadata; returns the deleted paths.

    Vault docs: /vault/api-docs/secret/kv/kv-v2#delete-metadata-and-all-versions
    """
    paths = list_kv_paths(client, mount, prefix)
    for path in paths:
        client.secrets.kv.v2.delete_metadata_and_all_versions(path=path, mount_point=mount)
    return paths


# -- logging in with Kubernetes auth (a nation's own Vault) -----------------------------------------------


def kubernetes_login(
    address: str, mount: str, role: str, jwt: str, verify: bool | str | None = None
) -> tuple[hvac.Client, int]:
    """A client for `address` holding the token of a Kubernetes auth login, and that token's TTL in seconds.

    Vault docs: /vault/api-docs/auth/kubernetes#login — the JWT is a ServiceAccount token; the answer's
    `auth.client_token` is the Vault token and `auth.lease_duration` its TTL. Neither is ever logged.
    """
    client = unchecked_vault_client(address, verify=verify)
    response = client.auth.kubernetes.login(role=role, jwt=jwt, use_token=True, mount_point=mount)
    return client, int(response["auth"].get("lease_duration") or 0)


def is_permission_denied(error: BaseException) -> bool:
    """Vault answered 403: the token expired, was revoked, or its policy does not allow the call."""
    return isinstance(error, hvac.exceptions.Forbidden)


# -- envelope encryption with a nation's transit key (the audit log) ----------------------------------------


def generate_data_key(client: hvac.Client, mount: str, key_name: str) -> tuple[bytes, str]:
    """A fresh 256-bit data key: its plaintext (keep it in memory only) and its `vault:vN:` wrapped form.

    Two calls: `datakey/wrapped` (Vault makes the key and answers only its ciphertext, so the plaintext
    never crosses the wire at creation) and one `decrypt` of it for the writer's memory.
    Vault docs: /vault/api-docs/secret/transit#generate-data-key
    """
    response = client.secrets.transit.generate_data_key(
        name=key_name, key_type="wrapped", bits=256, mount_point=mount
    )
    wrapped = str(response["data"]["ciphertext"])
    [plaintext] = decrypt_data_keys(client, mount, key_name, [wrapped])
    if plaintext is None:
        raise RuntimeError(f"Vault could not unwrap the data key it just made with {key_name}")
    return plaintext, wrapped


def decrypt_data_keys(
    client: hvac.Client, mount: str, key_name: str, wrapped: list[str]
) -> list[bytes | None]:
    """Unwrap data keys in one batch call: each key, or None where Vault could not decrypt that item.

    Raises hvac.exceptions.Forbidden (403) when the token may not decrypt with `key_name` at all.
    Vault docs: /vault/api-docs/secret/transit#decrypt-data (batch_input; a failing item carries `error`).
    """
    if not wrapped:
        return []
    response = client.secrets.transit.decrypt_data(
        name=key_name, batch_input=[{"ciphertext": item} for item in wrapped], mount_point=mount
    )
    return [
        None if result.get("error") else base64.b64decode(result["plaintext"])
        for result in response["data"]["batch_results"]
    ]
