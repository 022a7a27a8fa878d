"""The token store: service tokens with policies, TTLs, parents and revocation of children.

Vault docs: /vault/docs/concepts/tokens and /vault/api-docs/auth/token
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from sovereign_devstack.vault.common import (
    Clock,
    as_bool,
    as_int,
    as_str_list,
    invalid_request,
    parse_duration,
    rfc3339,
)

# Vault's system default/max lease TTL is 32 days (768h).
# Vault docs: /vault/docs/configuration#default_lease_ttl
DEFAULT_TTL = 768 * 3600


def _random_token(prefix: str) -> str:
    # Service tokens look like "hvs." + random characters.
    # Vault docs: /vault/docs/concepts/tokens#token-prefixes
    return prefix + secrets.token_urlsafe(24).replace("-", "A").replace("_", "b")


@dataclass
class TokenEntry:
    id: str
    accessor: str
    policies: list[str]
    path: str
    display_name: str
    creation_time: float
    ttl: int  # seconds; 0 means it never expires (root tokens)
    renewable: bool
    orphan: bool
    parent: str | None
    meta: dict[str, str] | None = None
    explicit_max_ttl: int = 0
    num_uses: int = 0
    children: set[str] = field(default_factory=set)
    expire_at: float | None = None

    def remaining(self, now: float) -> int:
        return 0 if self.expire_at is None else max(0, round(self.expire_at - now))

    def describe(self, now: float) -> dict[str, Any]:
        """The body of auth/token/lookup-self. Vault docs: /vault/api-docs/auth/token#lookup-a-token-self"""
        return {
            "accessor": self.accessor,
            "creation_time": int(self.creation_time),
            "creation_ttl": self.ttl,
            "display_name": self.display_name,
            "entity_id": "",
            "expire_time": None if self.expire_at is None else rfc3339(self.expire_at),
            "explicit_max_ttl": self.explicit_max_ttl,
            "id": self.id,
            "issue_time": rfc3339(self.creation_time),
            "meta": self.meta,
            "num_uses": self.num_uses,
            "orphan": self.orphan,
            "path": self.path,
            "policies": list(self.policies),
            "renewable": self.renewable,
            "ttl": self.remaining(now),
            "type": "service",
        }

    def auth_block(self, now: float) -> dict[str, Any]:
        """The `auth` object of token create and login responses."""
        token_policies = [p for p in self.policies]
        return {
            "client_token": self.id,
            "accessor": self.accessor,
            "policies": token_policies,
            "token_policies": token_policies,
            "identity_policies": None,
            "metadata": self.meta,
            "lease_duration": self.remaining(now),
            "renewable": self.renewable,
            "entity_id": "",
            "token_type": "service",
            "orphan": self.orphan,
            "mfa_requirement": None,
            "num_uses": self.num_uses,
        }


