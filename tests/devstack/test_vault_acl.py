"""Pure tests of the dev Vault's ACL engine against the examples and rules in Vault's policy docs.

Vault docs: /vault/docs/concepts/policies (policy syntax, priority matching, capabilities).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sovereign_devstack.vault.acl import ACL, parse_policy
from sovereign_devstack.vault.common import VaultError
from sovereign_devstack.vault.policies import PolicyStore


@dataclass(frozen=True)
class Case:
    id: str
    policies: tuple[str, ...]
    path: str
    expected: frozenset[str]


def policy(*stanzas: tuple[str, list[str]]) -> str:
    return "\n".join(f'path "{p}" {{\n  capabilities = {caps!r}\n}}'.replace("'", '"') for p, caps in stanzas)


ALL = ["create", "read", "update", "patch", "delete", "list"]

CASES = [
    # Docs' "more detailed policy": secret/* grants all, the exact secret/super-secret denies.
    Case(
        "exact-deny-beats-glob",
        (policy(("secret/*", ALL), ("secret/super-secret", ["deny"])),),
        "secret/super-secret",
        frozenset(),
    ),
    Case(
        "glob-applies-beside-exact",
        (policy(("secret/*", ALL), ("secret/super-secret", ["deny"])),),
        "secret/other",
        frozenset(ALL),
    ),
    # "Permit reading only secret/foo. An attached token cannot read secret/food or secret/foo/bar."
    Case("exact-does-not-prefix-match", (policy(("secret/foo", ["read"])),), "secret/food", frozenset()),
    Case("exact-does-not-match-children", (policy(("secret/foo", ["read"])),), "secret/foo/bar", frozenset()),
    Case("exact-matches-itself", (policy(("secret/foo", ["read"])),), "secret/foo", frozenset({"read"})),
    # "secret/bar/*": could read secret/bar/zip and secret/bar/zip/zap, but not secret/bars/zip.
    Case("glob-matches-child", (policy(("secret/bar/*", ["read"])),), "secret/bar/zip", frozenset({"read"})),
    Case(
        "glob-matches-grandchild",
        (policy(("secret/bar/*", ["read"])),),
        "secret/bar/zip/zap",
        frozenset({"read"}),
    ),
    Case("glob-needs-the-slash", (policy(("secret/bar/*", ["read"])),), "secret/bars/zip", frozenset()),
    # "secret/zip-*": secret/zip-zap and secret/zip-zap/zong, but not secret/zip/zap.
    Case(
        "glob-inside-segment",
        (policy(("secret/zip-*", ["read"])),),
        "secret/zip-zap/zong",
        frozenset({"read"}),
    ),
    Case("glob-inside-segment-miss", (policy(("secret/zip-*", ["read"])),), "secret/zip/zap", frozenset()),
    # "+" is exactly one path segment.
    Case(
        "plus-one-segment", (policy(("secret/+/teamb", ["read"])),), "secret/foo/teamb", frozenset({"read"})
    ),
    Case(
        "plus-not-two-segments", (policy(("secret/+/teamb", ["read"])),), "secret/foo/bar/teamb", frozenset()
    ),
    Case(
        "two-plus-two-segments",
        (policy(("secret/+/+/teamb", ["read"])),),
        "secret/foo/bar/teamb",
        frozenset({"read"}),
    ),
    Case(
        "plus-then-glob",
        (policy(("secret/+/app/*", ["read"])),),
        "secret/eu/app/db/password",
        frozenset({"read"}),
    ),
    # Docs' worked example: "secret/*" beats "secret/+/+/foo/*" by rule 3 (fewer + segments).
    Case(
        "rule3-fewer-plus-segments-win",
        (policy(("secret/*", ["read"]), ("secret/+/+/foo/*", ["update"])),),
        "secret/a/b/foo/c",
        frozenset({"read"}),
    ),
    # Rule 1: the pattern whose first wildcard comes later wins; here the longest prefix.
    Case(
        "rule1-longest-prefix-wins",
        (policy(("secret/*", ["read"]), ("secret/app/*", ["update"])),),
        "secret/app/x",
        frozenset({"update"}),
    ),
    Case(
        "rule1-later-wildcard-wins",
        (policy(("+/data/x", ["read"]), ("secret/+/x", ["update"])),),
        "secret/data/x",
        frozenset({"update"}),
    ),
    # Rule 2: same first-wildcard position, the one not ending in * wins.
    Case(
        "rule2-no-trailing-glob-wins",
        (policy(("secret/*", ["read"]), ("secret/+/foo", ["update"])),),
        "secret/x/foo",
        frozenset({"update"}),
    ),
    # Rule 4: otherwise the longer pattern wins.
    Case(
        "rule4-longer-wins",
        (policy(("secret/+/*", ["read"]), ("secret/+/a*", ["update"])),),
        "secret/x/abc",
        frozenset({"update"}),
    ),
    # Rule 5: otherwise the lexicographically larger pattern wins ("a" sorts after "+").
    Case(
        "rule5-lexically-larger-wins",
        (policy(("secret/+/a/+", ["read"]), ("secret/+/+/b", ["update"])),),
        "secret/x/a/b",
        frozenset({"read"}),
    ),
    # Same pattern in several policies: capabilities are unioned.
    Case(
        "same-pattern-unioned",
        (policy(("secret/data/x", ["read"])), policy(("secret/data/x", ["update"]))),
        "secret/data/x",
        frozenset({"read", "update"}),
    ),
    # A deny on the winning pattern removes everything, even when another policy grants on it.
    Case(
        "deny-on-winning-pattern",
        (policy(("secret/*", ["read"])), policy(("secret/*", ["deny"]))),
        "secret/anything",
        frozenset(),
    ),
    # A deny on a lower-priority pattern has no effect: only the highest-priority match counts.
    Case(
        "deny-on-losing-pattern-ignored",
        (policy(("secret/*", ["deny"])), policy(("secret/app/*", ["read"]))),
        "secret/app/x",
        frozenset({"read"}),
    ),
    Case("no-rule-no-access", (policy(("secret/*", ["read"])),), "transit/encrypt/x", frozenset()),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_capabilities_follow_vault_priority_rules(case: Case) -> None:
    acl = ACL(parse_policy(f"p{i}", text) for i, text in enumerate(case.policies))
    assert acl.capabilities(case.path) == set(case.expected)


def test_list_on_a_folder_matches_a_rule_written_without_the_trailing_slash() -> None:
    acl = ACL([parse_policy("p", policy(("secret/metadata/team", ["list"])))])
    assert acl.allows("secret/metadata/team/", "list")
    assert not acl.allows("secret/metadata/team/", "read")


def test_root_protected_paths_need_sudo_as_well() -> None:
    acl = ACL(
        [parse_policy("p", policy(("sys/auth/*", ["create", "update"]), ("sys/audit/*", ["update", "sudo"])))]
    )
    assert acl.allows("sys/auth/kubernetes", "update")
    assert not acl.allows("sys/auth/kubernetes", "update", needs_sudo=True)
    assert acl.allows("sys/audit/file", "update", needs_sudo=True)


def test_create_and_update_are_distinct_capabilities() -> None:
    acl = ACL([parse_policy("p", policy(("secret/data/*", ["create"])))])
    assert acl.allows("secret/data/new", "create")
    assert not acl.allows("secret/data/new", "update")


def test_root_policy_allows_everything() -> None:
    store = PolicyStore()
    acl = store.acl_for(["root"])
    assert acl.allows("sys/auth/anything", "delete", needs_sudo=True)


def test_default_policy_lets_a_token_look_itself_up_only() -> None:
    acl = PolicyStore().acl_for(["default"])
    assert acl.allows("auth/token/lookup-self", "read")
    assert acl.allows("auth/token/revoke-self", "update")
    assert acl.allows("sys/capabilities-self", "update")
    assert not acl.allows("auth/token/create", "update")
    assert not acl.allows("secret/data/x", "read")


def test_json_policies_parse_like_hcl() -> None:
    parsed = parse_policy("j", '{"path": {"secret/data/*": {"capabilities": ["read", "list"]}}}')
    assert ACL([parsed]).capabilities("secret/data/a") == {"read", "list"}


@pytest.mark.parametrize(
    "text",
    [
        'path "secret/*" { capabilities = ["fly"] }',
        'path "secret/*" { capabilities = ["read"] ',
        "nonsense = =",
    ],
    ids=["unknown-capability", "unclosed-block", "not-a-policy"],
)
def test_bad_policies_are_rejected_with_400(text: str) -> None:
    with pytest.raises(VaultError) as err:
        parse_policy("bad", text)
    assert err.value.status == 400
    assert "failed to parse policy" in err.value.messages[0]


def test_builtin_policies_are_protected() -> None:
    store = PolicyStore()
    with pytest.raises(VaultError, match='cannot update "root" policy'):
        store.put("root", 'path "*" { capabilities = ["read"] }')
    for name in ("root", "default"):
        with pytest.raises(VaultError, match=f'cannot delete "{name}" policy'):
            store.delete(name)
    assert store.exists("default") and store.exists("root")
