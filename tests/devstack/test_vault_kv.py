"""The dev Vault's KV v2 engine over HTTP through hvac: versions, check-and-set, delete/undelete/destroy."""

from __future__ import annotations

import uuid

import httpx
import hvac
import hvac.exceptions
import pytest


@pytest.fixture
def kv(vault_server) -> tuple[hvac.Client, str]:
    """A root client and a fresh secret path below the pre-mounted secret/."""
    root = hvac.Client(url=vault_server.url, token=vault_server.root_token)
    return root, f"kvtest-{uuid.uuid4().hex[:8]}/app"


def read(root: hvac.Client, path: str, version: int | None = None) -> dict:
    return root.secrets.kv.v2.read_secret_version(path=path, version=version, raise_on_deleted_version=True)[
        "data"
    ]


def test_write_then_read_returns_data_and_metadata(kv) -> None:
    root, path = kv
    written = root.secrets.kv.v2.create_or_update_secret(path=path, secret={"user": "svc", "n": 1})["data"]
    assert written["version"] == 1 and written["deletion_time"] == "" and written["destroyed"] is False
    data = read(root, path)
    assert data["data"] == {"user": "svc", "n": 1}
    assert data["metadata"]["version"] == 1
    assert data["metadata"]["created_time"].endswith("Z")


def test_each_write_is_a_new_version_and_old_ones_stay_readable(kv) -> None:
    root, path = kv
    for value in ("a", "b", "c"):
        root.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": value})
    assert read(root, path)["data"] == {"v": "c"}
    assert read(root, path, version=1)["data"] == {"v": "a"}
    assert read(root, path)["metadata"]["version"] == 3


def test_missing_secret_is_404(kv) -> None:
    root, path = kv
    with pytest.raises(hvac.exceptions.InvalidPath):
        read(root, path)


def test_check_and_set(kv) -> None:
    root, path = kv
    root.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": 1}, cas=0)  # cas=0: only if absent
    with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set parameter did not match"):
        root.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": 2}, cas=0)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set parameter did not match"):
        root.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": 2}, cas=5)
    root.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": 2}, cas=1)
    assert read(root, path)["data"] == {"v": 2}


def test_cas_required_in_metadata_forces_cas(kv) -> None:
    root, path = kv
    root.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": 1})
    root.secrets.kv.v2.update_metadata(path=path, cas_required=True)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set parameter required"):
        root.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": 2})
    root.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": 2}, cas=1)


def test_patch_merges_into_the_latest_version(kv) -> None:
    root, path = kv
    root.secrets.kv.v2.create_or_update_secret(path=path, secret={"keep": "x", "change": "old"})
    root.secrets.kv.v2.patch(path=path, secret={"change": "new", "add": "y"})
    assert read(root, path)["data"] == {"keep": "x", "change": "new", "add": "y"}
    assert read(root, path)["metadata"]["version"] == 2


