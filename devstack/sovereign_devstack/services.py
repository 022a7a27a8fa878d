"""The devstack's services: how each is started and where it answers."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from sovereign.serving_contract import AIR_GAP_ENV, PROXY_ENV, RAY_BOOTSTRAP_CONFIG
from sovereign_devstack.pki import KeyPair
from sovereign_devstack.processes import ServiceSpec, free_loopback_port, python_module_argv
from sovereign_devstack.trace_viewer import PHOENIX_AIR_GAP_ENV

KUBE_SERVICE = "kube-apiserver"
VAULT_SERVICE = "vault"


def kube_api_spec(
    port: int,
    service_account_key_file: Path,
    data_dir: Path | None = None,
    *,
    serving: KeyPair,
    client_ca_file: Path,
    token_auth_file: Path | None = None,
) -> ServiceSpec:
    """The API server; with `data_dir` its objects survive restarts (as etcd's data dir), else memory only.

    HTTPS only with the `serving` certificate; client certificates are verified against `client_ca_file`
    (which also signed `serving`: the health check verifies the server with it). Anonymous requests reach
    the health paths only, so the health check asks /readyz.
    """
    data_dir_args = ["--data-dir", str(data_dir)] if data_dir is not None else []
    token_args = ["--token-auth-file", str(token_auth_file)] if token_auth_file is not None else []
    return ServiceSpec(
        name=KUBE_SERVICE,
        argv=python_module_argv(
            "sovereign_devstack.kube",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--service-account-key-file",
            str(service_account_key_file),
            "--tls-cert-file",
            str(serving.certificate),
            "--tls-private-key-file",
            str(serving.private_key),
            "--client-ca-file",
            str(client_ca_file),
            *data_dir_args,
            *token_args,
        ),
        health_url=f"https://127.0.0.1:{port}/readyz",
        ca_file=client_ca_file,
    )


OPERATOR_SERVICE = "operator"


def operator_spec(
    liveness_port: int,
    kubeconfig: str,
    vault_addr: str,
    vault_token: str,
    serving_env: dict[str, str] | None = None,
) -> ServiceSpec:
    """The operator as a devstack process. It is product code started like in a cluster: only through its
    environment (the same variables a Deployment sets); it never imports the devstack.

    `kubeconfig` is the operator's own (its ServiceAccount's token: operator_identity), `vault_token` its
    own token (sovereign-operator policy), never the root token; it goes in the environment, not on the
    command line where `ps` shows it. `serving_env` carries the rest, the webhook's serving settings
    (operator_identity.webhook_serving_env) among them.
    """
    return ServiceSpec(
        name=OPERATOR_SERVICE,
        # Under the devstack's kubelet stand-in (restartPolicy Always): an operator that lost its Lease exits
        # and is started again, as its Deployment's pod would be.
        argv=python_module_argv(
            "sovereign_devstack.supervisor", "--", *python_module_argv("sovereign_operator")
        ),
        # kopf's liveness endpoint answers once this process holds the Lease and kopf runs.
        health_url=f"http://127.0.0.1:{liveness_port}/healthz",
        env={
            "KUBECONFIG": kubeconfig,
            "VAULT_ADDR": vault_addr,
            "VAULT_TOKEN": vault_token,
            "SOVEREIGN_LIVENESS_PORT": str(liveness_port),
            # The devstack is local and small: check drift every 10 s rather than a cluster's 30 s.
            "SOVEREIGN_RECONCILE_INTERVAL_SECONDS": "10",
            **(serving_env or {}),
        },
    )


RAY_SERVICE = "ray"


# Keeps the node IP on loopback (see `ray_head_spec`): without it Ray listens on every interface.
RAY_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def ray_head_spec(
    dashboard_port: int,
    num_cpus: int,
    auth_token: str,
    home: Path,
    metrics_port: int | None = None,
    *,
    temp_root: Path,
) -> ServiceSpec:
    """A local Ray head in the foreground (`--block`), so its process group is the cluster: `down` stops it.

    Every port Ray would otherwise take from its fixed defaults is chosen free, so several devstacks (and
    the tests' in-process Ray clusters) can run on one machine (Ray docs: "Configuring Ray", ports). The
    dashboard port must lie outside Ray's worker port range (10002-19999), which free ports from the OS
    ephemeral range do.

    Token authentication is on with this devstack's own token: Ray 2.60 turns it on by itself whenever
    ~/.ray/auth_token exists, so leaving it implicit would make the dashboard refuse the operator depending
    on what else ran on the machine (Ray docs: "Token authentication").

    Air gap: the head gets AIR_GAP_ENV (usage stats off, their "disabled" report sent to a closed loopback
    port) and its own HOME holding an empty ray_bootstrap_config.yaml, without which Ray's dashboard probes
    cloud metadata services (Ray docs: "Usage Stats Collection"; tests/airgap shows both are needed).

    Loopback only: `--node-ip-address 127.0.0.1` alone is not enough, since Ray replaces a loopback node IP
    by the machine's routable one unless `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` (Ray's switch for a
    single-machine cluster, whatever the OS: `ray._private.services.get_node_ip_address`). With it the GCS,
    raylet, dashboard, its agents, the metrics export port and the workers all listen on 127.0.0.1; the
    Serve proxy's host comes from the operator's `http_options` (127.0.0.1 on the local-ray runtime).
    tests/serving/e2e/test_serving_e2e.py lists the listening sockets of every process of the head.

    The Serve proxy keeps its route table to itself (`PROXY_ENV`: `/-/routes` answers 404).

    `temp_root` (RAY_TMPDIR): a directory of this user's only (0700; short, as Ray's socket paths must stay
    under 107 bytes), where Ray keeps its sessions and `ray_current_cluster`, from which Ray's job supervisor
    takes the address it gives a job's entrypoint (the ingest job). Ray's default, `/tmp/ray`, is writable by
    every local user, who could name a cluster of their own there (`private_ray_temp_root`).

    `metrics_port`: where the node's metrics agent serves every Ray process's metrics (the replicas'
    `ray.util.metrics` among them) in Prometheus format, `http://127.0.0.1:<port>/metrics`; free if not given.
    """
    home.mkdir(parents=True, exist_ok=True)
    (home / RAY_BOOTSTRAP_CONFIG).touch()
    ray = str(Path(sys.executable).with_name("ray"))
    ports = {
        "--port": free_loopback_port(),
        "--ray-client-server-port": free_loopback_port(),
        "--dashboard-agent-listen-port": free_loopback_port(),
        "--dashboard-agent-grpc-port": free_loopback_port(),
        "--metrics-export-port": metrics_port or free_loopback_port(),
        "--runtime-env-agent-port": free_loopback_port(),
        "--node-manager-port": free_loopback_port(),
        "--object-manager-port": free_loopback_port(),
    }
    argv = [
        ray,
        "start",
        "--head",
        "--block",
        "--node-ip-address",
        "127.0.0.1",
        "--dashboard-host",
        "127.0.0.1",
        "--dashboard-port",
        str(dashboard_port),
        "--include-dashboard",
        "true",
        "--num-cpus",
        str(num_cpus),
        "--disable-usage-stats",
    ]
    for flag, port in ports.items():
        argv += [flag, str(port)]
    return ServiceSpec(
        name=RAY_SERVICE,
        argv=argv,
        health_url=f"http://127.0.0.1:{dashboard_port}/api/version",
        env={
            **AIR_GAP_ENV,
            **RAY_LOOPBACK_ENV,
            **PROXY_ENV,
            "HOME": str(home),
            "RAY_TMPDIR": str(temp_root),
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": auth_token,
        },
    )


def private_ray_temp_root() -> Path:
    """A new directory for a Ray head's RAY_TMPDIR: this user's only (mkdtemp: 0700), under /tmp so that
    Ray's socket paths stay short."""
    return Path(tempfile.mkdtemp(prefix="sovereign-ray-", dir="/tmp"))


TRACE_VIEWER_SERVICE = "trace-viewer"


def phoenix_spec(executable: Path, port: int, grpc_port: int, working_dir: Path) -> ServiceSpec:
    """Phoenix (`phoenix serve`) as the devstack's trace viewer: UI, REST/GraphQL API and OTLP/HTTP
    (`<url>/v1/traces`) on 127.0.0.1:`port`, its SQLite database in `working_dir`, every outbound feature
    off (sovereign_devstack.trace_viewer explains each setting), OTLP/gRPC moved to `grpc_port`.
    """
    return ServiceSpec(
        name=TRACE_VIEWER_SERVICE,
        argv=[str(executable), "serve"],
        health_url=f"http://127.0.0.1:{port}/healthz",
        env={
            **PHOENIX_AIR_GAP_ENV,
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(port),
            "PHOENIX_GRPC_PORT": str(grpc_port),
            "PHOENIX_WORKING_DIR": str(working_dir),
        },
    )
