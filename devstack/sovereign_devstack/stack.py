"""The devstack as a whole: start its services, remember them in DIR/state.json, stop exactly those.

`sovereign up` calls `start_devstack`; `sovereign down` calls `stop_devstack`.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from sovereign_devstack.keys import write_service_account_key
from sovereign_devstack.kubeconfig import admin_key_pair, serving_key_pair, write_kubeconfig
from sovereign_devstack.openbao import (
    OpenBaoError,
    OpenBaoServer,
    former_port,
    read_init,
    start_openbao,
    unseal,
)
from sovereign_devstack.operator_identity import (
    install_operator_identity,
    register_webhook,
    webhook_serving_env,
)
from sovereign_devstack.pki import ensure_ca
from sovereign_devstack.processes import (
    ServiceStartError,
    free_loopback_port,
    is_running,
    read_pid,
    start_service,
    stop_service,
    wait_for_port,
)
from sovereign_devstack.services import (
    KUBE_SERVICE,
    OPERATOR_SERVICE,
    RAY_SERVICE,
    TRACE_VIEWER_SERVICE,
    VAULT_SERVICE,
    kube_api_spec,
    operator_spec,
    phoenix_spec,
    private_ray_temp_root,
    ray_head_spec,
)
from sovereign_devstack.token_projector import (
    PROJECTOR_SERVICE,
    install_projector_identity,
    projector_spec,
)
from sovereign_devstack.trace_viewer import trace_env

AUDIT_DIR = "audit"  # under the state dir: the nations' audit logs (`sovereign audit` looks there)
KUBE_DATA_DIR = "kube-data"  # under the state dir: the Kubernetes API's objects (its etcd)

STATE_FILE = "state.json"
OPERATOR_IDENTITY_DIR = "operator"  # under the state dir: the operator's token, kubeconfig, webhook cert
PROJECTOR_IDENTITY_DIR = "token-projector"  # under the state dir: the token projector's cert and kubeconfig
TOKEN_DIR = "serviceaccount-tokens"  # under the state dir: the nations' serving tokens (local-ray)
SOURCES_DIR = "sources"  # under the state dir: the nations' document sources, `<dir>/<nation>/` (local-ray)
PKI_DIR = "pki"  # under the state dir: the devstack CA
VAULT_DIR = "vault"  # under the state dir: OpenBao's config, raft data, TLS key and (devstack only) init.json


class DevstackState(BaseModel):
    """What `sovereign up` started (or, with --external, what it was pointed at)."""

    external: bool
    kube_url: str
    kubeconfig: str
    vault_addr: str
    vault_token: str
    vault_cacert: str | None = None  # the CA file Vault's TLS certificate is verified with (VAULT_CACERT)
    services: list[str] = []  # names of the processes this state dir owns
    service_account_certificate: str | None = None  # PEM; Vault verifies ServiceAccount tokens with it
    operator_liveness_url: str | None = None  # the operator's kopf liveness endpoint, once started
    ray_dashboard_url: str | None = None  # the local Ray cluster's dashboard (Serve REST API), once started
    gateway_url: str | None = None  # Ray Serve's HTTP base: a nation's endpoint is <gateway_url>/<nation>/v1
    ray_token: str | None = None  # the local Ray cluster's auth token; its dashboard refuses requests without
    ray_metrics_url: str | None = None  # the local Ray node's Prometheus metrics (replicas' metrics included)
    ray_temp_root: str | None = None  # the local Ray's RAY_TMPDIR (private, 0700), removed by `down`
    trace_viewer_url: str | None = None  # Phoenix: its UI, and OTLP/HTTP at <url>/v1/traces, once started
    token_projector_url: str | None = None  # local-ray: the token projector's health endpoint, once started


def load_state(state_dir: Path) -> DevstackState | None:
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    return DevstackState.model_validate_json(path.read_text())


def save_state(state_dir: Path, state: DevstackState) -> None:
    path = state_dir / STATE_FILE
    path.touch(mode=0o600)  # it holds the dev root token
    path.write_text(json.dumps(state.model_dump(), indent=2))


def running_services(state_dir: Path, state: DevstackState) -> dict[str, int | None]:
    """Each owned service's pid if it is alive, else None."""
    pids = {}
    for name in state.services:
        pid = read_pid(state_dir, name)
        pids[name] = pid if pid is not None and is_running(pid) else None
    return pids


