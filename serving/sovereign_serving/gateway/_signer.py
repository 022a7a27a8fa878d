"""This nation's gateway signing its federation assertions with the nation's gateway key in Vault transit.

The key (`gateway_key_name`, ed25519, not exportable, made by the operator) never leaves Vault: the gateway
logs in as the nation (Kubernetes auth, the `VaultSink` of `GatewayConfig.federation`), reads the key's
public parts for the kid of its latest version (cached KEY_TTL_SECONDS) and asks Vault to sign each
assertion's signing input (`transit/sign/<key>`, which only the nation's own token may). Blocking (hvac):
called in a worker thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import hvac

from sovereign.clients import vault as vault_client
from sovereign.domain.nations import gateway_key_name
from sovereign.identity.federation_assertions import assertion, assertion_signing_input
from sovereign.identity.signed_tokens import latest_signing_key
from sovereign.serving_contract import VaultSink
from sovereign_serving.nation_vault import NationVault

KEY_TTL_SECONDS = 300.0  # how long the latest key version's kid is reused before it is read again


class GatewaySigner:
    """Signs assertions as `nation`'s gateway; the sink says how to log in to Vault as the nation."""

    def __init__(self, nation: str, sink: VaultSink) -> None:
        self.sink = sink
        self._vault = NationVault(sink)
        self._key = gateway_key_name(nation)
        self._latest: tuple[float, int, str] | None = None  # (read at, version, kid)
        self._guard = threading.Lock()

    def _version(self, client: hvac.Client) -> tuple[int, str]:
        with self._guard:
            if self._latest is None or time.monotonic() - self._latest[0] > KEY_TTL_SECONDS:
                key = vault_client.read_transit_key(client, self.sink.transit_mount, self._key)
                if key is None:
                    raise LookupError(f"the gateway key {self._key} does not exist (is the Tenant Ready?)")
                version, kid = latest_signing_key(key)
                self._latest = (time.monotonic(), version, kid)
            return self._latest[1], self._latest[2]

    def sign(self, claims: Mapping[str, Any]) -> str:
        """The compact assertion of `claims`, signed in Vault (once more after a 403: a new login)."""
        for attempt in (1, 2):
            client = self._vault.client()
            try:
                version, kid = self._version(client)
                signed = assertion_signing_input(kid, claims)
                signature = vault_client.sign_with_transit_key(
                    client, self.sink.transit_mount, self._key, signed, version
                )
                return assertion(signed, signature)
            except hvac.exceptions.Forbidden:
                if attempt == 2:
                    raise
                self._vault.forget()
            except ValueError:  # Vault signed with another version: the key was rotated
                if attempt == 2:
                    raise
                self._latest = None
        raise AssertionError("unreachable")
