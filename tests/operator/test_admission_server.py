"""How configure_admission sets kopf up: a URL on the devstack, a Service in a cluster, or nothing at all.

The servers are started for real (on free ports) and asked for the client config kopf would register.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
from typing import Any

import kopf
import pytest
from cryptography import x509
from sovereign_devstack.processes import free_loopback_port
from sovereign_operator.admission_server import (
    ADMISSION_CONFIGURATION,
    SelfSigningWebhookServer,
    ServiceWebhookServer,
    configure_admission,
)
from sovereign_operator.config import OperatorConfig


def _config(**fields: Any) -> OperatorConfig:
    return OperatorConfig(vault_addr="http://127.0.0.1:1", webhook_port=free_loopback_port(), **fields)


async def _no_admission(*_: Any, **__: Any) -> Any:
    raise AssertionError("no admission request is expected")


def _first_client_config(server: Any) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async with contextlib.aclosing(server(_no_admission)) as configs:
            return dict(await anext(configs))

    return asyncio.run(first())


def _certificate(client_config: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(client_config["caBundle"]))


def test_devstack_webhook_is_registered_by_url_with_its_self_signed_ca() -> None:
    settings = kopf.OperatorSettings()
    config = _config(webhook_host="127.0.0.1")
    configure_admission(settings, config)
    assert settings.admission.managed == ADMISSION_CONFIGURATION
    assert isinstance(settings.admission.server, SelfSigningWebhookServer)

    client_config = _first_client_config(settings.admission.server)
    assert client_config["url"] == f"https://127.0.0.1:{config.webhook_port}"
    names = _certificate(client_config).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


def test_an_unmanaged_loopback_webhook_is_served_but_not_registered() -> None:
    """As on the devstack: the chart's registration (applied by the installer) stays as it is."""
    settings = kopf.OperatorSettings()
    configure_admission(settings, _config(webhook_host="127.0.0.1", webhook_managed=False))
    assert settings.admission.managed is None
    assert isinstance(settings.admission.server, SelfSigningWebhookServer)


@pytest.mark.parametrize(
    ("service", "namespace", "name"),
    [
        ("tenant-webhook", "sovereign-system", "tenant-webhook"),
        ("ops/tenant-webhook", "ops", "tenant-webhook"),
    ],
    ids=["name in the platform namespace", "namespace/name"],
)
def test_cluster_webhook_is_registered_by_service(service: str, namespace: str, name: str) -> None:
    settings = kopf.OperatorSettings()
    configure_admission(settings, _config(webhook_service=service))
    assert settings.admission.managed == ADMISSION_CONFIGURATION
    assert isinstance(settings.admission.server, ServiceWebhookServer)

    client_config = _first_client_config(settings.admission.server)
    assert "url" not in client_config  # the API server goes through the Service
    assert client_config["service"] == {"namespace": namespace, "name": name, "port": 443, "path": ""}
    names = _certificate(client_config).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert f"{name}.{namespace}.svc" in names.value.get_values_for_type(x509.DNSName)


def test_without_webhook_settings_nothing_is_served_or_registered() -> None:
    settings = kopf.OperatorSettings()
    configure_admission(settings, _config())
    assert settings.admission.managed is None  # kopf then creates no webhook configuration
    assert settings.admission.server is not None  # kopf refuses to start with handlers but no server

    async def yields_nothing() -> None:
        async with contextlib.aclosing(settings.admission.server(_no_admission)) as configs:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(anext(configs), timeout=0.2)

    asyncio.run(yields_nothing())
