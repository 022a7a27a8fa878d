"""Fixtures for the operator's end-to-end tests: the real `python -m sovereign_operator` against the session
devstack (kube_api, vault_server from tests/conftest.py), driven as users drive it.

- `platform` (session): CRDs installed, Vault prepared (transit, KV v2, Kubernetes auth trusting the API
  server's ServiceAccount key), the operator's Vault policy written and an operator token made for it.
- `start_operator(**env_overrides) -> OperatorProcess` (function scope): starts one operator process with
  short test timings (reconcile every 2 s, Lease of 3 s) and the operator token; every process it started is
  stopped when the test ends. Overrides are environment variables, e.g.
  `start_operator(SOVEREIGN_FAILPOINTS="provision:after-namespace")` or `VAULT_ADDR="http://127.0.0.1:1"`.
  The handle has `.stop()` (SIGTERM, waits), `.kill()` (SIGKILL), `.wait_exit(timeout)`, `.returncode`,
  `.log_text()`, `.wait_for_log(text, timeout)` and `.is_leader()`.
- `running_operator` (module scope): one leading operator for a module's tests, with the environment
  overrides of `operator_extra_env` (module scope, none by default; a module overrides that fixture).
- `running_operator_with_webhook` (module scope): the same, also serving the validating webhooks on a free
  loopback port (as `sovereign up` does); their registration is deleted again when the module ends.

Only one operator should lead per Lease; processes that share the default Lease name queue as standbys.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import hvac
import pytest
from sovereign_devstack.processes import free_loopback_port
from sovereign_operator.admission_server import ADMISSION_CONFIGURATION

from sovereign.clients.kubernetes import load_api_client
from sovereign.platform_setup import (
    create_operator_token,
    install_crds,
    install_operator_vault_policy,
    prepare_vault,
)
from tests.conftest import KubeAPI, VaultServer
from tests.helpers import kubectl, wait_until

TEST_ENV = {
    "SOVEREIGN_RECONCILE_INTERVAL_SECONDS": "2",
    "SOVEREIGN_LEASE_DURATION_SECONDS": "3",
    # Tenancy and policy tests run no Ray; the serving tests start the operator with their runtime.
    "SOVEREIGN_RUNTIME": "none",
}
LEADER_LOG = "leader: acquired Lease"
STARTED_LOG = "Initial authentication has finished"  # kopf, once the Lease is held


@dataclass(frozen=True)
class Platform:
    kube: KubeAPI
    vault_url: str
    root_token: str  # for test assertions only; the operator gets `operator_token`
    operator_token: str

    def root_vault(self) -> hvac.Client:
        return hvac.Client(url=self.vault_url, token=self.root_token)

    def operator_env(self) -> dict[str, str]:
        return {
            **self.kube.env(),
            "VAULT_ADDR": self.vault_url,
            "VAULT_TOKEN": self.operator_token,
            **TEST_ENV,
        }


@dataclass
class OperatorProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False)

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        wait_until(lambda: text in self.log_text(), f"operator log shows {text!r}", timeout=timeout)

    def is_leader(self) -> bool:
        return LEADER_LOG in self.log_text()

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def kill(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        return self.proc.returncode

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout=timeout)


@pytest.fixture(scope="session")
def platform(kube_api: KubeAPI, vault_server: VaultServer) -> Platform:
    install_crds(load_api_client(str(kube_api.kubeconfig)))
    root = hvac.Client(url=vault_server.url, token=vault_server.root_token)
    prepare_vault(root, kube_api.url, [kube_api.service_account_certificate.read_text()])
    install_operator_vault_policy(root)
    return Platform(kube_api, vault_server.url, vault_server.root_token, create_operator_token(root))


def _start(platform: Platform, log_dir: Path, overrides: dict[str, str]) -> OperatorProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"operator-{len(list(log_dir.iterdir()))}.log"
    env = {**platform.operator_env(), **overrides, "PYTHONUNBUFFERED": "1"}
    env = {key: value for key, value in env.items() if value is not None}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sovereign_operator"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return OperatorProcess(proc, log_path, env)


def _stop_all(processes: list[OperatorProcess], request: pytest.FixtureRequest) -> None:
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for process in processes:
        process.stop()
        if failed or os.environ.get("SOVEREIGN_TEST_SHOW_OPERATOR_LOG"):
            print(f"--- {process.log_path}\n{process.log_text()[-20000:]}")


@pytest.fixture
def start_operator(
    platform: Platform, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., OperatorProcess]]:
    started: list[OperatorProcess] = []

    def start(**env_overrides: str) -> OperatorProcess:
        process = _start(platform, tmp_path / "operator-logs", env_overrides)
        started.append(process)
        return process

    try:
        yield start
    finally:
        _stop_all(started, request)


@pytest.fixture(scope="module")
def operator_extra_env() -> dict[str, str]:
    return {}


@pytest.fixture(scope="module")
def running_operator(
    platform: Platform,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    operator_extra_env: dict[str, str],
) -> Iterator[OperatorProcess]:
    process = _start(platform, tmp_path_factory.mktemp("operator"), operator_extra_env)
    try:
        process.wait_for_log(STARTED_LOG, timeout=30)
        yield process
    finally:
        process.stop()
        print(f"--- {process.log_path}\n{process.log_text()[-20000:]}")


@pytest.fixture(scope="module")
def running_operator_with_webhook(
    platform: Platform, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    webhook = {"SOVEREIGN_WEBHOOK_HOST": "127.0.0.1", "SOVEREIGN_WEBHOOK_PORT": str(free_loopback_port())}
    process = _start(platform, tmp_path_factory.mktemp("operator"), webhook)
    try:
        process.wait_for_log(STARTED_LOG, timeout=30)
        yield process
    finally:
        process.stop()
        # With failurePolicy Fail, a registration left behind would refuse every later object it covers.
        kubectl(
            platform.kube,
            "delete",
            "validatingwebhookconfiguration",
            ADMISSION_CONFIGURATION,
            "--ignore-not-found",
        )
        print(f"--- {process.log_path}\n{process.log_text()[-20000:]}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Remember each phase's report on the test item, so fixtures can print logs for failed tests."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
