"""kstatus-style conditions on a Tenant's status: Ready plus one condition per provisioning step.

Each condition has type, status ("True"/"False"/"Unknown"), reason (CamelCase), message,
lastTransitionTime (changes only when status changes) and observedGeneration.
k8s docs: /docs/reference/using-api/api-concepts/ and the API conventions' "Typical status properties"
(metav1.Condition); kstatus reads Ready and observedGeneration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

READY = "Ready"
NAMESPACE_READY = "NamespaceReady"
KEYS_READY = "KeysReady"
IDENTITY_READY = "IdentityReady"
STEP_CONDITIONS = (NAMESPACE_READY, KEYS_READY, IDENTITY_READY)

# Why KeysReady is False when Vault failed. Sealed and unreachable are outages: the operator retries, and the
# Tenant is Ready again by itself once Vault is back and unsealed.
VAULT_SEALED = "VaultSealed"
VAULT_UNREACHABLE = "VaultUnreachable"
VAULT_LOGIN_FAILED = "VaultLoginFailed"  # a nation's own Vault refused the operator's login
VAULT_ERROR = "VaultError"  # Vault answered with another error (a refused token, a bad request)
# Vault has no policy sovereign-nation: platform setup was not run on it (the operator cannot write it).
NATION_POLICY_MISSING = "NationPolicyMissing"


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool | None  # None: Unknown (the step was not reached)
    reason: str
    message: str = ""


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status_word(status: bool | None) -> str:
    return "Unknown" if status is None else ("True" if status else "False")


def status_is_ready(status: Mapping[str, Any]) -> bool:
    """Whether a stored status (any kind's) says Ready=True."""
    return any(c.get("type") == READY and c.get("status") == "True" for c in status.get("conditions") or [])


def stored_condition(stored: Mapping[str, Any]) -> Condition:
    """A stored condition (`merge_conditions`' form) as a Condition, to write again as it is."""
    status = {"True": True, "False": False}.get(str(stored.get("status")))
    message = str(stored.get("message") or "")
    return Condition(str(stored.get("type")), status, str(stored.get("reason")), message)


def ready_from_steps(steps: list[Condition]) -> Condition:
    """Ready is True when every step is; else it carries the first failing step's reason and message."""
    for step in steps:
        if step.status is not True:
            return Condition(READY, False, step.reason, step.message or f"{step.type} is not True")
    return Condition(READY, True, "Provisioned", "namespace, keys and identity are in place")


def merge_conditions(
    live: list[dict[str, Any]] | None, wanted: list[Condition], generation: int | None
) -> list[dict[str, Any]]:
    """The conditions to store: `wanted`, keeping each live lastTransitionTime whose status did not change."""
    by_type = {c.get("type"): c for c in live or []}
    merged = []
    for condition in wanted:
        previous = by_type.get(condition.type) or {}
        status = _status_word(condition.status)
        unchanged = previous.get("status") == status and previous.get("lastTransitionTime")
        merged.append(
            {
                "type": condition.type,
                "status": status,
                "reason": condition.reason,
                "message": condition.message,
                "lastTransitionTime": previous["lastTransitionTime"] if unchanged else now_rfc3339(),
                "observedGeneration": generation,
            }
        )
    return merged


def status_changes(live_status: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The fields of `wanted` whose values differ from the live status (empty: nothing to write)."""
    return {key: value for key, value in wanted.items() if live_status.get(key) != value}
