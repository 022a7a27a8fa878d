"""The dev Vault's transit engine over HTTP through hvac: real AES-GCM, versions, policies on keys."""

from __future__ import annotations

import base64
import uuid

import hvac
import hvac.exceptions
import pytest


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.fixture(scope="module")
def transit(vault_server) -> tuple[hvac.Client, str]:
    """A root client and a transit mount of its own."""
    root = hvac.Client(url=vault_server.url, token=vault_server.root_token)
    mount = f"transit-{uuid.uuid4().hex[:6]}"
    root.sys.enable_secrets_engine(backend_type="transit", path=mount)
    return root, mount


def new_key(transit, **options) -> str:
    root, mount = transit
    name = f"key-{uuid.uuid4().hex[:6]}"
    root.secrets.transit.create_key(name=name, mount_point=mount, **options)
    return name


def test_encrypt_decrypt_round_trip_uses_vault_ciphertext_format(transit) -> None:
    root, mount = transit
    key = new_key(transit)
    plaintext = b"per-nation secret \x00\xff"
    ciphertext = root.secrets.transit.encrypt_data(key, b64(plaintext), mount_point=mount)["data"][
        "ciphertext"
    ]
    prefix, version, blob = ciphertext.split(":")
    assert (prefix, version) == ("vault", "v1")
    assert len(base64.b64decode(blob)) == 12 + len(plaintext) + 16  # nonce || ciphertext || GCM tag
    decrypted = root.secrets.transit.decrypt_data(key, ciphertext, mount_point=mount)["data"]["plaintext"]
    assert base64.b64decode(decrypted) == plaintext


def test_same_plaintext_encrypts_differently_each_time(transit) -> None:
    root, mount = transit
    key = new_key(transit)
    first = root.secrets.transit.encrypt_data(key, b64(b"x"), mount_point=mount)["data"]["ciphertext"]
    second = root.secrets.transit.encrypt_data(key, b64(b"x"), mount_point=mount)["data"]["ciphertext"]
    assert first != second  # a fresh 96-bit nonce per encryption


def test_tampered_ciphertext_is_refused(transit) -> None:
    root, mount = transit
    key = new_key(transit)
    ciphertext = root.secrets.transit.encrypt_data(key, b64(b"hello"), mount_point=mount)["data"][
        "ciphertext"
    ]
    raw = bytearray(base64.b64decode(ciphertext.split(":")[2]))
    raw[-1] ^= 1
    with pytest.raises(hvac.exceptions.InvalidRequest, match="message authentication failed"):
        root.secrets.transit.decrypt_data(key, "vault:v1:" + b64(bytes(raw)), mount_point=mount)


def test_read_key_reports_versions_and_settings(transit) -> None:
    root, mount = transit
    key = new_key(transit, exportable=True)
    data = root.secrets.transit.read_key(key, mount_point=mount)["data"]
    assert data["type"] == "aes256-gcm96"
    assert list(data["keys"]) == ["1"] and isinstance(data["keys"]["1"], int)
    assert (data["latest_version"], data["min_decryption_version"], data["min_encryption_version"]) == (
        1,
        1,
        0,
    )
    assert data["deletion_allowed"] is False and data["exportable"] is True
    assert data["supports_encryption"] and data["supports_decryption"]


def test_rotation_keeps_old_ciphertext_readable_until_min_decryption_version(transit) -> None:
    root, mount = transit
    key = new_key(transit)
    old = root.secrets.transit.encrypt_data(key, b64(b"v1 data"), mount_point=mount)["data"]["ciphertext"]
    root.secrets.transit.rotate_key(key, mount_point=mount)
    new = root.secrets.transit.encrypt_data(key, b64(b"v2 data"), mount_point=mount)["data"]
    assert new["ciphertext"].startswith("vault:v2:") and new["key_version"] == 2
    assert root.secrets.transit.read_key(key, mount_point=mount)["data"]["latest_version"] == 2
    old_plain = root.secrets.transit.decrypt_data(key, old, mount_point=mount)["data"]["plaintext"]
    assert base64.b64decode(old_plain) == b"v1 data"

    root.secrets.transit.update_key_configuration(key, min_decryption_version=2, mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="disallowed by policy"):
        root.secrets.transit.decrypt_data(key, old, mount_point=mount)
    assert root.secrets.transit.decrypt_data(key, new["ciphertext"], mount_point=mount)["data"]["plaintext"]


