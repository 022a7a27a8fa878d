"""The dev Vault as a process: clean exit on SIGTERM and an access log that never shows secrets."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import time

import httpx
import hvac
from sovereign_devstack.processes import free_loopback_port

ROOT_TOKEN = "process-test-root-token"


def wait_healthy(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited during start-up"
        try:
            if httpx.get(f"{url}/v1/sys/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("the server never became healthy")


def test_sigterm_exits_cleanly_and_the_log_has_no_secrets(tmp_path) -> None:
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "vault.log"
    argv = [
        sys.executable,
        "-m",
        "sovereign_devstack.vault",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--root-token",
        ROOT_TOKEN,
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(url, proc)
        client = hvac.Client(url=url, token=ROOT_TOKEN)
        client.secrets.kv.v2.create_or_update_secret(path="app", secret={"password": "hunter2-secret-value"})
        client.sys.enable_secrets_engine("transit")
        client.secrets.transit.create_key("k")
        plaintext = base64.b64encode(b"plaintext-marker").decode()
        client.secrets.transit.encrypt_data("k", plaintext)
        child = client.auth.token.create(policies=["default"])["auth"]["client_token"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = log_path.read_text()
    assert "POST /v1/secret/data/app 200" in log
    assert "POST /v1/transit/encrypt/k 200" in log
    for secret in ("hunter2-secret-value", plaintext, "plaintext-marker", ROOT_TOKEN, child):
        assert secret not in log
