"""A nation's token issuer: the one its spec names, or on the devstack a dev issuer the operator makes.

The dev issuer's Ed25519 private key is created once and kept only in the nation's KV path in Vault; its
public half is published as a JSON Web Key Set in status.identity and in the ConfigMap `identity-jwks` in
the nation's namespace, where the nation's gateway reads it.
JWK for Ed25519: RFC 8037 (kty OKP, crv Ed25519); key id: RFC 7638 thumbprint.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from typing import Any

import hvac
import kopf
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovereign.clients import vault as vault_client
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.builders import vault_mounts_for_tenant
from sovereign_operator.constants import operator_kv_record, tenant_labels, tenant_namespace
from sovereign_operator.reconcile.conditions import IDENTITY_READY, Condition
from sovereign_operator.reconcile.context import OperatorClients
from sovereign_operator.reconcile.objects import Outcome, ensure_object

JWKS_CONFIGMAP = "identity-jwks"
JWKS_KEY = "jwks.json"


def dev_issuer(nation: str) -> str:
    return f"https://identity.sovereign.local/{nation.lower()}"


def dev_audience(nation: str) -> str:
    return f"sovereign-{nation.lower()}"


def identity_path(nation: str) -> str:
    return operator_kv_record(nation, "identity")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(private_pem: str) -> dict[str, str]:
    private = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = _b64url(raw)
    # RFC 7638: the thumbprint hashes the required members in lexicographic order, without spaces.
    thumbprint = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True)
    kid = _b64url(hashlib.sha256(thumbprint.encode()).digest())
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}


def _new_private_pem() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )


def reconcile_identity(
    clients: OperatorClients, vault: hvac.Client, spec: TenantSpec, body: kopf.Body
) -> tuple[Condition, dict[str, Any]]:
    """The IdentityReady condition and what goes into status.identity (dev issuer key in `vault`)."""
    if spec.identity is not None:
        given = spec.identity
        status = {"issuer": given.issuer, "audience": given.audience, "source": "spec"}
        if given.jwks_uri:
            status["jwksUri"] = given.jwks_uri
        return Condition(IDENTITY_READY, True, "IssuerConfigured", f"tokens from {given.issuer}"), status

    mounts, nation = vault_mounts_for_tenant(spec), spec.nation
    stored = vault_client.read_kv(vault, mounts.kv, identity_path(nation))
    if stored is None:
        pem = _new_private_pem()
        record = {
            "privateKeyPem": pem,
            "kid": public_jwk(pem)["kid"],
            "issuer": dev_issuer(nation),
            "audience": dev_audience(nation),
        }
        # Check-and-set 0: two racing writers cannot leave two different keys behind.
        with contextlib.suppress(hvac.exceptions.InvalidRequest):
            vault_client.write_kv(vault, mounts.kv, identity_path(nation), record, only_if_absent=True)
        stored = vault_client.read_kv(vault, mounts.kv, identity_path(nation)) or record
        kopf.info(dict(body), reason="IssuerCreated", message=f"dev issuer {record['issuer']} created")

    jwks = {"keys": [public_jwk(str(stored["privateKeyPem"]))]}
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
            "issuer": str(stored["issuer"]),
            "audience": str(stored["audience"]),
        },
    }
    if ensure_object(clients.dynamic, configmap) is not Outcome.unchanged:
        kopf.info(dict(body), reason="JwksPublished", message=f"ConfigMap {JWKS_CONFIGMAP} written")
    status = {"issuer": stored["issuer"], "audience": stored["audience"], "jwks": jwks, "source": "dev"}
    return Condition(IDENTITY_READY, True, "DevIssuer", f"dev issuer {stored['issuer']}"), status