def test_rewrap_moves_ciphertext_to_the_latest_version(transit) -> None:
    root, mount = transit
    key = new_key(transit)
    old = root.secrets.transit.encrypt_data(key, b64(b"payload"), mount_point=mount)["data"]["ciphertext"]
    root.secrets.transit.rotate_key(key, mount_point=mount)
    rewrapped = root.secrets.transit.rewrap_data(key, old, mount_point=mount)["data"]["ciphertext"]
    assert rewrapped.startswith("vault:v2:")
    plain = root.secrets.transit.decrypt_data(key, rewrapped, mount_point=mount)["data"]["plaintext"]
    assert base64.b64decode(plain) == b"payload"


def test_encrypting_with_an_old_version_obeys_min_encryption_version(transit) -> None:
    root, mount = transit
    key = new_key(transit)
    root.secrets.transit.rotate_key(key, mount_point=mount)
    v1 = root.secrets.transit.encrypt_data(key, b64(b"a"), key_version=1, mount_point=mount)["data"]
    assert v1["ciphertext"].startswith("vault:v1:")
    root.secrets.transit.update_key_configuration(key, min_encryption_version=2, mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="minimum encryption key version"):
        root.secrets.transit.encrypt_data(key, b64(b"a"), key_version=1, mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="cannot set min decryption version of 3"):
        root.secrets.transit.update_key_configuration(key, min_decryption_version=3, mount_point=mount)


