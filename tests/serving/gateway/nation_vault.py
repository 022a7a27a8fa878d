"""A nation's own real OpenBao for a gateway test: its transit key, the rules of sovereign-nation for it and
a Kubernetes auth role, and a ServiceAccount token from the session's API server in a file, so the nation's
audit writer logs in as the nation exactly as on the platform. The ServiceAccount lives in a throwaway
namespace (not the nation's, which operator tests own), so the policy has the nation's namespace written in
rather than templated on the ServiceAccount's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from sovereign_devstack.pki import CertificateAuthority
from sovereign_devstack.token_reviewer import ensure_token_reviewer

from sovereign.clients.kubernetes import load_api_client
from sovereign.clients.vault import create_signing_key, read_transit_key
from sovereign.domain.nations import gateway_key_name, tenant_namespace, transit_key_name, vault_role_name
from sovereign.identity.signed_tokens import jwks_from_transit_key
from sovereign.platform_setup import nation_policy_for_namespace, prepare_vault
from tests.helpers import kubectl
from tests.servers import KubeAPI, VaultServer, running_vault


@contextmanager
def vault_sink_in(
    vault: VaultServer, kube_api: KubeAPI, nation: str, directory: Path
) -> Iterator[dict[str, Any]]:
    """`nation`'s VaultSink (its JSON form) pointing at `vault`, prepared for it; the ServiceAccount's
    namespace is a throwaway one (not the nation's, which operator tests own) and is deleted after."""
    root = vault.client()
    prepare_vault(  # as the platform's (tests/operator/harness.py `prepare_platform`)
        root,
        kube_api.url,
        [kube_api.service_account_certificate.read_text()],
        kubernetes_ca_cert=kube_api.ca_cert.read_text(),
        token_reviewer_jwt=ensure_token_reviewer(load_api_client(str(kube_api.kubeconfig))),
    )
    root.secrets.transit.create_key(name=transit_key_name(nation), key_type="aes256-gcm96")
    policy = f"nation-{tenant_namespace(nation)}"
    root.sys.create_or_update_acl_policy(policy, nation_policy_for_namespace(tenant_namespace(nation)))
    namespace = f"sealed-vault-{uuid.uuid4().hex[:6]}"
    root.auth.kubernetes.create_role(
        vault_role_name(nation),
        bound_service_account_names=["serving"],
        bound_service_account_namespaces=[namespace],
        policies=[policy],
        ttl="1h",
    )
    kubectl(kube_api, "create", "namespace", namespace)
    try:
        kubectl(kube_api, "create", "serviceaccount", "serving", "-n", namespace)
        token = kubectl(kube_api, "create", "token", "serving", "-n", namespace, "--duration", "1h")
        token_file = directory / "token"
        token_file.write_text(token.stdout.strip())
        token_file.chmod(0o600)
        yield {
            "vaultAddr": vault.url,
            "role": vault_role_name(nation),
            "tokenFile": str(token_file),
            "caCert": vault.ca_cert.read_text(),
        }
    finally:
        kubectl(kube_api, "delete", "namespace", namespace, "--wait=false", check=False)


@contextmanager
def audit_sink_in(
    vault: VaultServer, kube_api: KubeAPI, nation: str, directory: Path
) -> Iterator[dict[str, Any]]:
    """The same as an AuditSink: the nation's audit logs under `directory/audit`."""
    with vault_sink_in(vault, kube_api, nation, directory) as sink:
        yield {**sink, "directory": str(directory / "audit")}


@contextmanager
def gateway_signer_in(
    vault: VaultServer, kube_api: KubeAPI, nation: str, directory: Path
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """`nation`'s federation signer (a VaultSink, its JSON form) in `vault`, and the public key set of its
    gateway key (ed25519, not exportable, made as the operator makes it) as its Tenant publishes it."""
    with vault_sink_in(vault, kube_api, nation, directory) as sink:
        root = vault.client()
        create_signing_key(root, "transit", gateway_key_name(nation))
        yield sink, jwks_from_transit_key(read_transit_key(root, "transit", gateway_key_name(nation)) or {})


@contextmanager
def gateways_signing_in(
    kube_api: KubeAPI, ca: CertificateAuthority, directory: Path, nations: tuple[str, ...]
) -> Iterator[tuple[VaultServer, dict[str, tuple[dict[str, Any], dict[str, Any]]]]]:
    """A real OpenBao of its own holding each nation's gateway key: the Vault, and nation → (its VaultSink,
    good for its gateway's `federation` and, with a `directory`, its `audit`; its gateway key set)."""
    with running_vault(directory / "vault", ca) as vault, ExitStack() as stack:
        signers = {}
        for nation in nations:
            home = directory / nation.lower()
            home.mkdir(parents=True, exist_ok=True)
            signers[nation] = stack.enter_context(gateway_signer_in(vault, kube_api, nation, home))
        yield vault, signers


def chat(base_url: str, nation: str, token: str, model: str) -> tuple[int, str | None]:
    """One chat completion as a client sends it: the status and, for an error, its OpenAI-style code."""
    answer = httpx.post(
        f"{base_url}/{nation.lower()}/v1/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={"model": model, "messages": [{"role": "user", "content": "x"}]},
        timeout=60,
    )
    return answer.status_code, None if answer.is_success else answer.json()["error"]["code"]
