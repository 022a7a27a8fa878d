"""A nation's token issuer: the one its spec names, or on the devstack a dev issuer the operator makes.

The dev issuer signs with the nation's own ed25519 transit key in Vault (`issuer_key_name`), created not
exportable: the operator creates it and reads its public parts, and only the nation's Vault role may sign
with it (`transit/sign/<key>`), so no private key is ever held by the operator, nor kept in KV, a
ConfigMap, a file or a status. The public key set is published in status.identity and in the ConfigMap
`identity-jwks` in the nation's namespace, where the nation's gateway reads it.

Every nation also gets a gateway key (`gateway_key_name`, ed25519, not exportable, made the same way): its
gateway signs with it, as the nation, the assertions it sends to other nations' federation routes; its public
key set is published in status.federation, from which the other nations' gateways verify them.
"""

from __future__ import annotations

import json
from typing import Any

import hvac
import kopf

from sovereign.clients import vault as vault_client
from sovereign.domain.nations import (
    dev_audience,
    dev_issuer,
    gateway_key_name,
    issuer_key_name,
    legacy_kv_prefix,
    tenant_namespace,
)
from sovereign.identity.federation_assertions import gateway_issuer
from sovereign.identity.signed_tokens import jwks_from_transit_key
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.builders import vault_mounts_for_tenant
from sovereign_operator.builders.conditions import IDENTITY_READY, Condition
from sovereign_operator.constants import tenant_labels
from sovereign_operator.reconcile.context import OperatorContext
from sovereign_operator.reconcile.objects import Outcome, ensure_object

JWKS_CONFIGMAP = "identity-jwks"
JWKS_KEY = "jwks.json"


def _remove_legacy_records(vault: hvac.Client, kv_mount: str, nation: str, body: kopf.Body) -> None:
    """Delete, every version, what an earlier release kept under `tenants/<nation>/` (its `identity` record
    held the issuer's private key). Listed and deleted, never read: the operator may not read a nation's
    records (policies/vault/sovereign-operator.hcl)."""
    deleted = vault_client.delete_kv_tree(vault, kv_mount, legacy_kv_prefix(nation))
    if deleted:
        message = f"{len(deleted)} records under KV {legacy_kv_prefix(nation)}/ deleted, every version"
        kopf.info(dict(body), reason="LegacyRecordsRemoved", message=message)


def _issuer_key(vault: hvac.Client, transit_mount: str, nation: str, body: kopf.Body) -> dict[str, Any]:
    return _signing_key(
        vault, transit_mount, issuer_key_name(nation), body, "IssuerCreated", dev_issuer(nation)
    )


def _signing_key(
    vault: hvac.Client, transit_mount: str, name: str, body: kopf.Body, reason: str, purpose: str
) -> dict[str, Any]:
    key = vault_client.read_transit_key(vault, transit_mount, name)
    if key is None:
        # Creating an existing key is a no-op in Vault: two racing passes leave one key.
        vault_client.create_signing_key(vault, transit_mount, name)
        kopf.info(dict(body), reason=reason, message=f"{purpose}: key {name}")
        key = vault_client.read_transit_key(vault, transit_mount, name)
        if key is None:
            raise kopf.TemporaryError(f"transit key {name} vanished while it was being created", delay=5)
    return key


def reconcile_identity(
    clients: OperatorContext, vault: hvac.Client, spec: TenantSpec, body: kopf.Body
) -> tuple[Condition, dict[str, Any]]:
    """The IdentityReady condition and what goes into status.identity (issuer key in `vault`, transit)."""
    mounts, nation = vault_mounts_for_tenant(spec), spec.nation
    _remove_legacy_records(vault, mounts.kv, nation, body)
    if spec.identity is not None:
        given = spec.identity
        status = {"issuer": given.issuer, "audience": given.audience, "source": "spec"}
        if given.jwks_uri:
            status["jwksUri"] = given.jwks_uri
        return Condition(IDENTITY_READY, True, "IssuerConfigured", f"tokens from {given.issuer}"), status

    issuer, audience = dev_issuer(nation), dev_audience(nation)
    key = _issuer_key(vault, mounts.transit, nation, body)
    if key.get("exportable") or key.get("allow_plaintext_backup"):
        # Its private key may have left Vault: nothing signed with it can be trusted.
        message = f"transit key {issuer_key_name(nation)} is exportable: it cannot sign for {nation}"
        return Condition(IDENTITY_READY, False, "IssuerKeyExportable", message), {}
    jwks = jwks_from_transit_key(key)
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": JWKS_CONFIGMAP,
            "namespace": tenant_namespace(nation),
            "labels": tenant_labels(nation),
        },
        "data": {
            JWKS_KEY: json.dumps(jwks, sort_keys=True),
            "issuer": issuer,
            "audience": audience,
        },
    }
    if ensure_object(clients.dynamic, configmap) is not Outcome.unchanged:
        kopf.info(dict(body), reason="JwksPublished", message=f"ConfigMap {JWKS_CONFIGMAP} written")
    status = {"issuer": issuer, "audience": audience, "jwks": jwks, "source": "dev"}
    return Condition(IDENTITY_READY, True, "DevIssuer", f"dev issuer {issuer}"), status


def reconcile_gateway_key(vault: hvac.Client, spec: TenantSpec, body: kopf.Body) -> dict[str, Any]:
    """What goes into status.federation: the nation's gateway key set (key in `vault`, transit), from which
    peer gateways verify its federation assertions; empty (no peer accepts them) if the key is exportable."""
    nation, name = spec.nation, gateway_key_name(spec.nation)
    key = _signing_key(
        vault, vault_mounts_for_tenant(spec).transit, name, body, "GatewayKeyCreated", f"{nation}'s gateway"
    )
    if key.get("exportable") or key.get("allow_plaintext_backup"):
        message = f"transit key {name} is exportable: other nations will not accept {nation}'s gateway"
        kopf.warn(dict(body), reason="GatewayKeyExportable", message=message)
        return {}
    return {"issuer": gateway_issuer(nation), "jwks": jwks_from_transit_key(key)}
