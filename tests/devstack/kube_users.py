"""Users of the session's API server for the authentication and RBAC tests: ServiceAccounts with tokens,
and client certificates of the devstack CA, each with a kubeconfig for kubectl and the kubernetes client."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import kubernetes
import yaml
from sovereign_devstack.kubeconfig import write_kubeconfig
from sovereign_devstack.pki import CertificateAuthority

from tests.helpers import kubectl
from tests.servers import KubeAPI


@dataclass(frozen=True)
class KubeUser:
    """Someone with a kubeconfig of their own: `kubectl(user, ...)` runs as them."""

    name: str
    kubeconfig: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def api_client(self) -> kubernetes.client.ApiClient:
        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_namespace(kube_api: KubeAPI, prefix: str = "rbac") -> str:
    name = unique(prefix)
    kubectl(kube_api, "create", "namespace", name)
    return name


def service_account_user(kube_api: KubeAPI, namespace: str, name: str, directory: Path) -> KubeUser:
    """A ServiceAccount (the admin creates it) and a kubeconfig with a token of it (kubectl create token)."""
    kubectl(kube_api, "-n", namespace, "create", "serviceaccount", name)
    token = kubectl(kube_api, "-n", namespace, "create", "token", name).stdout.strip()
    kubeconfig = kube_api.token_kubeconfig(directory / f"{namespace}-{name}.kubeconfig", token)
    return KubeUser(f"system:serviceaccount:{namespace}:{name}", kubeconfig)


def certificate_user(
    kube_api: KubeAPI, ca: CertificateAuthority, user: str, groups: tuple[str, ...], directory: Path
) -> KubeUser:
    """A client certificate of the devstack CA (CN `user`, O `groups`) in a kubeconfig."""
    pair = ca.issue_client(directory, unique("client"), user, groups)
    kubeconfig = write_kubeconfig(
        directory / f"{unique(user)}.kubeconfig", kube_api.url, kube_api.ca_cert, client=pair
    )
    return KubeUser(user, kubeconfig)


def apply(kube_api: KubeAPI, *objects: dict[str, object]) -> None:
    """`kubectl apply` as the admin."""
    kubectl(kube_api, "apply", "-f", "-", input=yaml.safe_dump_all(objects))


def role(namespace: str | None, name: str, rules: list[dict[str, object]]) -> dict[str, object]:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role" if namespace else "ClusterRole",
        "metadata": metadata,
        "rules": rules,
    }


def binding(
    namespace: str | None, name: str, role_kind: str, role_name: str, subjects: list[dict[str, str]]
) -> dict[str, object]:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
        "subjects": subjects,
    }


def service_account_subject(namespace: str, name: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}
