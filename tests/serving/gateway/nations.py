"""The gateway tests' nations: Ed25519 dev issuers, Tenants as the operator hands them over, models."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from sovereign.domain.markings import Classification
from sovereign.identity.federation_assertions import KeySigner
from sovereign.identity.tokens import issue_token
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.nation_rules import nation_bundle_rules
from sovereign.serving_contract import GatewayConfig

FAKE_APP = "fake-model"  # one fake application serves every test model


@dataclass(frozen=True)
class Issuer:
    nation: str
    key: Ed25519PrivateKey

    @property
    def url(self) -> str:
        return f"https://identity.test/{self.nation.lower()}"

    @property
    def audience(self) -> str:
        return f"sovereign-{self.nation.lower()}"

    @property
    def kid(self) -> str:
        return f"{self.nation.lower()}-1"

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "alg": "EdDSA", "use": "sig"}]}

    def token(
        self,
        subject: str = "analyst",
        clearance: Classification = Classification.NATO_SECRET,
        ttl_seconds: int = 3600,
        now: float | None = None,
    ) -> str:
        pem = self.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
        return issue_token(
            pem,
            self.kid,
            self.url,
            self.audience,
            self.nation,
            subject,
            clearance,
            ttl_seconds=ttl_seconds,
            now=time.time() if now is None else now,
        )

    def tenant(self, requests_per_minute: int = 600, tokens_per_minute: int = 100_000) -> dict[str, Any]:
        return {
            "spec": {
                "nation": self.nation,
                "clearance": "NATO SECRET",
                "quotas": {"requestsPerMinute": requests_per_minute, "tokensPerMinute": tokens_per_minute},
            },
            "status": {"identity": {"issuer": self.url, "audience": self.audience, "jwks": self.jwks()}},
        }


ISSUERS = {nation: Issuer(nation, Ed25519PrivateKey.generate()) for nation in ("FRA", "DEU", "POL")}

# The unit tests' gateway keys, held in memory (on Ray the gateways sign in a real Vault: nation_vault.py).
GATEWAY_KEYS = {nation: Ed25519PrivateKey.generate() for nation in ("FRA", "DEU", "POL")}


def gateway_jwks(nation: str) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(GATEWAY_KEYS[nation].public_key()))
    return {"keys": [{**public, "kid": f"{nation.lower()}-gateway-1", "alg": "EdDSA", "use": "sig"}]}


def gateway_signer(nation: str) -> KeySigner:
    return KeySigner(GATEWAY_KEYS[nation], f"{nation.lower()}-gateway-1")


def model(
    name: str,
    owner: str,
    task: str = "generate",
    releasable_to: tuple[str, ...] = (),
    classification: str = "NATO RESTRICTED",
    application: str = FAKE_APP,
) -> dict[str, Any]:
    return {
        "name": name,
        "application": application,
        "task": task,
        "maxTokens": 16,
        "markings": {"owner": owner, "classification": classification, "releasableTo": list(releasable_to)},
    }


MODELS = [
    model("fra/analyst", "FRA", releasable_to=("DEU",)),
    model("fra/embed", "FRA", task="embed", releasable_to=("DEU",), classification="NATO UNCLASSIFIED"),
    model("pol/scribe", "POL"),
    model("deu/ghost", "DEU", application="deu-ghost"),  # its application is never deployed
    model("fra/liaison", "FRA"),  # FRA's own only, but FRA's rule discloses it to POL
]

# FRA's own rule: POL's users may invoke `fra/liaison` although its markings release it to no one (the
# recipient rule: the answer's marking then adds POL, `disclosed-by-owner`).
FRA_DISCLOSES_LIAISON = """
@id("liaison-to-pol")
permit (principal, action == Sovereign::Action::"invoke", resource == Sovereign::Model::"fra/liaison")
when { resource.owner == "FRA" && principal.nationality == "POL" };
"""
BUNDLE = PolicyBundle.load().with_nation_rules(
    {"FRA": nation_bundle_rules("FRA", [("liaison", FRA_DISCLOSES_LIAISON)])}
)
KEEP_DEU_OUT = '@id("no-deu") forbid (principal, action, resource) when { principal.nationality == "DEU" };'


def bundle_keeping_deu_out() -> PolicyBundle:
    return BUNDLE.with_nation_rules({"FRA": nation_bundle_rules("FRA", [("keep-out", KEEP_DEU_OUT)])})


def gateway_config(
    nation: str,
    *,
    bundle: PolicyBundle = BUNDLE,
    requests_per_minute: int = 600,
    tokens_per_minute: int = 100_000,
    federation_urls: dict[str, str] | None = None,
    gateway_keys: dict[str, dict[str, Any]] | None = None,
    suspended: tuple[str, ...] = (),
    quotas: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A nation's gateway config; `federation_urls` (owner → its gateway base) as the operator sets them on
    kuberay: other nations' models are then called through their owner's gateway, over HTTP.
    `gateway_keys`: nation → its gateway key set, published in its Tenant's `status.federation` (the
    unit tests' in-memory keys when None); `suspended`: nations whose Tenant is suspended; `quotas`: more
    of the own Tenant's `quotas` (per user, peer caps)."""
    models = [
        {**m, "federationUrl": federation_urls[owner]}
        if federation_urls and (owner := m["markings"]["owner"]) != nation and owner in federation_urls
        else m
        for m in MODELS
    ]
    tenants = [
        issuer.tenant(requests_per_minute, tokens_per_minute) if issuer.nation == nation else issuer.tenant()
        for issuer in ISSUERS.values()
    ]
    keys = {n: gateway_jwks(n) for n in GATEWAY_KEYS} if gateway_keys is None else gateway_keys
    for tenant in tenants:
        nation_of = tenant["spec"]["nation"]
        if nation_of in keys:
            tenant["status"]["federation"] = {"jwks": keys[nation_of]}
        if nation_of in suspended:
            tenant["spec"]["suspended"] = True
        if nation_of == nation and quotas:
            tenant["spec"]["quotas"] = {**tenant["spec"]["quotas"], **quotas}
    tenants.append({"spec": {"nation": "EST", "clearance": "NATO SECRET"}})  # not Ready: no issuer yet
    config = {"nation": nation, "tenants": tenants, "models": models, "bundle": bundle.to_configmap_data()}
    GatewayConfig.model_validate(config)
    return config
