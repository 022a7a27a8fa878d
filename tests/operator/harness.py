"""The operator as the end-to-end tests run it: the real `python -m sovereign_operator` against the session
devstack (tests/servers.py), driven as users drive it; the fixtures over it are in tests/fixtures/operator.py.

- `Platform`: CRDs installed, the session's OpenBao prepared (transit, KV v2, Kubernetes auth pointed at the
  API server over TLS with the reviewer ServiceAccount's token), the operator's Vault policy written and an
  operator token made for it. `platform.vault(token)` / `root_vault()` verify OpenBao's certificate;
  `vault_env()` is VAULT_ADDR and VAULT_CACERT for subprocesses.
  The operator's Kubernetes identity is the chart's (sovereign_devstack.operator_identity): every operator
  process runs as `sovereign-system/sovereign-operator` with the roles the chart renders for its
  SOVEREIGN_RUNTIME; `assert_least_privilege` fails a test on any request the API server refused it (403 in
  the audit log): a call the chart does not grant.
- `start_operator_process(platform, log_dir, overrides) -> OperatorProcess`: one operator process with short
  test timings (reconcile every 2 s, Lease of 3 s) and the operator token; overrides are environment
  variables, e.g. `SOVEREIGN_FAILPOINTS="provision:after-namespace"` or `VAULT_ADDR="http://127.0.0.1:1"`.
  The handle has `.stop()` (SIGTERM, waits), `.kill()` (SIGKILL), `.wait_exit(timeout)`, `.returncode`,
  `.log_text()`, `.wait_for_log(text, timeout)` and `.is_leader()`.
  An operator on `local-ray` with SOVEREIGN_SERVICE_ACCOUNT_TOKEN_DIR gets the devstack's token projector
  (sovereign_devstack.token_projector, as `sovereign up` starts it, its own identity) writing that dir; it is
  stopped with the operator by `.stop()` (not by `.kill()`: a crashed operator leaves the node's kubelet).
- `started_operator(...)`: one process, started and leading, stopped after; `operator_with_nations(...)`: the
  same with Tenants applied and Ready, offboarded after.

Only one operator should lead per Lease; processes that share the default Lease name queue as standbys.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import pytest
from sovereign_devstack.operator_identity import USERNAME as OPERATOR_USERNAME
from sovereign_devstack.operator_identity import (
    OperatorIdentity,
    grant_operator_roles,
    install_operator_identity,
    register_webhook,
    webhook_serving_env,
)
from sovereign_devstack.pki import CertificateAuthority
from sovereign_devstack.processes import free_loopback_port, start_service, stop_service
from sovereign_devstack.token_projector import (
    PROJECTOR_SERVICE,
    TokenProjector,
    install_projector_identity,
    projector_spec,
)
from sovereign_devstack.token_reviewer import ensure_token_reviewer

from sovereign.clients.kubernetes import load_api_client
from sovereign.platform_setup import (
    create_operator_token,
    install_crds,
    install_operator_vault_policy,
    prepare_vault,
)
from tests.helpers import kubectl, wait_until
from tests.operator.tenants import apply_tenant, delete_tenant, wait_ready
from tests.servers import KubeAPI, VaultServer

TEST_ENV = {
    "SOVEREIGN_RECONCILE_INTERVAL_SECONDS": "2",
    "SOVEREIGN_LEASE_DURATION_SECONDS": "3",
    # Tenancy and policy tests run no Ray; the serving tests start the operator with their runtime.
    "SOVEREIGN_RUNTIME": "none",
}
LEADER_LOG = "leader: acquired Lease"
STARTED_LOG = "Initial authentication has finished"  # kopf, once the Lease is held


@dataclass
class OperatorRoles:
    """The chart's roles as last granted: rendered for one runtime at a time (its kuberay rules differ)."""

    kube: KubeAPI
    runtime: str | None = None

    def grant(self, runtime: str) -> None:
        if runtime != self.runtime:
            grant_operator_roles(load_api_client(str(self.kube.kubeconfig)), runtime)
            self.runtime = runtime


@dataclass(frozen=True)
class Platform:
    kube: KubeAPI
    vault_url: str
    root_token: str  # for test assertions only; the operator gets `operator_token`
    operator_token: str
    operator_identity: OperatorIdentity  # the chart's ServiceAccount: its kubeconfig and token file
    operator_roles: OperatorRoles
    ca: CertificateAuthority  # the devstack CA: issues the operator's webhook serving certificate
    token_projector: Path  # the token projector's kubeconfig (system:node:devstack, its devstack-only role)
    vault_cacert: Path  # the CA OpenBao's TLS certificate is verified with (VAULT_CACERT)
    vault_audit_log: Path  # OpenBao's file audit device: one JSON request entry per Vault call

    def vault_env(self) -> dict[str, str]:
        """VAULT_ADDR and VAULT_CACERT, for a subprocess that talks to the platform's Vault."""
        return {"VAULT_ADDR": self.vault_url, "VAULT_CACERT": str(self.vault_cacert)}

    def serve_webhook(self, directory: Path) -> dict[str, str]:
        """The environment of an operator serving the webhook on a free loopback port, and the chart's
        registration pointed at it (applied as the admin; delete WEBHOOK_CONFIGURATION after)."""
        port = free_loopback_port()
        register_webhook(self.kube.kubeconfig, port, self.ca)
        return webhook_serving_env(self.ca, directory, port)

    def project_tokens(self, directory: Path | str) -> None:
        """One pass of the devstack's token projector (its own identity) over `directory`: every nation's
        `<directory>/<nation>/token`, as the process `sovereign up` starts on local-ray keeps it."""
        TokenProjector(load_api_client(str(self.token_projector)), Path(directory)).project()

    def root_vault(self) -> hvac.Client:
        return self.vault(self.root_token)

    def vault(self, token: str | None = None) -> hvac.Client:
        """A client of the platform's Vault verifying its certificate; with no token until one logs in."""
        return hvac.Client(url=self.vault_url, token=token, verify=str(self.vault_cacert))

    def operator_env(self) -> dict[str, str]:
        return {
            **self.kube.env(),
            **self.operator_identity.env(),
            "VAULT_ADDR": self.vault_url,
            "VAULT_CACERT": str(self.vault_cacert),
            "VAULT_TOKEN": self.operator_token,
            **TEST_ENV,
        }


@dataclass
class OperatorProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False)
    audit_log: Path | None = None  # the API server's audit log, read from `audit_offset` (where it started)
    audit_offset: int = 0
    token_projector_dir: Path | None = None  # local-ray: the state dir (pid, log) of its token projector

    def refused_calls(self) -> list[str]:
        """The requests the API server refused (403) to the operator's ServiceAccount since this process
        started: a call the chart's roles do not grant, i.e. a chart bug (or a devstack one)."""
        if self.audit_log is None:
            return []
        with self.audit_log.open("rb") as log:
            log.seek(self.audit_offset)
            events = [json.loads(line) for line in log.read().splitlines()]
        return [
            f"{e['verb']} {e['objectRef']} ({e.get('userAgent')})"
            for e in events
            if e["user"].get("username") == OPERATOR_USERNAME
            and (e.get("responseStatus") or {}).get("code") == 403
            # the operator never runs kubectl: those are tests attacking with its credentials on purpose
            and not str(e.get("userAgent") or "").startswith("kubectl/")
        ]

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
        if self.token_projector_dir is not None:
            stop_service(self.token_projector_dir, PROJECTOR_SERVICE, timeout=5.0)
        return self.proc.returncode

    def kill(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        return self.proc.returncode

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout=timeout)


def prepare_platform(
    kube_api: KubeAPI,
    vault_server: VaultServer,
    devstack_ca: CertificateAuthority,
    tmp_path_factory: pytest.TempPathFactory,
) -> Platform:
    """CRDs installed, the operator's identity (the chart's) and the token projector's, the session's Vault
    prepared as `sovereign up` prepares it, and an operator token."""
    install_crds(load_api_client(str(kube_api.kubeconfig)))
    # The operator's ServiceAccount and token, once per session; its roles follow each operator's runtime.
    identity = install_operator_identity(kube_api.kubeconfig, tmp_path_factory.mktemp("operator-sa"), "none")
    projector = install_projector_identity(
        kube_api.kubeconfig, kube_api.url, devstack_ca, tmp_path_factory.mktemp("token-projector")
    )
    kube_side = {
        "operator_identity": identity,
        "operator_roles": OperatorRoles(kube_api, runtime="none"),
        "ca": devstack_ca,
        "token_projector": projector,
    }
    root = vault_server.client()
    prepare_platform_vault(root, kube_api)
    return Platform(
        kube_api,
        vault_server.url,
        vault_server.root_token,
        create_operator_token(root),
        **kube_side,
        vault_cacert=vault_server.ca_cert,
        vault_audit_log=vault_server.server.audit_log,
    )


