"""Pure tests of the dev Vault's token store with a fake clock (no sleeping).

Vault docs: /vault/docs/concepts/tokens and /vault/api-docs/auth/token#create-token
"""

from __future__ import annotations

import pytest
from sovereign_devstack.vault.common import VaultError, parse_duration
from sovereign_devstack.vault.tokens import DEFAULT_TTL, TokenStore


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def now(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock) -> TokenStore:
    return TokenStore("root-token", clock)


def test_root_token_never_expires(store, clock) -> None:
    clock.t += 10 * 365 * 86400
    assert store.lookup("root-token").policies == ["root"]


def test_token_expires_at_its_ttl(store, clock) -> None:
    child = store.create_child(store.lookup("root-token"), {"policies": ["app"], "ttl": "30m"}, True)
    clock.t += 1799
    assert store.lookup(child.id) is not None
    clock.t += 1
    assert store.lookup(child.id) is None


def test_default_ttl_is_32_days_and_default_policy_is_added(store) -> None:
    child = store.create_child(store.lookup("root-token"), {"policies": ["app"]}, True)
    assert child.ttl == DEFAULT_TTL
    assert child.policies == ["app", "default"]


def test_revoking_a_parent_revokes_children_but_not_orphans(store) -> None:
    root = store.lookup("root-token")
    parent = store.create_child(root, {"policies": ["app"]}, True)
    child = store.create_child(parent, {"policies": ["app"]}, False)
    orphan = store.create_child(root, {"policies": ["app"], "no_parent": True}, True)
    store.revoke(parent.id)
    assert store.lookup(child.id) is None
    assert store.lookup(orphan.id) is not None


def test_renew_extends_but_not_past_explicit_max_ttl(store, clock) -> None:
    token = store.create_child(
        store.lookup("root-token"), {"policies": ["app"], "ttl": "1h", "explicit_max_ttl": "2h"}, True
    )
    clock.t += 3000
    store.renew(token, "1h")
    clock.t += 3500
    assert store.lookup(token.id) is not None  # renewed: would have expired at 3600s
    store.renew(token, "10h")
    clock.t = token.creation_time + 7200
    assert store.lookup(token.id) is None


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"policies": ["other"]}, "child policies must be subset of parent"),
        ({"policies": ["root"]}, "root tokens may not be created without parent token being root"),
        ({"policies": ["app"], "no_parent": True}, "root or sudo privileges required to create orphan token"),
        ({"policies": ["app"], "period": "1h"}, "root or sudo privileges required to create periodic token"),
    ],
    ids=["policies-not-a-subset", "root-from-non-root", "orphan-without-sudo", "periodic-without-sudo"],
)
def test_non_privileged_parents_are_limited(store, request_body, message) -> None:
    parent = store.create_child(store.lookup("root-token"), {"policies": ["app"]}, True)
    with pytest.raises(VaultError, match=message):
        store.create_child(parent, request_body, parent_has_sudo=False)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("30m", 1800), ("1h30m", 5400), ("768h", 768 * 3600), (45, 45), ("", 0)],
)
def test_vault_duration_strings(text, seconds) -> None:
    assert parse_duration(text) == seconds


def test_bad_duration_is_400() -> None:
    with pytest.raises(VaultError) as err:
        parse_duration("soon")
    assert err.value.status == 400


def test_limited_use_token_is_revoked_after_its_last_use(store) -> None:
    token = store.create_child(store.lookup("root-token"), {"policies": ["app"], "num_uses": 2}, True)
    store.use(token)
    assert store.lookup(token.id) is not None
    store.use(token)
    assert store.lookup(token.id) is None
