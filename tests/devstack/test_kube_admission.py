"""Validating admission webhooks on the devstack API server: a real HTTPS webhook denies, kubectl shows it."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import kubectl
from tests.servers import KubeAPI


def _self_signed(directory: Path) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / "tls.crt").write_bytes(pem)
    (directory / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return directory / "tls.crt", directory / "tls.key", pem


class Webhook:
    """A tiny HTTPS admission webhook: denies ConfigMaps labelled `deny=yes`, records what it was sent."""

    def __init__(self, directory: Path) -> None:
        cert, key, self.ca_pem = _self_signed(directory)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.reviews: list[dict] = []
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    async def _review(self, request: web.Request) -> web.Response:
        review = await request.json()
        self.reviews.append(review)
        req = review["request"]
        labels = ((req.get("object") or {}).get("metadata") or {}).get("labels") or {}
        response = {"uid": req["uid"], "allowed": labels.get("deny") != "yes"}
        if not response["allowed"]:
            response["status"] = {"code": 403, "message": f"{req['name']} is labelled deny=yes"}
        if labels.get("warn") == "yes":
            response["warnings"] = [f"{req['name']} is labelled warn=yes", 'a second one, "quoted" … too']
        return web.json_response(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        )

    async def _slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(1.5)  # the behaviour under test: longer than the registration's 1 s timeout
        return await self._review(request)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/validate", self._review)
        app.router.add_post("/slow", self._slow)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=self.context)
        self.loop.run_until_complete(site.start())
        self.started.set()
        self.loop.run_forever()

    def __enter__(self) -> Webhook:
        self.thread.start()
        assert self.started.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    with Webhook(tmp_path_factory.mktemp("webhook")) as hook:
        yield hook


def _namespace(kube_api: KubeAPI, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kubectl(
        kube_api,
        "apply",
        "-f",
        "-",
        input=f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{admission: {name}}}}}\n",
    )
    return name


def _register(
    kube_api: KubeAPI,
    name: str,
    ns: str,
    url: str,
    ca_pem: bytes | None,
    policy: str = "Fail",
    timeout: int = 3,
) -> None:
    ca = f"caBundle: {base64.b64encode(ca_pem).decode()}" if ca_pem else ""
    kubectl(
        kube_api,
        "apply",
        "-f",
        "-",
        input=f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: {name}}}
webhooks:
  - name: {name}.devstack.test
    admissionReviewVersions: [v1]
    sideEffects: None
    failurePolicy: {policy}
    timeoutSeconds: {timeout}
    clientConfig:
      url: {url}
      {ca}
    namespaceSelector: {{matchLabels: {{admission: {ns}}}}}
    rules:
      - {{operations: [CREATE, UPDATE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}}
""",
    )


def _configmap(ns: str, name: str, deny: str, warn: bool = False) -> str:
    labels = f"deny: '{deny}'" + (", warn: 'yes'" if warn else "")
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}, "
        f"labels: {{{labels}}}}}\ndata: {{k: v}}\n"
    )


