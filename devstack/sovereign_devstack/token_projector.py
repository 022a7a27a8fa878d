"""Devstack only: the stand-in for the kubelet's projected ServiceAccount token volume on `local-ray`.

In a cluster a nation's Ray pods run as its `model-serving` ServiceAccount and the kubelet projects a
short-lived token of it into each pod, refreshing it before it expires (k8s docs: /docs/concepts/storage/
projected-volumes/#serviceaccounttoken). On `local-ray` the nations' Ray processes run on this host, beside
the operator, and no kubelet exists; this process does the kubelet's part, so the operator never mints a
nation's token: it only tells the Ray processes where the file is (SOVEREIGN_SERVICE_ACCOUNT_TOKEN_DIR).

It runs with an identity of its own, as a node's kubelet does: a client certificate of the devstack CA for
the user `system:node:devstack` in the group `system:nodes` (k8s docs: /docs/reference/access-authn-authz/
authentication/#x509-client-certificates), and the devstack-only ClusterRole PROJECTOR_ROLE bound to that
user: TokenRequest (`serviceaccounts/token` create) and reads of ServiceAccounts, both for the name
`model-serving` only. For each `tenant-<nation>` namespace's model-serving ServiceAccount it keeps
`<token dir>/<nation>/token` (0600, replaced atomically, so a reader never sees half a token):
- minted when missing, and again once 80% of its lifetime has passed (the kubelet's rule, same docs page);
- minted again at once when the ServiceAccount's uid changes (an offboarded and re-onboarded nation: the
  old token names a ServiceAccount that no longer exists and is void);
- removed when the ServiceAccount (or its namespace) is gone.
It polls (one list of one name across namespaces every `--interval` seconds), never logs a token, and
answers `GET /healthz` on loopback once its first pass is done. A real site has kubelets: the chart installs
nothing of this.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes.client import ApiClient

from sovereign.clients.kubernetes import (
    apply_object,
    create_namespaced_service_account_token,
    load_api_client,
)
from sovereign.domain.nations import (
    SERVING_SERVICE_ACCOUNT,
    nation_folder,
    nation_of_namespace,
    tenant_namespace,
)
from sovereign_devstack.kubeconfig import write_kubeconfig
from sovereign_devstack.pki import CertificateAuthority
from sovereign_devstack.private_files import write_private
from sovereign_devstack.processes import ServiceSpec, python_module_argv

log = logging.getLogger("sovereign_devstack.token_projector")

PROJECTOR_SERVICE = "token-projector"
PROJECTOR_USER = "system:node:devstack"
PROJECTOR_GROUPS = ("system:nodes",)
PROJECTOR_ROLE = "sovereign-devstack-serving-tokens"
PROJECTOR_KEY_PAIR = "token-projector"  # file names under the identity dir: token-projector.crt / .key
TOKEN_FILE = "token"
# The kubelet asks for an hour by default and rotates at 80% of the lifetime (k8s docs: /docs/concepts/
# storage/projected-volumes/#serviceaccounttoken); kube refuses expirationSeconds under 600.
TOKEN_SECONDS = 3600
REFRESH_FRACTION = 0.8


def projector_rbac() -> list[dict[str, Any]]:
    """PROJECTOR_ROLE and its binding to PROJECTOR_USER: TokenRequest and reads of `model-serving` only.

    For a subresource, the name RBAC matches resourceNames against is the ServiceAccount's; a list or watch
    with `fieldSelector=metadata.name=<n>` is authorized as a request for `<n>`
    (k8s docs: /docs/reference/access-authn-authz/rbac/#referring-to-resources)."""
    names = [SERVING_SERVICE_ACCOUNT]
    rules = [
        {
            "apiGroups": [""],
            "resources": ["serviceaccounts/token"],
            "verbs": ["create"],
            "resourceNames": names,
        },
        {
            "apiGroups": [""],
            "resources": ["serviceaccounts"],
            "verbs": ["get", "list"],
            "resourceNames": names,
        },
    ]
    metadata = {"name": PROJECTOR_ROLE, "labels": {"app.kubernetes.io/part-of": "sovereign-devstack"}}
    api_version = "rbac.authorization.k8s.io/v1"
    role = {"apiVersion": api_version, "kind": "ClusterRole", "metadata": metadata, "rules": rules}
    binding = {
        "apiVersion": api_version,
        "kind": "ClusterRoleBinding",
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": PROJECTOR_ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": PROJECTOR_USER}],
    }
    return [role, binding]


def install_projector_identity(
    admin_kubeconfig: Path, server_url: str, ca: CertificateAuthority, directory: Path
) -> Path:
    """Apply PROJECTOR_ROLE and its binding as the admin, issue the projector's client certificate (kept if
    present) and write its kubeconfig (0600) under `directory`; returns the kubeconfig's path."""
    admin = load_api_client(str(admin_kubeconfig))
    for manifest in projector_rbac():
        apply_object(admin, manifest)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    pair = ca.issue_client(directory, PROJECTOR_KEY_PAIR, PROJECTOR_USER, PROJECTOR_GROUPS)
    kubeconfig = directory / f"{PROJECTOR_KEY_PAIR}.kubeconfig"
    return write_kubeconfig(kubeconfig, server_url, ca.certificate, client=pair, user=PROJECTOR_USER)


def projector_spec(kubeconfig: Path, token_dir: Path, health_port: int, interval: float = 2.0) -> ServiceSpec:
    """This module as a devstack process (its own session: stopped with the stack)."""
    return ServiceSpec(
        name=PROJECTOR_SERVICE,
        argv=python_module_argv(
            "sovereign_devstack.token_projector",
            "--kubeconfig",
            str(kubeconfig),
            "--token-dir",
            str(token_dir),
            "--health-port",
            str(health_port),
            "--interval",
            str(interval),
        ),
        health_url=f"http://127.0.0.1:{health_port}/healthz",
    )


@dataclass(frozen=True)
class Projected:
    """What a nation's file holds: a token of the ServiceAccount with `uid`, minted at `minted_at`."""

    uid: str
    minted_at: float


@dataclass
class TokenProjector:
    """One pass at a time (`project`) over the `model-serving` ServiceAccounts of the nations' namespaces."""

    api: ApiClient
    directory: Path
    token_seconds: int = TOKEN_SECONDS
    projected: dict[str, Projected] = field(default_factory=dict)  # by nation directory name ("fra")

    def project(self, now: float | None = None) -> None:
        """Mint what is missing, due or for a new uid; remove what no longer has a ServiceAccount. A failure
        for one nation is logged (never with a token) and tried again next pass; a list failure raises."""
        now = time.time() if now is None else now
        wanted = self._serving_accounts()
        for name, (namespace, uid) in sorted(wanted.items()):
            path = self.directory / name / TOKEN_FILE
            last = self.projected.get(name)
            if last is not None and last.uid == uid and path.exists() and not self._due(last, now):
                continue
            try:
                token = create_namespaced_service_account_token(
                    self.api, namespace, SERVING_SERVICE_ACCOUNT, self.token_seconds
                )
            except kubernetes.client.ApiException as error:
                reason = f"{error.status} {error.reason}"
                log.error("cannot mint %s/%s's token: %s", namespace, SERVING_SERVICE_ACCOUNT, reason)
                continue
            if _token_uid(token) != uid:  # re-created between the list and the request: next pass
                continue
            write_private(path, token)
            self.projected[name] = Projected(uid, now)
            why = "new" if last is None else ("re-minted (new uid)" if last.uid != uid else "refreshed")
            log.info("%s/%s: token %s, %ds", namespace, SERVING_SERVICE_ACCOUNT, why, self.token_seconds)
        self._remove_all_but(set(wanted))

    def _due(self, last: Projected, now: float) -> bool:
        return now - last.minted_at >= self.token_seconds * REFRESH_FRACTION

    def _serving_accounts(self) -> dict[str, tuple[str, str]]:
        """Each nation's directory name → (its namespace, its model-serving ServiceAccount's uid)."""
        core = kubernetes.client.CoreV1Api(self.api)
        listed = core.list_service_account_for_all_namespaces(
            field_selector=f"metadata.name={SERVING_SERVICE_ACCOUNT}", _request_timeout=10
        )
        found = {}
        for account in listed.items:
            namespace = account.metadata.namespace or ""
            nation = nation_of_namespace(namespace)
            if nation and account.metadata.uid:
                found[nation_folder(nation)] = (namespace, account.metadata.uid)
        return found

    def _remove_all_but(self, keep: set[str]) -> None:
        for token in self.directory.glob(f"*/{TOKEN_FILE}"):
            name = token.parent.name
            if name not in keep:
                shutil.rmtree(token.parent, ignore_errors=True)
                self.projected.pop(name, None)
                log.info("%s: ServiceAccount gone, token removed", tenant_namespace(name))


def _token_uid(token: str) -> str | None:
    """The ServiceAccount uid a token names (its claims, read without verifying: the API server just made
    it); None when it is not a ServiceAccount JWT."""
    with contextlib.suppress(ValueError, IndexError, json.JSONDecodeError):
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["kubernetes.io"]["serviceaccount"]["uid"])
    return None


@dataclass
class _Health:
    passes: int = 0
    nations: int = 0
    last_error: str | None = None  # the exception's type only


def _serve_health(port: int, health: _Health) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 — http.server's name
            ready = self.path == "/healthz" and health.passes > 0
            body = json.dumps(
                {"passes": health.passes, "nations": health.nations, "lastError": health.last_error}
            )
            self.send_response(200 if ready else 503)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(kubeconfig: Path, token_dir: Path, health_port: int, interval: float) -> None:
    projector = TokenProjector(load_api_client(str(kubeconfig)), token_dir)
    health = _Health()
    token_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _serve_health(health_port, health)
    log.info(
        "projecting the nations' %s tokens into %s every %ss", SERVING_SERVICE_ACCOUNT, token_dir, interval
    )
    while True:
        try:
            projector.project()
            health.last_error = None
        except Exception as error:  # noqa: BLE001 — the API server restarting: next pass
            health.last_error = type(error).__name__
            log.warning("pass failed (%s); trying again", type(error).__name__)
        health.passes += 1
        health.nations = len(projector.projected)
        time.sleep(interval)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sovereign_devstack.token_projector", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True, help="the projector's own kubeconfig")
    parser.add_argument("--token-dir", type=Path, required=True, help="writes <dir>/<nation>/token")
    parser.add_argument("--health-port", type=int, required=True, help="GET /healthz on 127.0.0.1")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between passes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(args.kubeconfig, args.token_dir, args.health_port, args.interval)


if __name__ == "__main__":
    main()