class TokenStore:
    def __init__(self, root_token: str, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self._tokens: dict[str, TokenEntry] = {}
        self._add(
            TokenEntry(
                id=root_token,
                accessor=_random_token(""),
                policies=["root"],
                path="auth/token/root",
                display_name="root",
                creation_time=self.clock.now(),
                ttl=0,
                renewable=False,
                orphan=True,
                parent=None,
            )
        )

    def _add(self, entry: TokenEntry) -> TokenEntry:
        if entry.ttl:
            entry.expire_at = entry.creation_time + entry.ttl
        self._tokens[entry.id] = entry
        if entry.parent and entry.parent in self._tokens:
            self._tokens[entry.parent].children.add(entry.id)
        return entry

    def lookup(self, token: str | None) -> TokenEntry | None:
        """A live token or None; an expired one is revoked on sight.

        Vault docs: /vault/docs/concepts/tokens#token-time-to-live-periodic-tokens-and-explicit-max-ttls
        """
        if not token:
            return None
        entry = self._tokens.get(token)
        if entry is None:
            return None
        if entry.expire_at is not None and self.clock.now() >= entry.expire_at:
            self.revoke(entry.id)
            return None
        return entry

    def use(self, entry: TokenEntry) -> None:
        """Count one use of a limited-use token; the last allowed use revokes it.

        Vault docs: /vault/api-docs/auth/token#num_uses
        """
        if entry.num_uses <= 0:
            return
        entry.num_uses -= 1
        if entry.num_uses == 0:
            self.revoke(entry.id)

    def revoke(self, token: str) -> None:
        """Revoke a token and, recursively, its non-orphan children.

        Vault docs: /vault/docs/concepts/tokens#token-hierarchies-and-orphan-tokens
        """
        entry = self._tokens.pop(token, None)
        if entry is None:
            return
        if entry.parent and entry.parent in self._tokens:
            self._tokens[entry.parent].children.discard(token)
        for child in list(entry.children):
            self.revoke(child)

    def create_child(
        self,
        parent: TokenEntry,
        request: dict[str, Any],
        parent_has_sudo: bool,
        orphan_endpoint: bool = False,
    ) -> TokenEntry:
        """auth/token/create and create-orphan. Vault docs: /vault/api-docs/auth/token#create-token"""
        parent_is_root = "root" in parent.policies
        privileged = parent_is_root or parent_has_sudo
        no_parent = as_bool(request.get("no_parent", False), "no_parent")
        if no_parent and not privileged and not orphan_endpoint:
            raise invalid_request("root or sudo privileges required to create orphan token")
        if request.get("period") and not privileged:
            raise invalid_request("root or sudo privileges required to create periodic token")
        no_default = as_bool(request.get("no_default_policy", False), "no_default_policy")
        policies = as_str_list(request.get("policies"))
        if not policies:
            # "If not specified, defaults to all the policies of the calling token."
            policies = [p for p in parent.policies if p != "default"]
        policies = sorted({p.strip().lower() for p in policies})
        if "root" in policies and not parent_is_root:
            raise invalid_request("root tokens may not be created without parent token being root")
        requested = [p for p in policies if p != "default"]
        if not privileged and not set(requested) <= set(parent.policies):
            # "Non-root tokens can only create child tokens with a subset of their own policies"
            raise invalid_request("child policies must be subset of parent")
        if "root" not in policies and not no_default and "default" not in policies:
            policies.append("default")
        if "root" not in policies and no_default:
            policies = [p for p in policies if p != "default"]
        policies = sorted(set(policies))
        ttl = parse_duration(request.get("ttl") or request.get("lease"), "ttl")
        explicit_max = parse_duration(request.get("explicit_max_ttl"), "explicit_max_ttl")
        period = parse_duration(request.get("period"), "period")
        if period:
            ttl = period
        if not ttl and policies != ["root"]:
            ttl = DEFAULT_TTL
        if explicit_max and (not ttl or ttl > explicit_max):
            ttl = explicit_max
        if not policies:
            raise invalid_request("token must have at least one policy")
        renewable = as_bool(request.get("renewable", True), "renewable") and bool(ttl)
        display_name = str(request.get("display_name") or "")
        display_name = "token" + (f"-{display_name}" if display_name else "")
        meta = request.get("meta")
        if meta is not None and not isinstance(meta, dict):
            raise invalid_request("meta must be a map of strings")
        if request.get("id"):
            if not parent_is_root:
                raise invalid_request("root or sudo privileges required to specify token id")
            token_id = str(request["id"])
            if token_id in self._tokens:
                raise invalid_request("token ID already exists")
        else:
            token_id = _random_token("hvs.")
        orphan = no_parent or orphan_endpoint
        return self._add(
            TokenEntry(
                id=token_id,
                accessor=_random_token(""),
                policies=policies,
                path="auth/token/create-orphan" if orphan_endpoint else "auth/token/create",
                display_name=display_name,
                creation_time=self.clock.now(),
                ttl=ttl,
                renewable=renewable,
                orphan=orphan,
                parent=None if orphan else parent.id,
                meta=meta,
                explicit_max_ttl=explicit_max,
                num_uses=as_int(request.get("num_uses", 0), "num_uses"),
            )
        )

    def create_for_login(
        self,
        policies: list[str],
        ttl: int,
        path: str,
        display_name: str,
        meta: dict[str, str],
        no_default_policy: bool = False,
        max_ttl: int = 0,
    ) -> TokenEntry:
        """A token minted by an auth method's login; such tokens are orphans.

        `max_ttl` (a role's token_max_ttl) caps the TTL and every renewal.
        Vault docs: /vault/api-docs/auth/kubernetes#token_max_ttl
        """
        names = sorted({p.lower() for p in policies} | (set() if no_default_policy else {"default"}))
        ttl = ttl or DEFAULT_TTL
        if max_ttl:
            ttl = min(ttl, max_ttl)
        return self._add(
            TokenEntry(
                id=_random_token("hvs."),
                accessor=_random_token(""),
                policies=names,
                path=path,
                display_name=display_name,
                creation_time=self.clock.now(),
                ttl=ttl,
                renewable=True,
                orphan=True,
                parent=None,
                meta=meta,
                explicit_max_ttl=max_ttl,
            )
        )

    def renew(self, entry: TokenEntry, increment: Any) -> TokenEntry:
        """renew-self: extend from now by `increment` (or the original TTL), bounded by explicit_max_ttl."""
        if not entry.renewable:
            raise invalid_request("lease is not renewable")
        seconds = parse_duration(increment, "increment") or entry.ttl
        now = self.clock.now()
        new_expiry = now + seconds
        if entry.explicit_max_ttl:
            new_expiry = min(new_expiry, entry.creation_time + entry.explicit_max_ttl)
        entry.expire_at = new_expiry
        return entry
