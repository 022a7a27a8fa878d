"""What the operator has made for nations, found by listing Vault and the API (never by guessed names).

Shared by the crash-safety and Vault-unreachable tests: `inventory()` before and after, compared with
`nation_artifacts(nation)`, shows both what is missing and what is orphaned.
"""

from __future__ import annotations

import json
from typing import Any

import hvac
from kubernetes.client import CoreV1Api

from sovereign.clients.kubernetes import load_api_client
from tests.helpers import kubectl
from tests.operator.harness import Platform


def _listed(call: Any, *args: Any, **kwargs: Any) -> set[str]:
    """The `keys` of a Vault LIST, or nothing when Vault answers 404 (an empty list)."""
    try:
        response = call(*args, **kwargs)
    except hvac.exceptions.InvalidPath:
        return set()
    data = response.get("data", response) if isinstance(response, dict) else {}
    return set(data.get("keys") or [])


def inventory(platform: Platform) -> set[str]:
    """Everything a nation can own, as `kind:name` strings, read by listing (never by a guessed name)."""
    vault: hvac.Client = platform.root_vault()
    items = {f"transit-key:{k}" for k in _listed(vault.secrets.transit.list_keys, mount_point="transit")}
    items |= {f"role:{r}" for r in _listed(vault.auth.kubernetes.list_roles, mount_point="kubernetes")}
    items |= {
        f"kv:tenants/{folder}"
        for folder in _listed(vault.secrets.kv.v2.list_secrets, path="tenants", mount_point="secret")
    }
    namespaces = CoreV1Api(load_api_client(str(platform.kube.kubeconfig))).list_namespace().items
    items |= {f"namespace:{ns.metadata.name}" for ns in namespaces if ns.metadata.name.startswith("tenant-")}
    return items


def nation_artifacts(nation: str) -> set[str]:
    name = f"tenant-{nation.lower()}"
    return {
        f"transit-key:{name}",
        f"transit-key:{name}-issuer",  # the dev issuer's signing key
        f"transit-key:{name}-gateway",  # the gateway's signing key (federation assertions)
        f"role:{name}",
        f"kv:tenants/{name}/",
        f"namespace:{name}",
    }


def read_tenant(platform: Platform, nation: str) -> dict[str, Any] | None:
    result = kubectl(platform.kube, "get", "tenant", nation.lower(), "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def is_ready(platform: Platform, nation: str) -> bool:
    conditions = ((read_tenant(platform, nation) or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def is_offboarded(platform: Platform, nation: str) -> bool:
    return read_tenant(platform, nation) is None and not inventory(platform) & nation_artifacts(nation)
