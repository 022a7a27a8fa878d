"""The NetworkPolicy that isolates a nation's namespace from every other nation's.

Once a pod is selected by a policy of a given type, only what some policy allows gets through; selecting all
pods for Ingress and Egress makes this policy the namespace's whole allow-list.
k8s docs: /docs/concepts/services-networking/network-policies/#default-policies

Between nations only one door: TCP 8000 (Ray Serve's proxy, where each nation's gateway listens), from and
to the Ray pods of other Tenants' namespaces, for gateway-to-gateway federation, where the owner of a model
authenticates and decides again. (One policy selects the whole namespace, so the ingress rule admits those
peers on port 8000 of any pod here; only the Ray pods listen on it.)

Into the nation's Ray cluster, by port: the nation's own pods reach every port (GCS, raylet, object manager,
workers: Ray's own traffic); the platform namespace (the operator) reaches only the dashboard, 8265 (Ray Jobs
and Serve REST APIs: the operator submits ingest jobs there; KubeRay's head listens on the pod IP, as the
operator must reach it), and the Serve port; nobody else reaches the dashboard, the GCS (6379), the Ray
Client server (10001) or the metrics port, which run code or tell what runs. A site whose clients or
KubeRay operator come from another namespace adds its own NetworkPolicy for them: policies add up.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from sovereign.domain.nations import tenant_namespace
from sovereign.specs.tenant import TenantSpec
from sovereign_operator.constants import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAMESPACE_NAME_LABEL,
    NATION_LABEL,
    TENANT_NETWORK_POLICY,
    tenant_labels,
)

DNS_NAMESPACE = "kube-system"
DNS_PORT = 53
SERVE_PORT = 8000  # a RayService's Serve proxy (KubeRay's `<name>-serve-svc`), where a gateway listens
DASHBOARD_PORT = 8265  # a RayService's head: Ray's dashboard, with its Jobs and Serve REST APIs


def _namespace_named(name: str) -> dict[str, Any]:
    # The API server labels every Namespace with its own name, which a tenant cannot forge on another.
    # k8s docs: /docs/concepts/services-networking/network-policies/#targeting-a-namespace-by-its-name
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}}


# A bare podSelector in a peer selects pods in the policy's own namespace: the nation's Ray cluster.
# k8s docs: /docs/concepts/services-networking/network-policies/#behavior-of-to-and-from-selectors
_SAME_NAMESPACE: dict[str, Any] = {"podSelector": {}}


def _other_nations_serving(nation: str) -> dict[str, Any]:
    """The Ray pods of every other nation: pods the operator labels as a nation's (its RayService's), in
    namespaces labelled as a Tenant's (build_namespace_for_tenant), other than this nation's own."""
    labelled_as_a_nation = {
        "matchLabels": {MANAGED_BY_LABEL: MANAGED_BY},
        "matchExpressions": [{"key": NATION_LABEL, "operator": "Exists"}],
    }
    return {
        "namespaceSelector": {
            **labelled_as_a_nation,
            "matchExpressions": [
                *labelled_as_a_nation["matchExpressions"],
                {"key": NAMESPACE_NAME_LABEL, "operator": "NotIn", "values": [tenant_namespace(nation)]},
            ],
        },
        "podSelector": labelled_as_a_nation,
    }


def _federation(nation: str) -> dict[str, Any]:
    """Gateway to gateway (federation): another nation's gateway calls this nation's for the models this
    nation owns, and this nation's gateway calls theirs; on the Serve port only, over TCP."""
    return {"peer": _other_nations_serving(nation), "ports": [{"protocol": "TCP", "port": SERVE_PORT}]}


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def _nation_vault_egress(spec: TenantSpec) -> list[dict[str, Any]]:
    """Egress to a nation's own Vault (bring-your-own) when its address is an IP literal.

    A NetworkPolicy peer is a pod/namespace selector or an ipBlock, never a host name
    (k8s docs: /docs/concepts/services-networking/network-policies/#networkpolicy-resource): a Vault
    addressed by name must be reached through an IP address for its nation's pods to be let through.
    """
    if spec.vault is None:
        return []
    url = urlsplit(spec.vault.address)
    try:
        address = ipaddress.ip_address(url.hostname or "")
    except ValueError:
        return []
    port = url.port or (443 if url.scheme == "https" else 8200)
    return [
        {
            "to": [{"ipBlock": {"cidr": f"{address}/{address.max_prefixlen}"}}],
            "ports": [{"protocol": "TCP", "port": port}],
        }
    ]


def build_network_policy_for_tenant(
    spec: TenantSpec, *, platform_namespace: str, vault_namespace: str, vault_port: int
) -> dict[str, Any]:
    federation = _federation(spec.nation)
    ingress = [
        {"from": [dict(_SAME_NAMESPACE)]},
        {"from": [_namespace_named(platform_namespace)], "ports": _tcp(DASHBOARD_PORT, SERVE_PORT)},
        {"from": [federation["peer"]], "ports": federation["ports"]},
    ]
    egress = [
        {"to": [dict(_SAME_NAMESPACE)]},
        {
            "to": [_namespace_named(DNS_NAMESPACE)],
            "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}],
        },
        {"to": [_namespace_named(platform_namespace)]},
        {"to": [_namespace_named(vault_namespace)], "ports": [{"protocol": "TCP", "port": vault_port}]},
        {"to": [federation["peer"]], "ports": federation["ports"]},
        *_nation_vault_egress(spec),
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": TENANT_NETWORK_POLICY,
            "namespace": tenant_namespace(spec.nation),
            "labels": tenant_labels(spec.nation),
        },
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }
