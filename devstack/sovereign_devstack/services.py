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
