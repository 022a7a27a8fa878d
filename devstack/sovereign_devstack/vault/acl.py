"""HCL/JSON ACL policies and Vault's path matching, with no I/O so every rule can be unit-tested.

Vault docs: /vault/docs/concepts/policies
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import hcl

from sovereign_devstack.vault.common import invalid_request

# Vault docs: /vault/docs/concepts/policies#capabilities
CAPABILITIES = frozenset({"create", "read", "update", "patch", "delete", "list", "sudo", "deny"})
# Legacy `policy = "write"` shorthands still accepted by Vault's parser.
_LEGACY_POLICY = {
    "deny": {"deny"},
    "read": {"read", "list"},
    "write": {"create", "read", "update", "delete", "list"},
    "sudo": {"create", "read", "update", "delete", "list", "sudo"},
}


@dataclass(frozen=True)
class PathRule:
    """One `path "<pattern>" { capabilities = [...] }` stanza."""

    pattern: str
    capabilities: frozenset[str]

    @property
    def is_glob(self) -> bool:
        # Vault docs: /vault/docs/concepts/policies#policy-syntax ("*" is a glob only as the last character)
        return self.pattern.endswith("*")

    @property
    def plus_segments(self) -> int:
        return self.pattern.split("/").count("+")

    @property
    def is_exact(self) -> bool:
        return not self.is_glob and self.plus_segments == 0

    def matches(self, path: str) -> bool:
        if self.is_exact:
            return path == self.pattern
        stem = self.pattern[:-1] if self.is_glob else self.pattern
        if self.plus_segments == 0:
            return path.startswith(stem)
        # `+` stands for exactly one whole path segment.
        # Vault docs: /vault/docs/concepts/policies#policy-syntax
        pattern_parts = stem.split("/")
        path_parts = path.split("/")
        if len(path_parts) < len(pattern_parts):
            return False
        if not self.is_glob and len(path_parts) != len(pattern_parts):
            return False
        last = len(pattern_parts) - 1
        for index, (part, actual) in enumerate(zip(pattern_parts, path_parts, strict=False)):
            if part == "+":
                continue
            # A trailing glob prefix-matches the last segment (and, implicitly, everything after it).
            matched = actual.startswith(part) if index == last and self.is_glob else actual == part
            if not matched:
                return False
        return True

    def priority(self) -> tuple[int, int, int, int, str]:
        """Sort key, higher wins, built from Vault's documented rules in order.

        Vault docs: /vault/docs/concepts/policies#priority-matching
          1. the first wildcard (+) or glob (*) occurring earlier means lower priority
          2. ending in * means lower priority
          3. more + segments means lower priority
          4. shorter means lower priority
          5. lexicographically smaller means lower priority
        """
        wildcard_positions = [i for i, ch in enumerate(self.pattern) if ch in "+*"]
        first_wildcard = wildcard_positions[0] if wildcard_positions else len(self.pattern)
        return (
            first_wildcard,
            0 if self.is_glob else 1,
            -self.plus_segments,
            len(self.pattern),
            self.pattern,
        )


@dataclass(frozen=True)
class Policy:
    name: str
    text: str
    rules: tuple[PathRule, ...] = field(default=())


def parse_policy(name: str, text: str) -> Policy:
    """Parse HCL (or JSON) policy text; Vault answers 400 "failed to parse policy" on bad input."""
    try:
        document = hcl.loads(text) if text.strip() else {}
    except Exception as exc:  # pyhcl raises several error types for syntax problems
        raise invalid_request(f"failed to parse policy: {exc}") from None
    if not isinstance(document, dict):
        raise invalid_request("failed to parse policy: not an object")
    unknown = set(document) - {"path", "name"}
    if unknown:
        raise invalid_request(f"failed to parse policy: invalid key {sorted(unknown)[0]!r}")
    paths = document.get("path", {})
    if not isinstance(paths, dict):
        raise invalid_request("failed to parse policy: path must be a block")
    rules = []
    for raw_pattern, body in paths.items():
        rules.append(_parse_rule(raw_pattern, body))
    return Policy(name=name, text=text, rules=tuple(rules))


def _parse_rule(raw_pattern: str, body: object) -> PathRule:
    pattern = raw_pattern.lstrip("/")  # Vault trims a leading slash from policy paths
    if not isinstance(body, dict):
        raise invalid_request(f"failed to parse policy: path {raw_pattern!r} must be a block")
    capabilities: set[str] = set()
    for capability in body.get("capabilities", []) or []:
        if capability not in CAPABILITIES:
            raise invalid_request(
                f'failed to parse policy: path "{pattern}": invalid capability "{capability}"'
            )
        capabilities.add(capability)
    legacy = body.get("policy")
    if legacy:
        if legacy not in _LEGACY_POLICY:
            raise invalid_request(f'failed to parse policy: path "{pattern}": invalid policy "{legacy}"')
        capabilities |= _LEGACY_POLICY[legacy]
    if "deny" in capabilities:
        # Vault docs: /vault/docs/concepts/policies#capabilities ("deny ... always takes precedence")
        capabilities = {"deny"}
    return PathRule(pattern=pattern, capabilities=frozenset(capabilities))


class ACL:
    """The merged rules of a token's policies; answers which capabilities a request path has."""

    def __init__(self, policies: Iterable[Policy]) -> None:
        self.is_root = False
        merged: dict[str, set[str]] = {}
        for policy in policies:
            if policy.name == "root":
                self.is_root = True
            for rule in policy.rules:
                # "If the same pattern appears in multiple policies, we take the union of the capabilities."
                # Vault docs: /vault/docs/concepts/policies#priority-matching
                merged.setdefault(rule.pattern, set()).update(rule.capabilities)
        self.rules = [PathRule(pattern, frozenset(caps)) for pattern, caps in merged.items()]

    def winning_rule(self, path: str, is_list: bool = False) -> PathRule | None:
        """The single rule that governs `path`: an exact match, else the highest-priority wildcard."""
        candidates = [path]
        if is_list and path.endswith("/"):
            # LIST paths are sanitised to end in "/"; a rule naming the path without it also applies.
            candidates.append(path.rstrip("/"))
        for candidate in candidates:
            for rule in self.rules:
                if rule.is_exact and rule.pattern == candidate:
                    return rule
        matching = [
            rule for rule in self.rules if not rule.is_exact and any(rule.matches(c) for c in candidates)
        ]
        if not matching:
            return None
        return max(matching, key=PathRule.priority)

    def capabilities(self, path: str, is_list: bool = False) -> set[str]:
        """Effective capabilities; a `deny` on the winning rule removes everything."""
        if self.is_root:
            return {"root"}
        rule = self.winning_rule(path, is_list=is_list)
        if rule is None or "deny" in rule.capabilities:
            return set()
        return set(rule.capabilities)

    def allows(self, path: str, capability: str, needs_sudo: bool = False) -> bool:
        """Whether an operation needing `capability` (plus `sudo` on root-protected paths) is allowed."""
        if self.is_root:
            return True
        caps = self.capabilities(path, is_list=capability == "list")
        if capability not in caps:
            return False
        # Vault docs: /vault/docs/concepts/policies#root-protected-api-endpoints
        return not needs_sudo or "sudo" in caps


# The parts of Vault's built-in `default` policy that this server implements endpoints for.
# Vault docs: /vault/docs/concepts/policies#default-policy
# (the text a dev server shows for `vault read sys/policy/default`)
DEFAULT_POLICY_TEXT = """\
# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to look up its resultant ACL from all policies. This is useful
# for UIs. It is an internal path because the format may change at any time
# based on how the internal ACL features and capabilities change.
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Allow a token to renew a lease via lease_id in the request body; old path for
# old clients, new path for newer
path "sys/renew" {
    capabilities = ["update"]
}
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Allow looking up lease properties. This requires knowing the lease ID ahead
# of time and does not divulge any sensitive information.
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# Allow a token to manage its own cubbyhole
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Allow a token to wrap arbitrary values in a response-wrapping token
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}

# Allow a token to look up the creation time and TTL of a given
# response-wrapping token
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}

# Allow a token to unwrap a response-wrapping token. This is a convenience to
# avoid client token swapping since this is also part of the response wrapping
# policy.
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

# Allow general purpose tools
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}
"""
