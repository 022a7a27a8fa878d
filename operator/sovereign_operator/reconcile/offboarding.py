"""Offboarding a nation: remove its deployments, crypto-shred its key, remove its Vault and API objects.

A shred record is written first, as `pending`, in the ConfigMap SHRED_RECORDS_CONFIGMAP of the platform
namespace and marked `shredded` at the end; it outlives the Tenant. Every step is idempotent (absent is
done), so a crash anywhere is finished by running the whole sequence again: kopf keeps the finalizer until
the handler returns.
"""

from __future__ import annotations

import json
from typing import Any

import hvac
import kopf

from sovereign.clients import kubernetes as kube
from sovereign.clients import vault as vault_client
from sovereign.domain.nations import (
    gateway_key_name,
    issuer_key_name,
    kv_prefix,
    legacy_kv_prefix,
    tenant_namespace,
    transit_key_name,
    vault_role_name,
)
from sovereign.specs.tenant import TenantSpec
from sovereign_operator import failpoints
from sovereign_operator.builders import vault_mounts_for_tenant
from sovereign_operator.builders.conditions import now_rfc3339
from sovereign_operator.constants import GROUP, SHRED_RECORDS_CONFIGMAP, VERSION
from sovereign_operator.reconcile.context import OperatorContext
from sovereign_operator.reconcile.tenant_audit import record_key_shredded

NAMESPACE_GONE_RETRY_SECONDS = 2


def shred_record_key(nation: str, uid: str) -> str:
    # One data key per shred (ConfigMap keys allow [-._a-zA-Z0-9]); the uid tells two lifetimes apart.
    return f"{nation.lower()}.{uid}"


def offboard(clients: OperatorContext, spec: TenantSpec, body: kopf.Body) -> dict[str, Any]:
    nation, namespace = spec.nation, tenant_namespace(spec.nation)
    removed = _delete_model_deployments(clients, namespace)
    if removed:
        kopf.info(dict(body), reason="DeploymentsRemoved", message=f"{removed} ModelDeployments deleted")
    failpoints.reach("offboard:after-deployments-removed")

    # The Vault that holds the nation's keys: the platform's, or the nation's own (spec.vault).
    vault = clients.vaults.for_tenant(spec)
    record = _pending_record(clients, vault, spec, body)
    _shred_key(clients, vault, spec, body)
    _shred_issuer_key(vault, spec, body)
    _shred_gateway_key(vault, spec, body)
    failpoints.reach("offboard:after-key-shredded")

    # The nation's policy is the shared sovereign-nation (platform setup's): only its role and records go.
    mounts = vault_mounts_for_tenant(spec)
    vault_client.delete_kubernetes_role(vault, mounts.auth, vault_role_name(nation))
    failpoints.reach("offboard:after-vault-role-deleted")
    deleted_paths = vault_client.delete_kv_tree(vault, mounts.kv, kv_prefix(nation))
    deleted_paths += vault_client.delete_kv_tree(vault, mounts.kv, legacy_kv_prefix(nation))
    kopf.info(
        dict(body),
        reason="VaultCleaned",
        message=f"Vault role and {len(deleted_paths)} KV secrets of {nation} deleted",
    )

    if kube.read_object(clients.dynamic, "v1", "Namespace", namespace) is not None:
        kube.delete_object(clients.dynamic, "v1", "Namespace", namespace)
        kopf.info(dict(body), reason="NamespaceDeleting", message=f"namespace {namespace} is being deleted")
        # Namespace deletion empties it first; look again shortly (the whole sequence re-runs idempotently).
        raise kopf.TemporaryError(f"namespace {namespace} is terminating", delay=NAMESPACE_GONE_RETRY_SECONDS)
    failpoints.reach("offboard:after-namespace-deleted")

    record = {**record, "state": "shredded", "shreddedAt": now_rfc3339()}
    _write_record(clients, shred_record_key(nation, body["metadata"]["uid"]), record)
    failpoints.reach("offboard:before-finalizer-removed")
    kopf.info(dict(body), reason="Offboarded", message=f"{nation} offboarded; shred record kept")
    return {"nation": nation, "keyName": record["keyName"], "lastKeyVersion": record["lastKeyVersion"]}


def _delete_model_deployments(clients: OperatorContext, namespace: str) -> int:
    # The ModelDeployment kind may not be served yet: nothing to delete then.
    items = kube.list_objects(clients.dynamic, f"{GROUP}/{VERSION}", "ModelDeployment", namespace)
    for item in items or []:
        kube.delete_object(
            clients.dynamic, f"{GROUP}/{VERSION}", "ModelDeployment", item["metadata"]["name"], namespace
        )
    return len(items or [])


