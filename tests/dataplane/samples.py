"""The data-plane tests' sample: EST and FRA, each with a transit key, the ACL policy the operator writes
for a nation and a token under it, in a Vault of the tests' own (`prepare_nations`; the fixture
`dataplane_vault` is in tests/dataplane/conftest.py); markings and chunks to build indexes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import hvac
import numpy as np

from sovereign.clients.vault import create_transit_key, ensure_secrets_engine, write_acl_policy
from sovereign.dataplane import Chunk
from sovereign.domain.markings import Markings
from sovereign.domain.nations import tenant_namespace, transit_key_name
from sovereign.platform_setup import nation_policy_for_namespace
from tests.servers import VaultServer

NATIONS = ("EST", "FRA")
TRANSIT = "transit"


@dataclass(frozen=True)
class DataplaneVault:
    url: str
    root_token: str
    tokens: dict[str, str]  # nation → a token under that nation's Vault policy only
    ca_cert: Path  # what OpenBao's TLS certificate is verified with

    def client_for(self, nation: str) -> hvac.Client:
        return hvac.Client(url=self.url, token=self.tokens[nation], verify=str(self.ca_cert))


def prepare_nations(server: VaultServer, nations: tuple[str, ...] = NATIONS) -> DataplaneVault:
    """Transit, each nation's key, sovereign-nation's rules for it, and a token per nation."""
    root = server.client()
    ensure_secrets_engine(root, TRANSIT, "transit")
    tokens = {}
    for nation in nations:
        create_transit_key(root, TRANSIT, transit_key_name(nation), "aes256-gcm96")
        # sovereign-nation's rules with the namespace written in (a root-made token has no Kubernetes alias)
        policy = f"nation-{tenant_namespace(nation)}"
        write_acl_policy(root, policy, nation_policy_for_namespace(tenant_namespace(nation)))
        tokens[nation] = root.auth.token.create(policies=[policy], ttl="1h")["auth"]["client_token"]
    return DataplaneVault(server.url, server.root_token, tokens, server.ca_cert)


def est_markings(classification: str = "NATO UNCLASSIFIED", **fields: object) -> Markings:
    return Markings.model_validate({"owner": "EST", "classification": classification, **fields})


def sample_chunks(count: int, markings: list[Markings], dataset: str = "est/field-reports") -> list[Chunk]:
    """`count` chunks cycling through `markings`, each text carrying a unique canary."""
    return [
        Chunk(
            dataset,
            f"doc-{i // 3}",
            f"doc-{i // 3}#{i % 3}",
            f"report {i} CANARY-{i:06d}-XQZ",
            markings[i % len(markings)],
        )
        for i in range(count)
    ]


def unit_vectors(count: int, dimensions: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dimensions)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
