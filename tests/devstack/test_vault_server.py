"""The dev Vault over HTTP through hvac: health, mounts, auth methods, policies, tokens and error shapes."""

from __future__ import annotations

import time
import uuid

import httpx
import hvac
import hvac.exceptions
import pytest


@pytest.fixture
def root(vault_server) -> hvac.Client:
    return hvac.Client(url=vault_server.url, token=vault_server.root_token)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def client_with_policy(root: hvac.Client, url: str, rules: str, **token_args) -> hvac.Client:
    name = unique("pol")
    root.sys.create_or_update_acl_policy(name=name, policy=rules)
    token = root.auth.token.create(policies=[name], **token_args)["auth"]["client_token"]
    return hvac.Client(url=url, token=token)


def test_root_token_is_authenticated_and_a_bogus_one_is_not(vault_server, root) -> None:
    assert root.is_authenticated()
    assert not hvac.Client(url=vault_server.url, token="hvs.not-a-real-token").is_authenticated()


def test_health_answers_get_and_head_like_an_unsealed_active_node(root) -> None:
    status = root.sys.read_health_status(method="GET")
    assert status["initialized"] is True and status["sealed"] is False and status["standby"] is False
    assert status["version"]
    head = root.sys.read_health_status()  # hvac's default is HEAD
    assert head.status_code == 200


def test_seal_and_init_status_need_no_token(vault_server) -> None:
    anonymous = hvac.Client(url=vault_server.url)
    assert anonymous.sys.is_initialized() is True
    assert anonymous.sys.is_sealed() is False


def test_unauthenticated_requests_get_vault_error_json(vault_server) -> None:
    response = httpx.get(f"{vault_server.url}/v1/secret/data/anything")
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"errors": ["permission denied"]}


def test_bearer_authorization_header_is_accepted(vault_server) -> None:
    response = httpx.get(
        f"{vault_server.url}/v1/auth/token/lookup-self",
        headers={"Authorization": f"Bearer {vault_server.root_token}"},
    )
    assert response.status_code == 200
    assert response.json()["data"]["policies"] == ["root"]


def test_dev_server_premounts_kv_v2_at_secret(root) -> None:
    mounts = root.sys.list_mounted_secrets_engines()["data"]
    assert mounts["secret/"]["type"] == "kv"
    assert mounts["secret/"]["options"] == {"version": "2"}


def test_enable_transit_lists_it_and_disable_removes_it(root) -> None:
    path = unique("transit")
    root.sys.enable_secrets_engine(backend_type="transit", path=path)
    assert root.sys.list_mounted_secrets_engines()["data"][f"{path}/"]["type"] == "transit"
    with pytest.raises(hvac.exceptions.InvalidRequest, match="path is already in use"):
        root.sys.enable_secrets_engine(backend_type="transit", path=path)
    root.sys.disable_secrets_engine(path=path)
    assert f"{path}/" not in root.sys.list_mounted_secrets_engines()["data"]


def test_enable_kv_version_2_at_a_custom_path(root) -> None:
    path = unique("kv")
    root.sys.enable_secrets_engine(backend_type="kv", path=path, options={"version": "2"})
    root.secrets.kv.v2.create_or_update_secret(path="a", secret={"k": "v"}, mount_point=path)
    read = root.secrets.kv.v2.read_secret_version(path="a", mount_point=path, raise_on_deleted_version=True)
    assert read["data"]["data"] == {"k": "v"}


def test_unknown_engine_type_is_rejected(root) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest, match="plugin not found"):
        root.sys.enable_secrets_engine(backend_type="no-such-engine", path=unique("x"))


def test_enable_and_disable_kubernetes_auth(fresh_vault) -> None:
    # Its own Vault: the session's has Kubernetes auth at the default path once the platform is prepared.
    root = hvac.Client(url=fresh_vault.url, token=fresh_vault.root_token)
    root.sys.enable_auth_method(method_type="kubernetes")  # default path "kubernetes"
    path = unique("k8s")
    root.sys.enable_auth_method(method_type="kubernetes", path=path)
    methods = root.sys.list_auth_methods()["data"]
    assert methods["kubernetes/"]["type"] == "kubernetes"
    assert methods[f"{path}/"]["type"] == "kubernetes"
    assert methods["token/"]["type"] == "token"
    root.sys.disable_auth_method(path=path)
    root.sys.disable_auth_method(path="kubernetes")
    assert {f"{path}/", "kubernetes/"}.isdisjoint(root.sys.list_auth_methods()["data"])


def test_acl_policy_crud_and_both_list_styles(vault_server, root) -> None:
    name = unique("policy")
    rules = 'path "secret/data/app/*" {\n  capabilities = ["read"]\n}\n'
    root.sys.create_or_update_acl_policy(name=name, policy=rules)
    assert root.sys.read_acl_policy(name)["data"]["policy"] == rules
    assert name in root.sys.list_acl_policies()["data"]["keys"]  # LIST verb
    listed = httpx.get(
        f"{vault_server.url}/v1/sys/policies/acl?list=true",
        headers={"X-Vault-Token": vault_server.root_token},
    )
    assert name in listed.json()["data"]["keys"]  # GET ?list=true
    root.sys.delete_acl_policy(name)
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.sys.read_acl_policy(name)


