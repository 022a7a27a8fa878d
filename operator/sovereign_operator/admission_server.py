"""How the API server reaches the Tenant admission webhook: kopf serves it and keeps its registration.

kopf docs: /admission ("Webhook management", "Servers and tunnels", "Custom servers/tunnels").
- Devstack or any API server that can reach the operator's host (`SOVEREIGN_WEBHOOK_HOST`): kopf's
  WebhookServer listens there with a self-signed certificate (or the mounted one) and registers `url` +
  `caBundle`, unless SOVEREIGN_WEBHOOK_MANAGED=false (the registration is then the installer's).
- In a cluster (`SOVEREIGN_WEBHOOK_SERVICE`): the same server listens on every interface and kopf registers
  `service` + `caBundle`, so the API server goes through the Service. Replicas behind one Service must
  present one certificate: mount it (e.g. from cert-manager) via SOVEREIGN_WEBHOOK_CERT_FILE/_KEY_FILE.
- Neither: nothing is served or registered (the CRD schema still validates); the handlers stay dormant.

The registration is kopf-managed: a ValidatingWebhookConfiguration named ADMISSION_CONFIGURATION, with
failurePolicy Fail (kopf's default unless `ignore_failures=True`), so a Tenant is never admitted unchecked.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
from collections.abc import AsyncIterator, Collection
from typing import Any

import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import sovereign_operator.handlers.admission  # noqa: F401  (registers the @kopf.on.validate handlers)
from sovereign_operator.config import OperatorConfig

ADMISSION_CONFIGURATION = "sovereign.ai"  # webhook names become `<handler id>.sovereign.ai`
SERVICE_PORT = 443  # the Service's port in front of the webhook (k8s default for service clientConfig)
SELF_SIGNED_VALIDITY = datetime.timedelta(days=365)


def configure_admission(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    """Call from the operator's one `@kopf.on.startup()` handler, which owns `settings`."""
    if config.webhook_service:
        settings.admission.server = ServiceWebhookServer(config)
        # With the Helm chart the ValidatingWebhookConfiguration is the chart's (SOVEREIGN_WEBHOOK_MANAGED=
        # false): kopf then only serves, and never rewrites the chart's clientConfig or caBundle.
        settings.admission.managed = ADMISSION_CONFIGURATION if config.webhook_managed else None
    elif config.webhook_host:
        settings.admission.server = SelfSigningWebhookServer(
            addr=config.webhook_host,
            port=config.webhook_port,
            host=config.webhook_host,
            certfile=config.webhook_cert_file,
            pkeyfile=config.webhook_key_file,
        )
        # Unmanaged (SOVEREIGN_WEBHOOK_MANAGED=false): whoever installed the platform registered it.
        settings.admission.managed = ADMISSION_CONFIGURATION if config.webhook_managed else None
    else:
        # kopf refuses to start when admission handlers exist but no server is set.
        settings.admission.server = _serve_nothing


class SelfSigningWebhookServer(kopf.WebhookServer):
    """kopf's WebhookServer, making its self-signed certificate with `cryptography` (already a dependency)
    instead of kopf's optional `certbuilder`; kopf trusts it as the webhook's caBundle."""

    @staticmethod
    def build_certificate(hostnames: Collection[str], password: str | None = None) -> tuple[bytes, bytes]:
        # kopf passes [host, addr, *extra_sans]; 0.0.0.0 is bindable but nobody connects to it.
        names, addresses = [], []
        for hostname in dict.fromkeys(hostnames):
            try:
                address = ipaddress.ip_address(hostname)
            except ValueError:
                names.append(hostname)
            else:
                if not address.is_unspecified:
                    addresses.append(address)
        key = ec.generate_private_key(ec.SECP256R1())
        common_name = names[0] if names else str(addresses[0])
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.UTC)
        sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(a) for a in addresses]
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + SELF_SIGNED_VALIDITY)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256())
        )
        encryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password
            else serialization.NoEncryption()
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        return certificate.public_bytes(serialization.Encoding.PEM), key_pem


class ServiceWebhookServer(SelfSigningWebhookServer):
    """kopf's WebhookServer, registered as a Service reference instead of a URL (a custom server per
    kopf docs: /admission, "Custom servers/tunnels"; kopf appends the handler id to `service.path`)."""

    def __init__(self, config: OperatorConfig) -> None:
        namespace, _, name = (config.webhook_service or "").rpartition("/")
        self.service_namespace = namespace or config.platform_namespace
        self.service_name = name
        dns_name = f"{name}.{self.service_namespace}.svc"
        super().__init__(
            addr="0.0.0.0",  # behind a Service: every pod interface
            port=config.webhook_port,
            host=dns_name,  # the self-signed certificate (if no files are given) names the Service
            certfile=config.webhook_cert_file,
            pkeyfile=config.webhook_key_file,
        )

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async with contextlib.aclosing(super().__call__(fn)) as served_configs:
            async for served in served_configs:
                client_config = kopf.WebhookClientConfig(
                    service={
                        "namespace": self.service_namespace,
                        "name": self.service_name,
                        "port": SERVICE_PORT,
                        "path": "",
                    }
                )
                if served.get("caBundle"):
                    client_config["caBundle"] = served["caBundle"]
                yield client_config


async def _serve_nothing(fn: Any) -> AsyncIterator[kopf.WebhookClientConfig]:
    # Holds control forever without yielding a client config, so kopf registers nothing.
    await asyncio.Event().wait()
    yield kopf.WebhookClientConfig()  # pragma: no cover (never reached)