def _pending_record(
    clients: OperatorContext, vault: hvac.Client, spec: TenantSpec, body: kopf.Body
) -> dict[str, Any]:
    """The record of this Tenant's shred, written as pending before anything is destroyed."""
    key = shred_record_key(spec.nation, body["metadata"]["uid"])
    configmap = kube.read_object(
        clients.dynamic, "v1", "ConfigMap", SHRED_RECORDS_CONFIGMAP, clients.config.platform_namespace
    )
    existing = ((configmap or {}).get("data") or {}).get(key)
    if existing is not None:
        return dict(json.loads(existing))  # a previous attempt got this far
    mounts, key_name = vault_mounts_for_tenant(spec), transit_key_name(spec.nation)
    live_key = vault_client.read_transit_key(vault, mounts.transit, key_name)
    record = {
        "nation": spec.nation,
        "tenant": body["metadata"]["name"],
        "keyName": key_name,
        "lastKeyVersion": live_key["latest_version"] if live_key else None,
        "requestedAt": now_rfc3339(),
        "state": "pending",
    }
    _write_record(clients, key, record)
    return record


def _write_record(clients: OperatorContext, key: str, record: dict[str, Any]) -> None:
    namespace = clients.config.platform_namespace
    kube.ensure_namespace(clients.api, namespace)
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": SHRED_RECORDS_CONFIGMAP, "namespace": namespace},
        "data": {key: json.dumps(record, sort_keys=True)},
    }
    if kube.read_object(clients.dynamic, "v1", "ConfigMap", SHRED_RECORDS_CONFIGMAP, namespace) is None:
        kube.create_object(clients.dynamic, manifest)
    else:  # a merge patch adds or replaces this one data key and leaves the other records alone
        kube.merge_patch_object(clients.dynamic, manifest)


def _shred_key(clients: OperatorContext, vault: hvac.Client, spec: TenantSpec, body: kopf.Body) -> None:
    """Crypto-shredding: record it in the nation's audit log, allow deletion, then delete the key with every
    version of it.

    The record comes first: once the key is gone no data key of the log can be unwrapped, so nothing could
    be appended (or read) afterwards — the log of a shredded nation is unreadable by design. A failed record
    stops offboarding here (AuditWriteFailed, retried); a crash after it records the shred twice, never not.
    Vault docs: /vault/api-docs/secret/transit#delete-key (needs deletion_allowed set by key config).
    """
    mounts, key_name = vault_mounts_for_tenant(spec), transit_key_name(spec.nation)
    live_key = vault_client.read_transit_key(vault, mounts.transit, key_name)
    if live_key is None:
        clients.audit.retire(spec.nation)  # a re-run after a crash between the deletion and the retirement
        return
    last_version = live_key.get("latest_version")
    record_key_shredded(
        clients.audit, vault, mounts.transit, body, spec.nation, key_name, int(last_version or 0) or None
    )
    vault_client.set_transit_key_deletion_allowed(vault, mounts.transit, key_name, True)
    vault_client.delete_transit_key(vault, mounts.transit, key_name)
    kopf.info(dict(body), reason="KeyShredded", message=f"Vault transit key {key_name} deleted")
    retired = clients.audit.retire(spec.nation)
    if retired is not None:
        message = f"the audit logs of {spec.nation}, unreadable now, moved to {retired.name}"
        kopf.info(dict(body), reason="AuditSetAside", message=message)


def _shred_issuer_key(vault: hvac.Client, spec: TenantSpec, body: kopf.Body) -> None:
    """The dev issuer's signing key goes with the nation's key: no token can be signed for it any more."""
    mounts, key_name = vault_mounts_for_tenant(spec), issuer_key_name(spec.nation)
    if vault_client.read_transit_key(vault, mounts.transit, key_name) is None:
        return  # a Tenant with its own issuer, or a re-run after the deletion
    vault_client.set_transit_key_deletion_allowed(vault, mounts.transit, key_name, True)
    vault_client.delete_transit_key(vault, mounts.transit, key_name)
    kopf.info(dict(body), reason="IssuerKeyShredded", message=f"Vault transit key {key_name} deleted")


def _shred_gateway_key(vault: hvac.Client, spec: TenantSpec, body: kopf.Body) -> None:
    """The gateway's signing key goes too: no assertion can be signed as the nation's gateway any more."""
    mounts, key_name = vault_mounts_for_tenant(spec), gateway_key_name(spec.nation)
    if vault_client.read_transit_key(vault, mounts.transit, key_name) is None:
        return  # a re-run after the deletion
    vault_client.set_transit_key_deletion_allowed(vault, mounts.transit, key_name, True)
    vault_client.delete_transit_key(vault, mounts.transit, key_name)
    kopf.info(dict(body), reason="GatewayKeyShredded", message=f"Vault transit key {key_name} deleted")
