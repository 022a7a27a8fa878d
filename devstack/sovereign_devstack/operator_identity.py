"""The operator's identity on the devstack: the ServiceAccount and RBAC the Helm chart renders, a token of
that ServiceAccount and a kubeconfig with it, so the local operator holds exactly what the chart grants.

Nothing here is copied from the chart: charts/sovereign is rendered with Helm's engine (chart_rendering) for
the runtime the operator runs with, and its ServiceAccount, ClusterRole, Roles and their bindings are applied
as the admin (`helm install --create-namespace` would apply the same objects). The chart's
ValidatingWebhookConfiguration is registered as the admin too (`register_webhook`): the operator runs with
SOVEREIGN_WEBHOOK_MANAGED=false, as the chart's Deployment runs it, and never writes it.

On every runtime the operator holds the chart's roles and nothing else. On `local-ray` (Ray beside the
operator, no kubelet) the nations' ServiceAccount tokens are written by the devstack's token projector
(sovereign_devstack.token_projector), with an identity and a role of its own, never by the operator.
"""

from __future__ import annotations

import base64
import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import ApiClient
from kubernetes.dynamic.exceptions import NotFoundError

from sovereign.clients.kubernetes import (
    apply_object,
    create_namespaced_service_account_token,
    dynamic_client,
    load_api_client,
)
from sovereign_devstack.chart_rendering import render_objects
from sovereign_devstack.pki import CertificateAuthority
from sovereign_devstack.private_files import write_private

RELEASE, NAMESPACE = "sovereign", "sovereign-system"
SERVICE_ACCOUNT = "sovereign-operator"  # the chart's name for release `sovereign` (<fullname>-operator)
USERNAME = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
WEBHOOK_CONFIGURATION = RELEASE  # the chart names its ValidatingWebhookConfiguration <fullname>
# The chart's identity objects, and the admission policy that bounds what its roles allow
# (charts/sovereign/README.md, "Who holds each escalation").
RBAC_KINDS = (
    "ServiceAccount",
    "ClusterRole",
    "Role",
    "ClusterRoleBinding",
    "RoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
)
# There is no kubelet to refresh a projected token (k8s docs: /docs/concepts/storage/projected-volumes/
# #serviceaccounttoken), so the operator's token lives long; a new one is minted whenever an operator starts.
TOKEN_SECONDS = 365 * 24 * 3600
# token_projector.PROJECTOR_ROLE: its binding is revoked wherever it names the operator (a kept state dir).
FORMER_LOCAL_RAY_TOKEN_ROLE = "sovereign-devstack-serving-tokens"
WEBHOOK_KEY_PAIR = "operator-webhook"


def chart_values(runtime: str) -> dict[str, Any]:
    """The chart's values for the local platform: the operator's runtime (the chart knows `kuberay` and
    `none`; `local-ray` needs what `none` needs), the webhook served with a certificate the devstack's CA
    issues (no cert-manager)."""
    return {
        "runtime": "kuberay" if runtime == "kuberay" else "none",
        # Required by the chart; the Vault's address and token do not change what RBAC the chart renders.
        "vault": {"address": "https://127.0.0.1:8200", "auth": {"token": {"existingSecret": "vault-token"}}},
        "webhook": {"enabled": True, "certManager": {"enabled": False}},
    }


def operator_rbac(runtime: str) -> list[dict[str, Any]]:
    """The release namespace, then the chart's ServiceAccount, roles and bindings rendered for `runtime`."""
    objects = render_objects(chart_values(runtime), RELEASE, NAMESPACE)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    return [namespace, *(o for o in objects if o["kind"] in RBAC_KINDS)]


@dataclass(frozen=True)
class OperatorIdentity:
    kubeconfig: Path  # the API server and its CA as in the admin's kubeconfig; user: the token
    token_file: Path  # the same token, where a pod has its projected token

    def env(self) -> dict[str, str]:
        """The operator's environment for this identity (the chart's Deployment sets the same)."""
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "SOVEREIGN_SERVICE_ACCOUNT_TOKEN_FILE": str(self.token_file),
            "SOVEREIGN_OPERATOR_SERVICE_ACCOUNT": f"{NAMESPACE}/{SERVICE_ACCOUNT}",
            "SOVEREIGN_PLATFORM_NAMESPACE": NAMESPACE,
        }


def grant_operator_roles(admin: ApiClient, runtime: str) -> None:
    """Apply the chart's RBAC for `runtime` as the admin, replacing what another runtime's render left."""
    for manifest in operator_rbac(runtime):
        apply_object(admin, manifest)
    _revoke_former_token_binding(admin)


