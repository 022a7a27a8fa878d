"""Pure tests of the dev Vault's engines where time or internals matter (fake clock, no HTTP)."""

from __future__ import annotations

import base64
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sovereign_devstack.vault.auth_kubernetes import KubernetesAuth
from sovereign_devstack.vault.common import VaultError
from sovereign_devstack.vault.kv import KVv2Engine
from sovereign_devstack.vault.mounts import MountTable
from sovereign_devstack.vault.transit import TransitEngine


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def now(self) -> float:
        return self.t


def test_transit_auto_rotates_after_its_period() -> None:
    clock = FakeClock()
    transit = TransitEngine(clock)
    transit.create_key("k", {"auto_rotate_period": "24h"})
    clock.t += 23 * 3600
    assert transit.handle("read", "keys/k", {})["latest_version"] == 1
    clock.t += 3600
    assert transit.handle("read", "keys/k", {})["latest_version"] == 2


def test_transit_refuses_auto_rotate_periods_under_an_hour() -> None:
    with pytest.raises(VaultError, match="at least an hour"):
        TransitEngine().create_key("k", {"auto_rotate_period": "30m"})


def test_ciphertext_from_another_key_does_not_decrypt() -> None:
    transit = TransitEngine()
    transit.create_key("a", {})
    transit.create_key("b", {})
    ciphertext = transit.encrypt("a", {"plaintext": base64.b64encode(b"x").decode()})["ciphertext"]
    with pytest.raises(VaultError, match="message authentication failed"):
        transit.decrypt("b", {"ciphertext": ciphertext})


def test_chacha20_keys_round_trip() -> None:
    transit = TransitEngine()
    transit.create_key("c", {"type": "chacha20-poly1305"})
    ciphertext = transit.encrypt("c", {"plaintext": base64.b64encode(b"hello").decode()})["ciphertext"]
    assert base64.b64decode(transit.decrypt("c", {"ciphertext": ciphertext})["plaintext"]) == b"hello"


def test_kv_times_come_from_the_clock() -> None:
    clock = FakeClock()
    kv = KVv2Engine(clock)
    kv.write("a", {"data": {"v": 1}})
    clock.t += 60
    kv.delete_latest("a")
    meta = kv.read_metadata("a")["versions"]["1"]
    assert meta["created_time"].startswith("2023-11-14T22:13:20")
    assert meta["deletion_time"].startswith("2023-11-14T22:14:20")


def test_kv_merge_patch_removes_nulls_and_merges_nested_maps() -> None:
    kv = KVv2Engine()
    kv.write("a", {"data": {"db": {"user": "u", "password": "p"}, "drop": 1}})
    kv.patch("a", {"data": {"db": {"password": "q"}, "drop": None}})
    assert kv.read("a")["data"] == {"db": {"user": "u", "password": "q"}}


def test_mount_routing_picks_the_longest_mount_and_rejects_overlaps() -> None:
    mounts = MountTable()
    mounts.enable_secrets("transit", {"type": "transit"})
    mounts.enable_secrets("nation-a/transit", {"type": "transit"})
    mount, rest = mounts.route_secrets("nation-a/transit/encrypt/k")
    assert (mount.path, rest) == ("nation-a/transit/", "encrypt/k")
    assert mounts.route_secrets("transitx/encrypt/k") is None
    with pytest.raises(VaultError, match="path is already in use"):
        mounts.enable_secrets("nation-a", {"type": "transit"})
    with pytest.raises(VaultError, match="reserved path"):
        mounts.enable_secrets("sys/x", {"type": "transit"})


def _public_pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_kubernetes_login_checks_every_configured_key_and_refuses_unsigned_tokens() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    auth = KubernetesAuth()
    auth.configure(
        {"kubernetes_host": "https://k8s", "pem_keys": [_public_pem(rsa_key), _public_pem(ec_key)]}
    )
    claims = {
        "exp": int(time.time()) + 60,
        "kubernetes.io": {"namespace": "ns", "serviceaccount": {"name": "sa", "uid": "u-1"}},
    }
    role = {"audience": ""}
    assert auth.verify_locally(jwt.encode(claims, ec_key, algorithm="ES256"), role).name == "sa"
    assert auth.verify_locally(jwt.encode(claims, rsa_key, algorithm="RS256"), role).namespace == "ns"
    for forged in (
        jwt.encode(claims, "k" * 32, algorithm="HS256"),
        jwt.encode(claims, None, algorithm="none"),
    ):
        with pytest.raises(VaultError) as err:
            auth.verify_locally(forged, role)
        assert err.value.status == 403