def prepare_platform_vault(root: hvac.Client, kube_api: KubeAPI) -> None:
    """Vault's Kubernetes auth as a site with a Vault outside the cluster sets it up (the API server's CA and
    a reviewer ServiceAccount's token for TokenReview, as `up` does), and the operator's policy."""
    prepare_vault(
        root,
        kube_api.url,
        [kube_api.service_account_certificate.read_text()],
        kubernetes_ca_cert=kube_api.ca_cert.read_text(),
        token_reviewer_jwt=ensure_token_reviewer(load_api_client(str(kube_api.kubeconfig))),
    )
    install_operator_vault_policy(root)


def start_operator_process(platform: Platform, log_dir: Path, overrides: dict[str, str]) -> OperatorProcess:
    """One operator process with the platform's environment and `overrides`, its log under `log_dir`; not
    waited for (see `started_operator`)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"operator-{len(list(log_dir.iterdir()))}.log"
    env = {**platform.operator_env(), **overrides, "PYTHONUNBUFFERED": "1"}
    env = {key: value for key, value in env.items() if value is not None}
    platform.operator_roles.grant(env.get("SOVEREIGN_RUNTIME", "kuberay"))  # the operator's default runtime
    projector_dir = None
    token_dir = env.get("SOVEREIGN_SERVICE_ACCOUNT_TOKEN_DIR")
    if env.get("SOVEREIGN_RUNTIME") == "local-ray" and token_dir:  # no kubelet: the devstack's projector
        projector_dir = log_path.with_suffix(".token-projector")
        spec = projector_spec(platform.token_projector, Path(token_dir), free_loopback_port(), interval=1.0)
        start_service(spec, projector_dir)
    audit_log = platform.kube.audit_log
    offset = audit_log.stat().st_size if audit_log.exists() else 0
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sovereign_operator"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return OperatorProcess(proc, log_path, env, audit_log, offset, projector_dir)


def assert_least_privilege(processes: list[OperatorProcess]) -> None:
    """Every operator test is a test of the chart's roles: a call they do not grant fails it."""
    refused = sorted({call for process in processes for call in process.refused_calls()})
    assert not refused, "the API server refused the operator (403), the chart's roles lack:\n" + "\n".join(
        refused
    )


@contextlib.contextmanager
def started_operator(
    platform: Platform, directory: Path, extra_env: dict[str, str]
) -> Iterator[OperatorProcess]:
    """One operator process, started and leading; on the way out its log is printed, and (unless the body
    failed) every call it made must have been allowed by the chart's roles."""
    process = start_operator_process(platform, directory, extra_env)
    try:
        process.wait_for_log(STARTED_LOG, timeout=30)
        yield process
    finally:
        process.stop()
        print(f"--- {process.log_path}\n{process.log_text()[-20000:]}")
    assert_least_privilege([process])


@contextlib.contextmanager
def operator_with_nations(
    platform: Platform,
    directory: Path,
    nations: Mapping[str, Mapping[str, Any]],
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[OperatorProcess]:
    """An operator started and leading, and the Tenants `nations` (name → `apply_tenant`'s spec fields; the
    nation is the name in capitals) applied and waited for until Ready; after, the Tenants offboarded and
    the operator stopped, its log printed."""
    process = start_operator_process(platform, directory, dict(extra_env or {}))
    try:
        process.wait_for_log(STARTED_LOG, timeout=30)
        for name, spec in nations.items():
            apply_tenant(platform.kube, name, name.upper(), **spec)
        for name in nations:
            wait_ready(platform.kube, name, timeout=60)
        yield process
    finally:
        try:
            for name in nations:  # all offboarded at once, then each waited for
                kubectl(platform.kube, "delete", "tenant", name, "--ignore-not-found", "--wait=false")
            for name in nations:
                delete_tenant(platform.kube, name, timeout=120)
        finally:
            process.stop()
            print(f"--- {process.log_path}\n{process.log_text()[-20000:]}")