def _revoke_former_token_binding(admin: ApiClient) -> None:
    """A state dir's API server keeps its objects: delete the binding that once let the operator request
    the nations' tokens, if it still names the operator (the token projector re-applies its own)."""
    bindings = dynamic_client(admin).resources.get(
        api_version="rbac.authorization.k8s.io/v1", kind="ClusterRoleBinding"
    )
    try:
        binding = bindings.get(name=FORMER_LOCAL_RAY_TOKEN_ROLE).to_dict()
    except NotFoundError:
        return
    operator = {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}
    if any(operator.items() <= subject.items() for subject in binding.get("subjects") or []):
        with contextlib.suppress(NotFoundError):
            bindings.delete(name=FORMER_LOCAL_RAY_TOKEN_ROLE)


def install_operator_identity(admin_kubeconfig: Path, directory: Path, runtime: str) -> OperatorIdentity:
    """Grant the chart's roles for `runtime`, mint a token of the operator's ServiceAccount and write it
    (mode 0600) with a kubeconfig for it under `directory`."""
    admin = load_api_client(str(admin_kubeconfig))
    grant_operator_roles(admin, runtime)
    token = create_namespaced_service_account_token(admin, NAMESPACE, SERVICE_ACCOUNT, TOKEN_SECONDS)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    token_file = write_private(directory / "token", token)
    kubeconfig = write_private(
        directory / "kubeconfig", yaml.safe_dump(token_kubeconfig(admin_kubeconfig, token), sort_keys=False)
    )
    return OperatorIdentity(kubeconfig, token_file)


def token_kubeconfig(admin_kubeconfig: Path, token: str) -> dict[str, Any]:
    """A kubeconfig with the admin kubeconfig's current cluster (server and CA) and `token` as its user."""
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    context = next(c["context"] for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster = copy.deepcopy(next(c["cluster"] for c in admin["clusters"] if c["name"] == context["cluster"]))
    # Relative paths in a kubeconfig are relative to its own file (k8s docs: /docs/concepts/configuration/
    # organize-cluster-access-kubeconfig/#file-references); this one is written elsewhere.
    if "certificate-authority" in cluster:
        cluster["certificate-authority"] = str(admin_kubeconfig.parent / cluster["certificate-authority"])
    name = f"{NAMESPACE}-{SERVICE_ACCOUNT}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context["cluster"], "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [
            {"name": name, "context": {"cluster": context["cluster"], "user": name, "namespace": NAMESPACE}}
        ],
        "current-context": name,
        "preferences": {},
    }


def webhook_configuration(port: int, ca: CertificateAuthority) -> dict[str, Any]:
    """The chart's ValidatingWebhookConfiguration, its clientConfig pointed at the operator on loopback.

    The devstack stands in for the cluster's Service network: a cluster's API server reaches the webhook
    through the chart's Service; the devstack's reaches the operator's loopback port, by URL
    (k8s docs: /docs/reference/access-authn-authz/extensible-admission-controllers/#url), and trusts the
    devstack CA that issued the operator's serving certificate (`webhook_serving_env`).
    """
    rendered = render_objects(chart_values("none"), RELEASE, NAMESPACE)
    configuration = next(o for o in rendered if o["kind"] == "ValidatingWebhookConfiguration")
    ca_bundle = base64.b64encode(ca.certificate.read_bytes()).decode("ascii")
    for webhook in configuration["webhooks"]:
        path = webhook["clientConfig"]["service"]["path"]
        webhook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca_bundle}
    return configuration


def register_webhook(admin_kubeconfig: Path, port: int, ca: CertificateAuthority) -> None:
    """Apply the chart's webhook registration (as the admin) for an operator serving on `port`."""
    apply_object(load_api_client(str(admin_kubeconfig)), webhook_configuration(port, ca))


def webhook_serving_env(ca: CertificateAuthority, directory: Path, port: int) -> dict[str, str]:
    """The operator's environment to serve the webhook on loopback `port` with a certificate of the devstack
    CA, leaving the registration to the chart (here: `register_webhook`)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    pair = ca.issue_server(directory, WEBHOOK_KEY_PAIR)
    return {
        "SOVEREIGN_WEBHOOK_HOST": "127.0.0.1",
        "SOVEREIGN_WEBHOOK_PORT": str(port),
        "SOVEREIGN_WEBHOOK_CERT_FILE": str(pair.certificate),
        "SOVEREIGN_WEBHOOK_KEY_FILE": str(pair.private_key),
        "SOVEREIGN_WEBHOOK_MANAGED": "false",
    }