def test_webhook_denial_reaches_kubectl(kube_api: KubeAPI, webhook: Webhook) -> None:
    ns = _namespace(kube_api, "deny")
    name = f"deny-{ns}"
    _register(kube_api, name, ns, f"https://127.0.0.1:{webhook.port}/validate", webhook.ca_pem)
    try:
        kubectl(kube_api, "apply", "-f", "-", input=_configmap(ns, "fine", "no"))
        denied = kubectl(kube_api, "apply", "-f", "-", input=_configmap(ns, "bad", "yes"), check=False)
        assert denied.returncode != 0
        assert (
            f'admission webhook "{name}.devstack.test" denied the request: bad is labelled deny=yes'
            in denied.stderr
        )
        assert kubectl(kube_api, "get", "configmap", "bad", "-n", ns, check=False).returncode != 0
        # Updates are reviewed too, with the old object.
        update = kubectl(
            kube_api, "label", "configmap", "fine", "-n", ns, "deny=yes", "--overwrite", check=False
        )
        assert "denied the request" in update.stderr
        request = next(
            r["request"] for r in reversed(webhook.reviews) if r["request"]["operation"] == "UPDATE"
        )
        assert request["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
        assert request["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
        assert request["namespace"] == ns and request["name"] == "fine"
        assert request["oldObject"]["metadata"]["labels"] == {"deny": "no"}
        assert request["userInfo"]["username"] and request["dryRun"] is False
    finally:
        kubectl(kube_api, "delete", "validatingwebhookconfiguration", name)


def test_webhook_warnings_reach_kubectl_whether_it_allows_or_denies(
    kube_api: KubeAPI, webhook: Webhook
) -> None:
    ns = _namespace(kube_api, "warn")
    name = f"warn-{ns}"
    _register(kube_api, name, ns, f"https://127.0.0.1:{webhook.port}/validate", webhook.ca_pem)
    try:
        allowed = kubectl(kube_api, "apply", "-f", "-", input=_configmap(ns, "told", "no", warn=True))
        assert "Warning: told is labelled warn=yes\n" in allowed.stderr
        assert 'Warning: a second one, "quoted" … too\n' in allowed.stderr
        assert kubectl(kube_api, "get", "configmap", "told", "-n", ns).returncode == 0
        denied = kubectl(
            kube_api, "apply", "-f", "-", input=_configmap(ns, "bad", "yes", warn=True), check=False
        )
        assert denied.returncode != 0 and "bad is labelled deny=yes" in denied.stderr
        assert "Warning: bad is labelled warn=yes\n" in denied.stderr
        quiet = kubectl(kube_api, "apply", "-f", "-", input=_configmap(ns, "quiet", "no"))
        assert "Warning" not in quiet.stderr
    finally:
        kubectl(kube_api, "delete", "validatingwebhookconfiguration", name)


def test_webhook_certificate_is_verified_with_the_ca_bundle(kube_api: KubeAPI, webhook: Webhook) -> None:
    ns = _namespace(kube_api, "untrusted")
    name = f"untrusted-{ns}"
    _register(kube_api, name, ns, f"https://127.0.0.1:{webhook.port}/validate", None)  # no caBundle
    try:
        failed = kubectl(kube_api, "apply", "-f", "-", input=_configmap(ns, "x", "no"), check=False)
        assert f'failed calling webhook "{name}.devstack.test"' in failed.stderr
        assert "certificate verify failed" in failed.stderr
    finally:
        kubectl(kube_api, "delete", "validatingwebhookconfiguration", name)


def test_unreachable_webhook_fails_closed_or_is_ignored(kube_api: KubeAPI) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"https://127.0.0.1:{sock.getsockname()[1]}/validate"
    ns = _namespace(kube_api, "unreachable")
    name = f"fail-{ns}"
    _register(kube_api, name, ns, dead, None, policy="Fail")
    try:
        failed = kubectl(kube_api, "apply", "-f", "-", input=_configmap(ns, "x", "no"), check=False)
        assert failed.returncode != 0
        assert "InternalError" in failed.stderr
        assert f'failed calling webhook "{name}.devstack.test"' in failed.stderr
        _register(kube_api, name, ns, dead, None, policy="Ignore")
        kubectl(kube_api, "apply", "-f", "-", input=_configmap(ns, "x", "no"))
    finally:
        kubectl(kube_api, "delete", "validatingwebhookconfiguration", name)


def test_webhook_timeout_is_honoured(kube_api: KubeAPI, webhook: Webhook) -> None:
    ns = _namespace(kube_api, "slow")
    name = f"slow-{ns}"
    _register(kube_api, name, ns, f"https://127.0.0.1:{webhook.port}/slow", webhook.ca_pem, timeout=1)
    try:
        failed = kubectl(kube_api, "apply", "-f", "-", input=_configmap(ns, "x", "no"), check=False)
        assert f'failed calling webhook "{name}.devstack.test"' in failed.stderr
        assert "context deadline exceeded" in failed.stderr
    finally:
        kubectl(kube_api, "delete", "validatingwebhookconfiguration", name)
