"""The platform's only way to Vault: hvac, so the same code runs against a real Vault and the devstack's."""

from __future__ import annotations

import hvac
import requests


class VaultUnavailable(RuntimeError):
    """Vault could not be reached, is sealed, or refused the token."""


def vault_client(address: str, token: str | None = None, verify: bool | str = True) -> hvac.Client:
    client = hvac.Client(url=address, token=token, verify=verify, timeout=10)
    try:
        health = client.sys.read_health_status(method="GET")
    except requests.RequestException as error:
        raise VaultUnavailable(f"Vault at {address} is unreachable: {error}") from error
    status = health if isinstance(health, dict) else health.json()
    if status.get("sealed"):
        raise VaultUnavailable(f"Vault at {address} is sealed")
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
    client: hvac.Client, mount: str, kubernetes_host: str, pem_keys: list[str] | None = None
) -> None:
    """Point the Kubernetes auth method at the cluster.

    With `pem_keys`, Vault verifies ServiceAccount JWTs locally with those keys; without them it asks the
    cluster's TokenReview API (Vault docs: /vault/api-docs/auth/kubernetes#configure-method).
    """
    client.auth.kubernetes.configure(kubernetes_host=kubernetes_host, pem_keys=pem_keys, mount_point=mount)
