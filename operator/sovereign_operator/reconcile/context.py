"""What every reconcile step needs: the clients (made once at startup, kept in kopf's memo) and the config."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

import hvac
from kubernetes.client import ApiClient
from kubernetes.dynamic import DynamicClient

from sovereign_operator.config import OperatorConfig
from sovereign_operator.reconcile.tenant_audit import AdminAudit
from sovereign_operator.reconcile.vault_access import VaultClients


@dataclass
class OperatorClients:
    config: OperatorConfig
    api: ApiClient
    dynamic: DynamicClient
    vault: hvac.Client  # the platform's Vault
    vaults: VaultClients  # the Vault of each Tenant: the platform's, or the nation's own (spec.vault)
    # Change handlers and the timer run in kopf's thread pool and may overlap for one Tenant; one lock per
    # nation keeps a rotation or an offboarding from running twice at once.
    # The last rotation request each nation's key was rotated for: a pass that still sees an older status
    # (the timer's snapshot) must not rotate a second time for the same request.
    handled_rotations: dict[str, str] = field(default_factory=dict)
    # Tenants (by uid) whose offboarding has begun: a pass that waited for the lock with an older body must
    # not provision again what offboarding just removed.
    offboarding: set[str] = field(default_factory=set)
    # The nations' admin audit logs (off without config.audit_dir); made from the config.
    audit: AdminAudit = field(init=False)
    _locks: defaultdict[str, threading.Lock] = field(default_factory=lambda: defaultdict(threading.Lock))
    _locks_guard: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.audit = AdminAudit(self.config.audit_dir, self.config.operator_service_account)

    def nation_lock(self, nation: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks[nation]
