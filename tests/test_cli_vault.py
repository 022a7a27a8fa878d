"""`sovereign status` and `sovereign vault unseal` against the devstack's real OpenBao, sealed as a restart
leaves it (a sealed Vault serves no key until it is unsealed)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import hvac
import pytest

from sovereign.cli.envfile import read_env_file
from tests.test_cli_devstack import sovereign, status_json

pytestmark = pytest.mark.process  # each test runs the CLI, most `sovereign up`

UP = ("--no-examples", "--no-ray", "--trace-viewer", "none", "--output", "json")


def _root(env: dict[str, str]) -> hvac.Client:
    return hvac.Client(url=env["VAULT_ADDR"], token=env["VAULT_TOKEN"], verify=env["VAULT_CACERT"])


def _vault_row(state_dir: Path) -> dict:
    code, status = status_json(state_dir)
    [row] = [c for c in status["components"] if c["name"] == "vault"]
    return {"code": code, **row}


@pytest.mark.faults  # `make faults`: kept out of `make test` for its time
def test_status_says_sealed_and_unseal_or_up_opens_it_again(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    sovereign("up", "--state-dir", str(state_dir), *UP)
    try:
        root = _root(read_env_file(state_dir / "env"))
        assert _vault_row(state_dir)["detail"] == "unsealed, token valid"

        root.sys.seal()
        row = _vault_row(state_dir)
        assert row["code"] == 1 and row["healthy"] is False
        assert row["detail"] == "sealed: run `sovereign vault unseal`"

        answer = sovereign("vault", "unseal", "--state-dir", str(state_dir), "-o", "json")
        unsealed = json.loads(answer.stdout)
        assert unsealed["wasSealed"] is True and unsealed["sealed"] is False
        assert _vault_row(state_dir) == {**row, "code": 0, "healthy": True, "detail": "unsealed, token valid"}
        again = sovereign("vault", "unseal", "--state-dir", str(state_dir))
        assert "already unsealed" in again.stdout

        # `sovereign up` on a running stack whose Vault is sealed unseals it, and starts nothing new.
        pids = {c["name"]: c["pid"] for c in status_json(state_dir)[1]["components"]}
        root.sys.seal()
        sovereign("up", "--state-dir", str(state_dir), *UP)
        code, status = status_json(state_dir)
        assert code == 0 and {c["name"]: c["pid"] for c in status["components"]} == pids
    finally:
        sovereign("down", "--state-dir", str(state_dir))


def test_unseal_without_a_platform_says_so(tmp_path: Path) -> None:
    result = sovereign("vault", "unseal", "--state-dir", str(tmp_path / "nothing"), check=False)
    assert result.returncode == 1 and "not up" in result.stderr


@pytest.mark.faults  # `make faults`: kept out of `make test` for its time
def test_down_then_up_brings_the_same_vault_back_with_its_keys(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    sovereign("up", "--state-dir", str(state_dir), *UP)
    try:
        before = read_env_file(state_dir / "env")
        root = _root(before)
        root.secrets.transit.create_key("down-up-probe")
        plaintext = base64.b64encode(b"written before down").decode()
        ciphertext = root.secrets.transit.encrypt_data("down-up-probe", plaintext)["data"]["ciphertext"]
        sovereign("down", "--state-dir", str(state_dir))

        sovereign("up", "--state-dir", str(state_dir), *UP)  # OpenBao starts sealed; `up` unseals it
        after = read_env_file(state_dir / "env")
        assert {k: after[k] for k in ("VAULT_ADDR", "VAULT_CACERT", "VAULT_TOKEN")} == {
            k: before[k] for k in ("VAULT_ADDR", "VAULT_CACERT", "VAULT_TOKEN")
        }
        decrypted = root.secrets.transit.decrypt_data("down-up-probe", ciphertext)["data"]["plaintext"]
        assert decrypted == plaintext
    finally:
        sovereign("down", "--state-dir", str(state_dir))
