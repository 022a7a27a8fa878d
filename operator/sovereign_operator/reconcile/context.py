"""The operator's context: its configuration, its clients and the state its passes share.

Made once, by the operator's one startup handler (`__main__.py`), from the configuration and the one
Kubernetes API client `python -m sovereign_operator` made for its Lease; kept in kopf's memo. Every handler
reads it with `operator_context(memo)` and hands it (or the clients it holds) to `reconcile/`.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from dataclasses import dataclass, field

import kopf
from kubernetes.client import ApiClient
from kubernetes.dynamic import DynamicClient

from sovereign.clients.kubernetes import dynamic_client
from sovereign.clients.vault import unchecked_vault_client
from sovereign_operator.builders.policy_bundle import BundleRefusal
from sovereign_operator.config import OperatorConfig
from sovereign_operator.reconcile.tenant_audit import AdminAudit
from sovereign_operator.reconcile.vault_access import VaultClients


@dataclass
class OperatorContext:
    config: OperatorConfig
    api: ApiClient  # the one Kubernetes API client (the Lease's too)
    dynamic: DynamicClient  # over `api`; it runs API discovery once
    vaults: VaultClients  # the platform's Vault client, and one logged-in client per nation's own Vault
    # Tenant passes. Change handlers and the timer run in kopf's thread pool and may overlap for one Tenant;
    # one lock per nation keeps a rotation or an offboarding from running twice at once.
    # The last rotation request each nation's key was rotated for: a pass that still sees an older status
    # (the timer's snapshot) must not rotate a second time for the same request.
    handled_rotations: dict[str, str] = field(default_factory=dict)
    # Tenants (by uid) whose offboarding has begun: a pass that waited for the lock with an older body must
    # not provision again what offboarding just removed.
    offboarding: set[str] = field(default_factory=set)
    # The nations' admin audit logs (off without config.audit_dir); made from the config.
    audit: AdminAudit = field(init=False)
    # TenantPolicy passes take turns, so the last one always publishes what is live now.
    policy_lock: threading.Lock = field(default_factory=threading.Lock)
    # The last refused bundle (its verification inputs' key, under the policy lock) and why: a pass on the
    # same bundle and inputs (the retry timer of each refused TenantPolicy) does not verify it again.
    refused_bundle: tuple[str, BundleRefusal] | None = None
    # The serving loop (none with runtime "none"): set at startup, woken by events, cancelled at cleanup.
    serving_wake: asyncio.Event | None = None
    serving_task: asyncio.Task[None] | None = None
    _locks: defaultdict[str, threading.Lock] = field(default_factory=lambda: defaultdict(threading.Lock))
    _locks_guard: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.audit = AdminAudit(self.config.audit_dir, self.config.operator_service_account)

    @classmethod
    def connect(cls, config: OperatorConfig, api: ApiClient) -> OperatorContext:
        """The clients over `api`; Vault is not contacted yet (the operator starts while Vault is down)."""
        platform_vault = unchecked_vault_client(
            config.vault_addr, config.vault_token, verify=config.vault_cacert
        )
        return cls(
            config=config,
            api=api,
            dynamic=dynamic_client(api),
            vaults=VaultClients(config, api, platform_vault),
        )

    def nation_lock(self, nation: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks[nation]


def operator_context(memo: kopf.Memo) -> OperatorContext:
    """The context in kopf's memo (each object's memo, and the webhooks', is a shallow copy: the same one)."""
    context: OperatorContext = memo.context
    return context
