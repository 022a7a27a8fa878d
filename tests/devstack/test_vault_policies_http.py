"""ACL rules enforced end to end: tokens with policies making real hvac calls get 403 or succeed.

The cases follow Vault's policy docs (/vault/docs/concepts/policies#priority-matching).
"""

from __future__ import annotations

import uuid

import httpx
import hvac
import hvac.exceptions
import pytest


@pytest.fixture
def root(vault_server) -> hvac.Client:
    return hvac.Client(url=vault_server.url, token=vault_server.root_token)


def as_token_with(root: hvac.Client, url: str, *policies_text: str) -> hvac.Client:
    names = []
    for text in policies_text:
        name = f"pol-{uuid.uuid4().hex[:8]}"
        root.sys.create_or_update_acl_policy(name, text)
        names.append(name)
    return hvac.Client(url=url, token=root.auth.token.create(policies=names)["auth"]["client_token"])


def folder() -> str:
    return f"acl-{uuid.uuid4().hex[:8]}"


def seed(root: hvac.Client, *paths: str) -> None:
    for path in paths:
        root.secrets.kv.v2.create_or_update_secret(path=path, secret={"path": path})


def can_read(client: hvac.Client, path: str) -> bool:
    try:
        client.secrets.kv.v2.read_secret_version(path=path, raise_on_deleted_version=True)
    except hvac.exceptions.Forbidden:
        return False
    return True


def test_exact_path_beats_glob(vault_server, root) -> None:
    base = folder()
    seed(root, f"{base}/visible", f"{base}/hidden")
    app = as_token_with(
        root,
        vault_server.url,
        f"""
        path "secret/data/{base}/*" {{ capabilities = ["read"] }}
        path "secret/data/{base}/hidden" {{ capabilities = ["deny"] }}
    """,
    )
    assert can_read(app, f"{base}/visible")
    assert not can_read(app, f"{base}/hidden")


def test_longest_prefix_wins(vault_server, root) -> None:
    base = folder()
    seed(root, f"{base}/team/a", f"{base}/other")
    app = as_token_with(
        root,
        vault_server.url,
        f"""
        path "secret/data/{base}/*" {{ capabilities = ["read"] }}
        path "secret/data/{base}/team/*" {{ capabilities = ["update"] }}
    """,
    )
    app.secrets.kv.v2.create_or_update_secret(path=f"{base}/team/a", secret={"v": 2})
    assert not can_read(app, f"{base}/team/a")  # the longer pattern wins and grants no read
    assert can_read(app, f"{base}/other")
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.kv.v2.create_or_update_secret(path=f"{base}/other", secret={"v": 2})


def test_plus_matches_exactly_one_segment(vault_server, root) -> None:
    base = folder()
    seed(root, f"{base}/nation-a/config", f"{base}/nation-a/deep/config")
    app = as_token_with(
        root, vault_server.url, f'path "secret/data/{base}/+/config" {{ capabilities = ["read"] }}'
    )
    assert can_read(app, f"{base}/nation-a/config")
    assert not can_read(app, f"{base}/nation-a/deep/config")


def test_deny_in_another_policy_on_the_winning_pattern_wins(vault_server, root) -> None:
    base = folder()
    seed(root, f"{base}/x")
    granted = f'path "secret/data/{base}/*" {{ capabilities = ["read"] }}'
    app = as_token_with(
        root, vault_server.url, granted, f'path "secret/data/{base}/*" {{ capabilities = ["deny"] }}'
    )
    assert not can_read(app, f"{base}/x")
    assert can_read(as_token_with(root, vault_server.url, granted), f"{base}/x")


def test_same_pattern_in_two_policies_unions_capabilities(vault_server, root) -> None:
    base = folder()
    app = as_token_with(
        root,
        vault_server.url,
        f'path "secret/data/{base}/*" {{ capabilities = ["create"] }}',
        f'path "secret/data/{base}/*" {{ capabilities = ["read"] }}',
    )
    app.secrets.kv.v2.create_or_update_secret(path=f"{base}/new", secret={"v": 1})
    assert can_read(app, f"{base}/new")


def test_policy_writes_are_update_operations_even_for_new_policies(vault_server, root) -> None:
    # sys/policies/acl/:name has no existence check in Vault, so `create` alone never suffices.
    create_only = as_token_with(
        root, vault_server.url, 'path "sys/policies/acl/*" { capabilities = ["create"] }'
    )
    with pytest.raises(hvac.exceptions.Forbidden):
        create_only.sys.create_or_update_acl_policy(
            f"new-{uuid.uuid4().hex[:6]}", 'path "x/*" { capabilities = ["read"] }'
        )
    updater = as_token_with(
        root, vault_server.url, 'path "sys/policies/acl/*" { capabilities = ["update", "read"] }'
    )
    name = f"made-by-app-{uuid.uuid4().hex[:6]}"
    updater.sys.create_or_update_acl_policy(name, 'path "x/*" { capabilities = ["read"] }')
    assert "x/*" in updater.sys.read_acl_policy(name)["data"]["policy"]


def test_enabling_auth_needs_sudo(vault_server, root) -> None:
    without_sudo = as_token_with(
        root, vault_server.url, 'path "sys/auth/*" { capabilities = ["create", "update"] }'
    )
    with pytest.raises(hvac.exceptions.Forbidden):
        without_sudo.sys.enable_auth_method("kubernetes", path=f"k8s-{uuid.uuid4().hex[:6]}")
    with_sudo = as_token_with(
        root, vault_server.url, 'path "sys/auth/*" { capabilities = ["create", "update", "sudo"] }'
    )
    path = f"k8s-{uuid.uuid4().hex[:6]}"
    with_sudo.sys.enable_auth_method("kubernetes", path=path)
    assert f"{path}/" in root.sys.list_auth_methods()["data"]


def test_enabling_a_secrets_engine_needs_no_sudo(vault_server, root) -> None:
    app = as_token_with(root, vault_server.url, 'path "sys/mounts/*" { capabilities = ["create", "update"] }')
    path = f"transit-{uuid.uuid4().hex[:6]}"
    app.sys.enable_secrets_engine("transit", path=path)
    assert f"{path}/" in root.sys.list_mounted_secrets_engines()["data"]


def test_list_needs_list_capability_for_both_list_styles(vault_server, root) -> None:
    base = folder()
    seed(root, f"{base}/one")
    lister = as_token_with(
        root, vault_server.url, f'path "secret/metadata/{base}/*" {{ capabilities = ["list"] }}'
    )
    reader = as_token_with(
        root, vault_server.url, f'path "secret/metadata/{base}/*" {{ capabilities = ["read"] }}'
    )
    assert lister.secrets.kv.v2.list_secrets(path=base)["data"]["keys"] == ["one"]
    url = f"{vault_server.url}/v1/secret/metadata/{base}?list=true"
    assert httpx.get(url, headers={"X-Vault-Token": lister.token}).json()["data"]["keys"] == ["one"]
    assert httpx.get(url, headers={"X-Vault-Token": reader.token}).status_code == 403
    with pytest.raises(hvac.exceptions.Forbidden):
        reader.secrets.kv.v2.list_secrets(path=base)