def test_http_patch_is_a_json_merge_patch(vault_server, kv) -> None:
    root, path = kv
    root.secrets.kv.v2.create_or_update_secret(path=path, secret={"a": 1, "b": 2})
    url = f"{vault_server.url}/v1/secret/data/{path}"
    headers = {"X-Vault-Token": vault_server.root_token}
    wrong_type = httpx.patch(url, json={"data": {"a": 5}}, headers=headers)
    assert wrong_type.status_code == 415
    patched = httpx.patch(
        url,
        json={"data": {"a": 5, "b": None}},
        headers={**headers, "Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200 and patched.json()["data"]["version"] == 2
    assert read(root, path)["data"] == {"a": 5}


def test_soft_delete_then_undelete(kv) -> None:
    root, path = kv
    root.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": 1})
    root.secrets.kv.v2.delete_latest_version_of_secret(path=path)
    with pytest.raises(hvac.exceptions.InvalidPath):
        read(root, path)
    deleted = root.secrets.kv.v2.read_secret_version(path=path, raise_on_deleted_version=False)["data"]
    assert deleted["data"] is None and deleted["metadata"]["deletion_time"] != ""
    root.secrets.kv.v2.undelete_secret_versions(path=path, versions=[1])
    assert read(root, path)["data"] == {"v": 1}


def test_delete_specific_versions_leaves_others(kv) -> None:
    root, path = kv
    root.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": 1})
    root.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": 2})
    root.secrets.kv.v2.delete_secret_versions(path=path, versions=[1])
    with pytest.raises(hvac.exceptions.InvalidPath):
        read(root, path, version=1)
    assert read(root, path)["data"] == {"v": 2}


def test_destroy_is_permanent(kv) -> None:
    root, path = kv
    root.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": 1})
    root.secrets.kv.v2.destroy_secret_versions(path=path, versions=[1])
    root.secrets.kv.v2.undelete_secret_versions(path=path, versions=[1])
    with pytest.raises(hvac.exceptions.InvalidPath):
        read(root, path)
    meta = root.secrets.kv.v2.read_secret_metadata(path=path)["data"]
    assert meta["versions"]["1"]["destroyed"] is True


def test_metadata_read_write_and_max_versions(kv) -> None:
    root, path = kv
    root.secrets.kv.v2.update_metadata(path=path, max_versions=2, custom_metadata={"owner": "team-a"})
    for value in range(3):
        root.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": value})
    meta = root.secrets.kv.v2.read_secret_metadata(path=path)["data"]
    assert meta["current_version"] == 3 and meta["oldest_version"] == 2
    assert sorted(meta["versions"]) == ["2", "3"]
    assert meta["max_versions"] == 2 and meta["custom_metadata"] == {"owner": "team-a"}
    assert read(root, path)["metadata"]["custom_metadata"] == {"owner": "team-a"}
    with pytest.raises(hvac.exceptions.InvalidPath):
        read(root, path, version=1)


def test_delete_metadata_removes_every_version(kv) -> None:
    root, path = kv
    root.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": 1})
    root.secrets.kv.v2.delete_metadata_and_all_versions(path=path)
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.kv.v2.read_secret_metadata(path=path)
    with pytest.raises(hvac.exceptions.InvalidPath):
        read(root, path)


def test_list_shows_keys_and_folders_and_404s_when_empty(kv) -> None:
    root, path = kv
    folder = path.rsplit("/", 1)[0]
    root.secrets.kv.v2.create_or_update_secret(path=f"{folder}/one", secret={"v": 1})
    root.secrets.kv.v2.create_or_update_secret(path=f"{folder}/sub/two", secret={"v": 2})
    assert root.secrets.kv.v2.list_secrets(path=folder)["data"]["keys"] == ["one", "sub/"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.kv.v2.list_secrets(path=f"{folder}/nothing-here")


def test_kv_acl_uses_data_and_metadata_prefixes_and_create_vs_update(vault_server, kv) -> None:
    root, path = kv
    folder = path.rsplit("/", 1)[0]
    policy = f"pol-{uuid.uuid4().hex[:6]}"
    root.sys.create_or_update_acl_policy(
        policy,
        f"""
        path "secret/data/{folder}/*" {{ capabilities = ["create", "read"] }}
        path "secret/metadata/{folder}/" {{ capabilities = ["list"] }}
    """,
    )
    app = hvac.Client(
        url=vault_server.url, token=root.auth.token.create(policies=[policy])["auth"]["client_token"]
    )
    app.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": 1})  # create: the secret is new
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.kv.v2.create_or_update_secret(path=path, secret={"v": 2})  # update: it exists now
    assert read(app, path)["data"] == {"v": 1}
    assert app.secrets.kv.v2.list_secrets(path=folder)["data"]["keys"] == ["app"]
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.kv.v2.read_secret_metadata(path=path)
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.kv.v2.delete_latest_version_of_secret(path=path)