def start_devstack(state_dir: Path, progress: Callable[[str], None]) -> DevstackState:
    """Start the Kubernetes API emulator and OpenBao (initialized, unsealed); reuse them if they already run
    (unsealing a sealed OpenBao).

    If one of them fails to start, whatever this call started is stopped again.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    previous = load_state(state_dir)
    if previous is not None and not previous.external:
        # The control plane decides reuse; a dead operator alone is restarted by start_operator.
        # started again by start_operator / start_local_ray / start_trace_viewer
        restartable = (OPERATOR_SERVICE, PROJECTOR_SERVICE, RAY_SERVICE, TRACE_VIEWER_SERVICE)
        alive = {n: pid for n, pid in running_services(state_dir, previous).items() if n not in restartable}
        if alive and all(alive.values()):
            progress("devstack already running; reusing it")
            if previous.vault_cacert and unseal_vault(state_dir, previous):
                progress(f"Vault at {previous.vault_addr} was sealed; unsealed it")
            return previous
        for name in previous.services:  # a half-dead stack: start again from clean
            stop_service(state_dir, name)

    key_files = write_service_account_key(state_dir / "service-account.key")
    started: list[str] = []
    try:
        # The API server over TLS from the devstack CA; the admin authenticates with a client certificate.
        pki = state_dir.resolve() / PKI_DIR
        kube_ca = ensure_ca(pki)
        kube_port = free_loopback_port()
        kube_spec = kube_api_spec(
            kube_port,
            key_files.private_key,
            state_dir / KUBE_DATA_DIR,
            serving=serving_key_pair(kube_ca, pki),
            client_ca_file=kube_ca.certificate,
        )
        start_service(kube_spec, state_dir)
        started.append(KUBE_SERVICE)
        kube_url = f"https://127.0.0.1:{kube_port}"
        progress(f"Kubernetes API emulator at {kube_url}")

        # OpenBao on its former port when free (addresses stay stable across down/up), with its raft data:
        # every key and secret survives; it starts sealed and is unsealed with the key init.json keeps.
        ca = ensure_ca(pki)  # the one devstack CA: the API server's and OpenBao's certificates
        vault_dir = state_dir.resolve() / VAULT_DIR
        vault_port = _free_or_none(former_port(vault_dir)) or free_loopback_port()
        vault = OpenBaoServer(directory=vault_dir, port=vault_port, ca_file=ca.certificate)
        first_start = read_init(vault.init_file) is None
        keys = start_openbao(state_dir, vault, ca)
        started.append(VAULT_SERVICE)
        vault_addr = vault.url
        progress(f"Vault (OpenBao) at {vault_addr}, {'initialized' if first_start else 'unsealed'}")
    except ServiceStartError:
        for name in started:
            stop_service(state_dir, name)
        raise

    kubeconfig = write_kubeconfig(
        state_dir / "kubeconfig", kube_url, kube_ca.certificate, client=admin_key_pair(kube_ca, pki)
    )
    state = DevstackState(
        external=False,
        kube_url=kube_url,
        kubeconfig=str(kubeconfig.resolve()),
        vault_addr=vault_addr,
        vault_token=keys.root_token,
        vault_cacert=str(ca.certificate),
        services=started,
        service_account_certificate=key_files.certificate.read_text(),
    )
    save_state(state_dir, state)
    return state


def start_operator(
    state_dir: Path, state: DevstackState, operator_token: Callable[[], str], progress: Callable[[str], None]
) -> DevstackState:
    """Start the operator (`python -m sovereign_operator`) unless this state dir's operator already runs; on
    local-ray, first the token projector (unless it runs).

    `operator_token` is called only when a process is started: it makes the operator's Vault token.
    The operator joins the state's services, so `sovereign down` stops it and `status` shows it.
    """
    serving = serving_env(state)
    runtime = serving.get("SOVEREIGN_RUNTIME", "kuberay")  # the operator's default without a local Ray
    if runtime == "local-ray":  # no kubelet: the devstack's token projector writes the nations' tokens
        state = start_token_projector(state_dir, state, progress)
    if OPERATOR_SERVICE in state.services and running_services(state_dir, state).get(OPERATOR_SERVICE):
        progress("operator already running; reusing it")
        return state
    port = free_loopback_port()
    webhook_port = free_loopback_port()
    # The operator runs as the chart's ServiceAccount with the chart's roles for its runtime, a new token on
    # each start; the chart's webhook registration points at its loopback port, its certificate from the CA.
    identity_dir = state_dir.resolve() / OPERATOR_IDENTITY_DIR
    identity = install_operator_identity(Path(state.kubeconfig), identity_dir, runtime)
    ca = ensure_ca(state_dir.resolve() / PKI_DIR)
    register_webhook(Path(state.kubeconfig), webhook_port, ca)
    webhook_env = webhook_serving_env(ca, identity_dir, webhook_port)
    # The nations' audit logs under the state dir (`sovereign audit` reads $SOVEREIGN_STATE_DIR/audit), and
    # the serving ServiceAccount tokens their gateways' audit writers log in to Vault with.
    audit_env = {
        "SOVEREIGN_AUDIT_DIR": str(state_dir.resolve() / AUDIT_DIR),
        "SOVEREIGN_SERVICE_ACCOUNT_TOKEN_DIR": str(state_dir.resolve() / TOKEN_DIR),
        "SOVEREIGN_DATASET_DIR": str(state_dir.resolve() / "datasets"),  # the nations' encrypted indexes
        "SOVEREIGN_DATASET_SOURCE_ROOT": str(state_dir.resolve() / SOURCES_DIR),  # and their documents
    }
    spec = operator_spec(
        port,
        str(identity.kubeconfig),
        state.vault_addr,
        operator_token(),
        {
            **identity.env(),
            **webhook_env,
            **serving,
            **audit_env,
            **trace_env(state.trace_viewer_url),
            **_vault_tls_env(state),
        },
    )
    start_service(spec, state_dir)
    # Ready, as a readiness probe would say before a Service routes to the pod: its webhook listens too
    # (kopf starts it after the liveness endpoint; the API server calls it on the first apply).
    if not wait_for_port(webhook_port, timeout=60):
        stop_service(state_dir, OPERATOR_SERVICE)
        raise ServiceStartError(f"the operator's webhook never listened on 127.0.0.1:{webhook_port}")
    services = [*[name for name in state.services if name != OPERATOR_SERVICE], OPERATOR_SERVICE]
    state = state.model_copy(
        update={"services": services, "operator_liveness_url": f"http://127.0.0.1:{port}/healthz"}
    )
    save_state(state_dir, state)
    progress(f"operator running (log: {state_dir / 'logs' / (OPERATOR_SERVICE + '.log')})")
    return state


def start_token_projector(
    state_dir: Path, state: DevstackState, progress: Callable[[str], None]
) -> DevstackState:
    """Start the token projector (sovereign_devstack.token_projector: the kubelet's part on local-ray) for
    DIR/serviceaccount-tokens, with its own client certificate and role, unless it already runs."""
    if PROJECTOR_SERVICE in state.services and running_services(state_dir, state).get(PROJECTOR_SERVICE):
        return state
    pki = state_dir.resolve() / PKI_DIR
    kubeconfig = install_projector_identity(
        Path(state.kubeconfig), state.kube_url, ensure_ca(pki), state_dir.resolve() / PROJECTOR_IDENTITY_DIR
    )
    port = free_loopback_port()
    start_service(projector_spec(kubeconfig, state_dir.resolve() / TOKEN_DIR, port), state_dir)
    services = [*[name for name in state.services if name != PROJECTOR_SERVICE], PROJECTOR_SERVICE]
    state = state.model_copy(
        update={"services": services, "token_projector_url": f"http://127.0.0.1:{port}/healthz"}
    )
    save_state(state_dir, state)
    progress("token projector running: the nations' ServiceAccount tokens for local-ray (devstack only)")
    return state


def _vault_tls_env(state: DevstackState) -> dict[str, str]:
    """VAULT_CACERT: the operator verifies OpenBao's certificate with the devstack CA (as Vault's CLI)."""
    return {"VAULT_CACERT": state.vault_cacert} if state.vault_cacert else {}


def serving_env(state: DevstackState) -> dict[str, str]:
    """How the operator reaches the local Ray cluster (the `local-ray` runtime); empty without one."""
    if not state.ray_dashboard_url or not state.gateway_url:
        return {}
    return {
        "SOVEREIGN_RUNTIME": "local-ray",
        "SOVEREIGN_RAY_DASHBOARD_URL": state.ray_dashboard_url,
        "SOVEREIGN_RAY_TOKEN": state.ray_token or "",
        "SOVEREIGN_SERVE_HTTP_PORT": state.gateway_url.rsplit(":", 1)[1],
        "SOVEREIGN_GATEWAY_URL": state.gateway_url,
        "SOVEREIGN_SERVING_INTERVAL_SECONDS": "2",
        # 2 CPUs shared by every nation's gateway and models: Ray reserves a twentieth of each request.
        "SOVEREIGN_SERVING_CPU_SCALE": "0.05",
        "SOVEREIGN_SERVING_MEMORY_SCALE": "0.01",
    }


def start_local_ray(
    state_dir: Path, state: DevstackState, progress: Callable[[str], None], num_cpus: int = 2
) -> DevstackState:
    """Start a local Ray head (the `local-ray` runtime) unless this state dir's Ray already runs.

    Ray Serve's HTTP port is chosen here and handed to the operator, which puts it in every Serve config
    (`http_options`), so the gateway URL is known before any application exists.
    """
    if RAY_SERVICE in state.services and running_services(state_dir, state).get(RAY_SERVICE):
        progress("Ray already running; reusing it")
        return state
    dashboard_port = free_loopback_port()
    token = secrets.token_hex(32)
    metrics_port = free_loopback_port()
    home = state_dir / "ray-home"
    if state.ray_temp_root:  # a former head's, which is not running
        shutil.rmtree(state.ray_temp_root, ignore_errors=True)
    temp_root = private_ray_temp_root()
    spec = ray_head_spec(
        dashboard_port, num_cpus, token, home=home, metrics_port=metrics_port, temp_root=temp_root
    )
    # The head's environment reaches every worker (Serve controller, proxies, replicas): spans to the viewer.
    spec = dataclasses.replace(spec, env={**(spec.env or {}), **trace_env(state.trace_viewer_url)})
    start_service(spec, state_dir, timeout=120.0)
    services = [*[name for name in state.services if name != RAY_SERVICE], RAY_SERVICE]
    state = state.model_copy(
        update={
            "services": services,
            "ray_dashboard_url": f"http://127.0.0.1:{dashboard_port}",
            "gateway_url": f"http://127.0.0.1:{free_loopback_port()}",
            "ray_token": token,
            "ray_metrics_url": f"http://127.0.0.1:{metrics_port}/metrics",
            "ray_temp_root": str(temp_root),
        }
    )
    save_state(state_dir, state)
    progress(f"Ray {state.ray_dashboard_url} (dashboard); gateways will answer at {state.gateway_url}")
    return state


def start_trace_viewer(
    state_dir: Path,
    state: DevstackState,
    executable: Path,
    progress: Callable[[str], None],
    timeout: float = 300.0,
) -> DevstackState:
    """Start Phoenix (`executable serve`) as the trace viewer unless this state dir's viewer already runs.

    Its database lives in DIR/trace-viewer. The first start creates it (SQLite migrations: 10-60 s measured,
    reported up to 95 s on a loaded machine); a first start that fails leaves no half-migrated database.
    A viewer started again takes its former port when free: a running operator and Ray keep their endpoint.
    """
    if running_services(state_dir, state).get(TRACE_VIEWER_SERVICE):
        progress(f"trace viewer already running at {state.trace_viewer_url}; reusing it")
        return state
    working_dir = state_dir.resolve() / "trace-viewer"
    first_start = not (working_dir / "phoenix.db").exists()
    working_dir.mkdir(parents=True, exist_ok=True)
    port = _former_port_if_free(state.trace_viewer_url) or free_loopback_port()
    first = "; its first start creates its database" if first_start else ""
    progress(f"starting the trace viewer (Phoenix, {executable}){first}…")
    try:
        start_service(phoenix_spec(executable, port, free_loopback_port(), working_dir), state_dir, timeout)
    except ServiceStartError:
        if first_start:
            shutil.rmtree(working_dir, ignore_errors=True)
        raise
    services = [*[name for name in state.services if name != TRACE_VIEWER_SERVICE], TRACE_VIEWER_SERVICE]
    state = state.model_copy(update={"services": services, "trace_viewer_url": f"http://127.0.0.1:{port}"})
    save_state(state_dir, state)
    progress(f"trace viewer (Phoenix) at {state.trace_viewer_url}")
    return state


def vault_server(state_dir: Path, state: DevstackState) -> OpenBaoServer:
    """This state dir's OpenBao as `state` records it (not for --external)."""
    if state.external or not state.vault_cacert:
        raise OpenBaoError(f"the Vault at {state.vault_addr} is not this state dir's OpenBao")
    port = int(state.vault_addr.rsplit(":", 1)[1])
    return OpenBaoServer(state_dir.resolve() / VAULT_DIR, port, Path(state.vault_cacert))


