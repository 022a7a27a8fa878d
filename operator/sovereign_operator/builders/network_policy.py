"""The NetworkPolicy that isolates a nation's namespace from every other nation's.

Once a pod is selected by a policy of a given type, only what some policy allows gets through; selecting all
pods for Ingress and Egress makes this policy the namespace's whole allow-list.
k8s docs: /docs/concepts/services-networking/network-policies/#default-policies
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from sovereign.specs.tenant import TenantSpec
from sovereign_operator.constants import (
    NAMESPACE_NAME_LABEL,
    TENANT_NETWORK_POLICY,
    tenant_labels,
    tenant_namespace,
)

DNS_NAMESPACE = "kube-system"
DNS_PORT = 53


def _namespace_named(name: str) -> dict[str, Any]:
    # The API server labels every Namespace with its own name, which a tenant cannot forge on another.
    # k8s docs: /docs/concepts/services-networking/network-policies/#targeting-a-namespace-by-its-name
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}}


# A bare podSelector in a peer selects pods in the policy's own namespace: the nation's Ray cluster.
# k8s docs: /docs/concepts/services-networking/network-policies/#behavior-of-to-and-from-selectors
_SAME_NAMESPACE: dict[str, Any] = {"podSelector": {}}


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
    return [{"to": [{"ipBlock": {"cidr": f"{address}/{address.max_prefixlen}"}}],
             "ports": [{"protocol": "TCP", "port": port}]}]


def build_network_policy_for_tenant(
    spec: TenantSpec, *, platform_namespace: str, vault_namespace: str, vault_port: int
) -> dict[str, Any]:
    ingress = [
        {"from": [dict(_SAME_NAMESPACE)]},
        {"from": [_namespace_named(platform_namespace)]},  # the gateway calls the nation's models
    ]
    egress = [
        {"to": [dict(_SAME_NAMESPACE)]},
        {
            "to": [_namespace_named(DNS_NAMESPACE)],
            "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}],
        },
        {"to": [_namespace_named(platform_namespace)]},
        {"to": [_namespace_named(vault_namespace)], "ports": [{"protocol": "TCP", "port": vault_port}]},
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
