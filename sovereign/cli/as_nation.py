"""What the CLI does as a nation, with the nation's own credentials: log in to Vault with a short-lived
token of its `model-serving` ServiceAccount (TokenRequest) through Kubernetes auth, role `tenant-<nation>`;
sign a user's token with the nation's dev issuer key, which stays in Vault (transit `sign`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import hvac

from sovereign.clients.kubernetes import create_namespaced_service_account_token
from sovereign.clients.vault import kubernetes_login, read_transit_key, sign_with_transit_key
from sovereign.domain.nations import (
    SERVING_SERVICE_ACCOUNT,
    issuer_key_name,
    tenant_namespace,
    vault_role_name,
)
from sovereign.identity.signed_tokens import compact_jwt, latest_signing_key, signing_input


class NoIssuerKey(RuntimeError):
    """The nation has no dev issuer key in Vault (its Tenant is not Ready, or names its own issuer)."""


def login_as_nation(
    api_client: Any,
    address: str,
    nation: str,
    auth_mount: str = "kubernetes",
    verify: bool | str | None = None,
) -> hvac.Client:
    """Vault as the nation. Raises Vault errors (VAULT_ERRORS) or the Kubernetes client's."""
    jwt = create_namespaced_service_account_token(
        api_client, tenant_namespace(nation), SERVING_SERVICE_ACCOUNT
    )
    client, _ = kubernetes_login(address, auth_mount, vault_role_name(nation), jwt, verify=verify)
    return client


def sign_dev_token(
    vault: hvac.Client, transit_mount: str, nation: str, claims: Mapping[str, Any]
) -> tuple[str, str]:
    """(token, kid): `claims` signed EdDSA by the latest version of the nation's issuer key, in Vault."""
    name = issuer_key_name(nation)
    key = read_transit_key(vault, transit_mount, name)
    if key is None:
        raise NoIssuerKey(f"{nation} has no dev issuer key in Vault ({transit_mount}/keys/{name})")
    version, kid = latest_signing_key(key)
    signed = signing_input(kid, claims)
    return compact_jwt(signed, sign_with_transit_key(vault, transit_mount, name, signed, version)), kid