def unseal_vault(state_dir: Path, state: DevstackState) -> bool:
    """Unseal this state dir's running OpenBao with init.json's key if it is sealed (a restarted one is);
    True if it was sealed. Raises httpx.HTTPError when it does not answer, OpenBaoError when refused."""
    server = vault_server(state_dir, state)
    keys = read_init(server.init_file)
    if keys is None:
        raise OpenBaoError(f"no {server.init_file}: this state dir's Vault cannot be unsealed")
    return unseal(server, keys.unseal_key)


def _former_port_if_free(url: str | None) -> int | None:
    if not url:
        return None
    return _free_or_none(int(url.rsplit(":", 1)[1]))


def _free_or_none(port: int | None) -> int | None:
    if port is None:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As servers bind: a port left in TIME_WAIT by the viewer that died is free, a listening one is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return None
    return port


def stop_devstack(state_dir: Path) -> list[str]:
    """Stop exactly the processes this state dir started; returns the names of those that were running."""
    state = load_state(state_dir)
    if state is None:
        return []
    # Newest first: the operator stops before the API server and Vault it talks to.
    stopped = [name for name in reversed(state.services) if stop_service(state_dir, name)]
    if state.ray_temp_root:
        shutil.rmtree(state.ray_temp_root, ignore_errors=True)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return stopped