def test_delete_is_refused_until_deletion_is_allowed(transit) -> None:
    root, mount = transit
    key = new_key(transit)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="deletion is not allowed for this key"):
        root.secrets.transit.delete_key(key, mount_point=mount)
    assert root.secrets.transit.read_key(key, mount_point=mount)["data"]["name"] == key
    root.secrets.transit.update_key_configuration(key, deletion_allowed=True, mount_point=mount)
    root.secrets.transit.delete_key(key, mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.transit.read_key(key, mount_point=mount)


def test_list_keys_shows_created_keys(transit) -> None:
    root, mount = transit
    names = {new_key(transit), new_key(transit)}
    assert names <= set(root.secrets.transit.list_keys(mount_point=mount)["data"]["keys"])


def test_plaintext_datakey_decrypts_back_to_its_plaintext(transit) -> None:
    root, mount = transit
    key = new_key(transit)
    data = root.secrets.transit.generate_data_key(key, key_type="plaintext", mount_point=mount)["data"]
    assert len(base64.b64decode(data["plaintext"])) == 32  # 256 bits by default
    decrypted = root.secrets.transit.decrypt_data(key, data["ciphertext"], mount_point=mount)["data"][
        "plaintext"
    ]
    assert decrypted == data["plaintext"]


def test_wrapped_datakey_has_no_plaintext_but_decrypts_to_key_material(transit) -> None:
    root, mount = transit
    key = new_key(transit)
    data = root.secrets.transit.generate_data_key(key, key_type="wrapped", bits=512, mount_point=mount)[
        "data"
    ]
    assert "plaintext" not in data
    decrypted = root.secrets.transit.decrypt_data(key, data["ciphertext"], mount_point=mount)["data"][
        "plaintext"
    ]
    assert len(base64.b64decode(decrypted)) == 64
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid bits"):
        # hvac refuses bad bits itself, so ask the server directly.
        root.adapter.post(f"/v1/{mount}/datakey/wrapped/{key}", json={"bits": 100})


def test_batch_encrypt_and_decrypt(transit) -> None:
    root, mount = transit
    key = new_key(transit)
    items = [{"plaintext": b64(b"one")}, {"plaintext": b64(b"two")}]
    results = root.secrets.transit.encrypt_data(key, None, batch_input=items, mount_point=mount)["data"]
    ciphertexts = [{"ciphertext": r["ciphertext"]} for r in results["batch_results"]]
    decrypted = root.secrets.transit.decrypt_data(key, None, batch_input=ciphertexts, mount_point=mount)[
        "data"
    ]
    assert [base64.b64decode(r["plaintext"]) for r in decrypted["batch_results"]] == [b"one", b"two"]


def test_unknown_key_and_malformed_input_are_400(transit) -> None:
    root, mount = transit
    key = new_key(transit)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="encryption key not found"):
        root.secrets.transit.decrypt_data("missing-key", "vault:v1:AAAA", mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="no prefix"):
        root.secrets.transit.decrypt_data(key, "not-a-ciphertext", mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="base64"):
        root.secrets.transit.encrypt_data(key, "***", mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.transit.read_key("missing-key", mount_point=mount)


def test_policy_granting_only_encrypt_cannot_decrypt(vault_server, transit) -> None:
    root, mount = transit
    key = new_key(transit)
    policy = f"pol-{uuid.uuid4().hex[:6]}"
    root.sys.create_or_update_acl_policy(
        policy, f'path "{mount}/encrypt/{key}" {{ capabilities = ["update"] }}'
    )
    token = root.auth.token.create(policies=[policy])["auth"]["client_token"]
    app = hvac.Client(url=vault_server.url, token=token)
    ciphertext = app.secrets.transit.encrypt_data(key, b64(b"s"), mount_point=mount)["data"]["ciphertext"]
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.transit.decrypt_data(key, ciphertext, mount_point=mount)
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.transit.encrypt_data(new_key(transit), b64(b"s"), mount_point=mount)  # a different key


def test_encrypt_to_a_missing_key_creates_it_only_with_create_capability(vault_server, transit) -> None:
    root, mount = transit
    update_only = f"pol-{uuid.uuid4().hex[:6]}"
    root.sys.create_or_update_acl_policy(
        update_only, f'path "{mount}/encrypt/*" {{ capabilities = ["update"] }}'
    )
    app = hvac.Client(
        url=vault_server.url, token=root.auth.token.create(policies=[update_only])["auth"]["client_token"]
    )
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.transit.encrypt_data("brand-new", b64(b"s"), mount_point=mount)
    upsert = root.secrets.transit.encrypt_data("brand-new", b64(b"s"), mount_point=mount)["data"]
    assert upsert["ciphertext"].startswith("vault:v1:")
    assert root.secrets.transit.read_key("brand-new", mount_point=mount)["data"]["latest_version"] == 1


def test_creating_a_key_is_an_update_operation(vault_server, transit) -> None:
    root, mount = transit
    create_only = f"pol-{uuid.uuid4().hex[:6]}"
    root.sys.create_or_update_acl_policy(
        create_only, f'path "{mount}/keys/*" {{ capabilities = ["create"] }}'
    )
    app = hvac.Client(
        url=vault_server.url, token=root.auth.token.create(policies=[create_only])["auth"]["client_token"]
    )
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.transit.create_key("made-by-app", mount_point=mount)


def test_associated_data_must_match_to_decrypt(transit) -> None:
    root, mount = transit
    key = new_key(transit)
    aad = b64(b"tenant=nation-a")
    ciphertext = root.secrets.transit.encrypt_data(key, b64(b"s"), associated_data=aad, mount_point=mount)[
        "data"
    ]
    decrypted = root.secrets.transit.decrypt_data(
        key, ciphertext["ciphertext"], associated_data=aad, mount_point=mount
    )["data"]
    assert base64.b64decode(decrypted["plaintext"]) == b"s"
    with pytest.raises(hvac.exceptions.InvalidRequest, match="message authentication failed"):
        root.secrets.transit.decrypt_data(
            key, ciphertext["ciphertext"], associated_data=b64(b"tenant=nation-b"), mount_point=mount
        )
