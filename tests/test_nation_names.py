"""Every name the platform derives from a nation comes from sovereign.domain.nations: here, as data."""

from __future__ import annotations

import pytest

from sovereign.domain import nations


def test_every_name_of_a_nation() -> None:
    assert {
        "folder": nations.nation_folder("EST"),
        "namespace": nations.tenant_namespace("EST"),
        "service account": nations.SERVING_SERVICE_ACCOUNT,
        "rayservice": nations.rayservice_name("EST"),
        "data claim": nations.data_claim_name("EST"),
        "vault role": nations.vault_role_name("EST"),
        "vault policy": nations.NATION_VAULT_POLICY,
        "transit key": nations.transit_key_name("EST"),
        "issuer key": nations.issuer_key_name("EST"),
        "gateway key": nations.gateway_key_name("EST"),
        "kv prefix": nations.kv_prefix("EST"),
        "legacy kv prefix": nations.legacy_kv_prefix("EST"),
        "dev issuer": nations.dev_issuer("EST"),
        "dev audience": nations.dev_audience("EST"),
        "route prefix": nations.gateway_route_prefix("EST"),
        "gateway application": nations.gateway_application_name("EST"),
        "model application": nations.model_application_name("EST", "analyst"),
        "retriever application": nations.retriever_application_name("EST"),
        "actor namespace": nations.GATEWAY_ACTOR_NAMESPACE,
        "quota actor": nations.quota_actor_name("EST"),
        "audit writer": nations.audit_writer_name("EST"),
        "served model": nations.served_model_name("EST", "analyst"),
        "dataset": nations.dataset_name("EST", "manuals"),
        "rule prefix": nations.nation_rule_prefix("EST"),
    } == {
        "folder": "est",
        "namespace": "tenant-est",
        "service account": "model-serving",
        "rayservice": "est-serving",
        "data claim": "est-data",
        "vault role": "tenant-est",
        "vault policy": "sovereign-nation",
        "transit key": "tenant-est",
        "issuer key": "tenant-est-issuer",
        "gateway key": "tenant-est-gateway",
        "kv prefix": "tenants/tenant-est",
        "legacy kv prefix": "tenants/est",
        "dev issuer": "https://identity.sovereign.local/est",
        "dev audience": "sovereign-est",
        "route prefix": "/est",
        "gateway application": "est-gateway",
        "model application": "est-analyst",
        "retriever application": "est-retriever",
        "actor namespace": "sovereign-gateway",
        "quota actor": "est-gateway-quota",
        "audit writer": "est-audit-writer",
        "served model": "est/analyst",
        "dataset": "est/manuals",
        "rule prefix": "est/",
    }


@pytest.mark.parametrize(
    ("namespace", "nation"),
    [("tenant-est", "EST"), ("tenant-fra", "FRA"), ("sovereign-system", None), ("default", None)],
)
def test_a_namespace_names_its_nation(namespace: str, nation: str | None) -> None:
    assert nations.nation_of_namespace(namespace) == nation
    if nation is not None:
        assert nations.tenant_namespace(nation) == namespace
