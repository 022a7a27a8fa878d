"""A kubeconfig for the devstack's API server, as kubectl, kopf and the kubernetes client read it: the
server's CA (`certificate-authority-data`) and either a client certificate (the admin, as kubeadm writes
admin.conf: CN kubernetes-admin, O system:masters) or a bearer token (a ServiceAccount's).

# k8s docs: /docs/concepts/configuration/organize-cluster-access-kubeconfig/
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from sovereign_devstack.pki import CertificateAuthority, KeyPair
from sovereign_devstack.private_files import write_private

CONTEXT = "sovereign-devstack"
ADMIN_USER = "kubernetes-admin"
ADMIN_GROUPS = ("system:masters",)
ADMIN_KEY_PAIR = "kube-admin"  # file names under the PKI dir: kube-admin.crt / kube-admin.key
SERVING_KEY_PAIR = "kube-apiserver"


def _data(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def admin_key_pair(ca: CertificateAuthority, directory: Path) -> KeyPair:
    """The admin's client certificate (kept if present): every permission through `system:masters`."""
    return ca.issue_client(directory, ADMIN_KEY_PAIR, ADMIN_USER, ADMIN_GROUPS)


def serving_key_pair(ca: CertificateAuthority, directory: Path) -> KeyPair:
    """The API server's serving certificate for loopback (kept if present)."""
    return ca.issue_server(directory, SERVING_KEY_PAIR)


def write_kubeconfig(
    path: Path,
    server_url: str,
    ca_certificate: Path,
    *,
    client: KeyPair | None = None,
    token: str | None = None,
    user: str = "devstack-admin",
) -> Path:
    """Write a kubeconfig (mode 0600) for `server_url` trusting `ca_certificate`, authenticating with the
    client certificate `client` or the bearer `token` (exactly one)."""
    if (client is None) == (token is None):
        raise ValueError("a kubeconfig needs exactly one of a client certificate or a token")
    credentials: dict[str, Any] = (
        {"token": token}
        if token is not None
        else {
            "client-certificate-data": _data(client.certificate),  # type: ignore[union-attr]
            "client-key-data": _data(client.private_key),  # type: ignore[union-attr]
        }
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {"server": server_url, "certificate-authority-data": _data(ca_certificate)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user, "namespace": "default"}}
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    return write_private(path, yaml.safe_dump(config, sort_keys=False))