def test_legacy_sys_policy_endpoint_used_by_create_or_update_policy(root) -> None:
    name = unique("legacy")
    root.sys.create_or_update_policy(name=name, policy='path "transit/*" { capabilities = ["list"] }')
    assert name in root.sys.list_policies()["data"]["policies"]
    assert "transit/*" in root.sys.read_policy(name)["data"]["rules"]


def test_builtin_policies_cannot_be_removed(root) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest, match='cannot delete "default" policy'):
        root.sys.delete_acl_policy("default")
    with pytest.raises(hvac.exceptions.InvalidRequest, match='cannot update "root" policy'):
        root.sys.create_or_update_acl_policy("root", 'path "*" { capabilities = ["read"] }')
    with pytest.raises(hvac.exceptions.InvalidRequest, match="failed to parse policy"):
        root.sys.create_or_update_acl_policy(unique("bad"), 'path "x" { capabilities = ["fly"] }')


def test_created_token_has_hvs_prefix_policies_default_and_ttl(vault_server, root) -> None:
    name = unique("pol")
    root.sys.create_or_update_acl_policy(name, 'path "secret/data/*" { capabilities = ["read"] }')
    auth = root.auth.token.create(policies=[name], ttl="1h", display_name="ci")["auth"]
    assert auth["client_token"].startswith("hvs.")
    assert auth["policies"] == sorted(["default", name])
    assert 3590 <= auth["lease_duration"] <= 3600
    me = hvac.Client(url=vault_server.url, token=auth["client_token"]).auth.token.lookup_self()["data"]
    assert me["display_name"] == "token-ci" and me["policies"] == sorted(["default", name])
    assert me["expire_time"] and 0 < me["ttl"] <= 3600


def test_token_without_default_policy_cannot_even_look_itself_up(vault_server, root) -> None:
    name = unique("pol")
    root.sys.create_or_update_acl_policy(name, 'path "secret/data/*" { capabilities = ["read"] }')
    token = root.auth.token.create(policies=[name], no_default_policy=True)["auth"]["client_token"]
    assert not hvac.Client(url=vault_server.url, token=token).is_authenticated()


def test_child_tokens_only_get_a_subset_of_the_parents_policies(vault_server, root) -> None:
    parent = client_with_policy(
        root, vault_server.url, 'path "auth/token/create" { capabilities = ["create", "update"] }'
    )
    own = [p for p in parent.lookup_token()["data"]["policies"] if p != "default"]
    child = parent.auth.token.create(policies=own)["auth"]
    assert child["policies"] == sorted(own + ["default"])
    with pytest.raises(hvac.exceptions.InvalidRequest, match="child policies must be subset of parent"):
        parent.auth.token.create(policies=["some-other-policy"])
    with pytest.raises(hvac.exceptions.InvalidRequest, match="root or sudo privileges required"):
        parent.auth.token.create(policies=own, no_parent=True)


def test_revoke_self_invalidates_the_token_and_its_children(vault_server, root) -> None:
    parent = client_with_policy(
        root, vault_server.url, 'path "auth/token/create" { capabilities = ["update"] }'
    )
    own = [p for p in parent.lookup_token()["data"]["policies"] if p != "default"]
    child = hvac.Client(
        url=vault_server.url, token=parent.auth.token.create(policies=own)["auth"]["client_token"]
    )
    assert child.is_authenticated()
    parent.auth.token.revoke_self()
    assert not parent.is_authenticated()
    assert not child.is_authenticated()


def test_token_ttl_is_enforced(vault_server, root) -> None:
    token = root.auth.token.create(policies=["default"], ttl="1s")["auth"]["client_token"]
    client = hvac.Client(url=vault_server.url, token=token)
    assert client.is_authenticated()
    deadline = time.monotonic() + 10
    while client.is_authenticated():  # polled, not slept for a fixed time: expiry is at most ~1s away
        assert time.monotonic() < deadline, "a 1s token was still valid after 10s"
        time.sleep(0.1)
    with pytest.raises(hvac.exceptions.Forbidden):
        client.auth.token.lookup_self()


def test_unknown_route_is_404_for_root_and_403_for_others(vault_server, root) -> None:
    response = httpx.get(
        f"{vault_server.url}/v1/nomount/thing", headers={"X-Vault-Token": vault_server.root_token}
    )
    assert response.status_code == 404
    assert "no handler for route" in response.json()["errors"][0]
    limited = client_with_policy(root, vault_server.url, 'path "secret/data/*" { capabilities = ["read"] }')
    with pytest.raises(hvac.exceptions.Forbidden):
        limited.read("nomount/thing")


def test_capabilities_self_reports_the_winning_rule(vault_server, root) -> None:
    client = client_with_policy(
        root,
        vault_server.url,
        'path "secret/data/*" { capabilities = ["read", "list"] }\n'
        'path "secret/data/locked" { capabilities = ["deny"] }',
    )
    caps = client.sys.get_capabilities(paths=["secret/data/open", "secret/data/locked"])["data"]
    assert caps["secret/data/open"] == ["list", "read"]
    assert caps["secret/data/locked"] == ["deny"]
    assert root.sys.get_capabilities(paths=["anything"])["data"]["capabilities"] == ["root"]


def test_invalid_json_body_is_a_400(vault_server) -> None:
    response = httpx.post(
        f"{vault_server.url}/v1/secret/data/x",
        content=b"{not json",
        headers={"X-Vault-Token": vault_server.root_token},
    )
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["errors"][0].startswith("failed to parse JSON input")
