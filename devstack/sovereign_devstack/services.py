"""The devstack's services: how each is started and where it answers."""

from __future__ import annotations

from pathlib import Path

from sovereign_devstack.processes import ServiceSpec, python_module_argv

KUBE_SERVICE = "kube-apiserver"
VAULT_SERVICE = "vault"


def kube_api_spec(port: int, service_account_key_file: Path) -> ServiceSpec:
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
        ),
        health_url=f"http://127.0.0.1:{port}/version",
    )


def vault_spec(port: int, root_token: str) -> ServiceSpec:
    return ServiceSpec(
        name=VAULT_SERVICE,
        argv=python_module_argv(
            "sovereign_devstack.vault",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--root-token",
            root_token,
        ),
        health_url=f"http://127.0.0.1:{port}/v1/sys/health",
    )


OPERATOR_SERVICE = "operator"


def operator_spec(
    liveness_port: int, webhook_port: int, kubeconfig: str, vault_addr: str, vault_token: str
) -> ServiceSpec:
    """The operator as a devstack process. It is product code started like in a cluster: only through its
    environment (the same variables a Deployment sets); it never imports the devstack.

    `vault_token` is the operator's own token (sovereign-operator policy), never the root token; it goes
    in the environment, not on the command line where `ps` shows it.
    """
    return ServiceSpec(
        name=OPERATOR_SERVICE,
        argv=python_module_argv("sovereign_operator"),
        # kopf's liveness endpoint answers once this process holds the Lease and kopf runs.
        health_url=f"http://127.0.0.1:{liveness_port}/healthz",
        env={
            "KUBECONFIG": kubeconfig,
            "VAULT_ADDR": vault_addr,
            "VAULT_TOKEN": vault_token,
            "SOVEREIGN_LIVENESS_PORT": str(liveness_port),
            # The validating webhook on loopback; kopf registers it with the API server (url + caBundle).
            "SOVEREIGN_WEBHOOK_HOST": "127.0.0.1",
            "SOVEREIGN_WEBHOOK_PORT": str(webhook_port),
            # The devstack is local and small: check drift every 10 s rather than a cluster's 30 s.
            "SOVEREIGN_RECONCILE_INTERVAL_SECONDS": "10",
        },
    )
