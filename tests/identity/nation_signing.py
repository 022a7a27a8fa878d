"""Tokens signed as a nation in the tests: logged in to Vault as the nation (its `model-serving`
ServiceAccount, Kubernetes auth), signed by its dev issuer key in Vault transit; the same path as
`sovereign token issue`, also for headers and claims the CLI would never make (a forged issuer or kid)."""

from __future__ import annotations

from typing import Any

from sovereign.cli.as_nation import login_as_nation
from sovereign.clients.kubernetes import load_api_client
from sovereign.clients.vault import read_transit_key, sign_with_transit_key
from sovereign.domain.nations import issuer_key_name
from sovereign.identity.signed_tokens import compact_jwt, latest_signing_key, signing_input


def sign_as_nation(
    platform: Any, nation: str, claims: dict[str, Any], kid: str | None = None
) -> tuple[str, str]:
    """(token, kid): `claims` signed by the latest version of `nation`'s issuer key, as the nation, on the
    platform's Vault; the header names `kid` if given, else that version's own kid."""
    vault = login_as_nation(
        load_api_client(str(platform.kube.kubeconfig)),
        platform.vault_url,
        nation,
        verify=str(platform.vault_cacert),
    )
    key = read_transit_key(vault, "transit", issuer_key_name(nation))
    assert key is not None, f"{nation} has no issuer key"
    version, own_kid = latest_signing_key(key)
    signed = signing_input(kid or own_kid, claims)
    signature = sign_with_transit_key(vault, "transit", issuer_key_name(nation), signed, version)
    return compact_jwt(signed, signature), kid or own_kid
