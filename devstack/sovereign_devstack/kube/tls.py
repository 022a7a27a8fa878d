"""Serving over TLS, as kube-apiserver does: `--tls-cert-file`/`--tls-private-key-file` for the server, and
`--client-ca-file` to verify client certificates, which are requested but not required (a client may
authenticate with a bearer token instead).

# k8s docs: /docs/reference/command-line-tools-reference/kube-apiserver/ (--tls-cert-file, --client-ca-file)
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import aiohttp.test_utils


def server_ssl_context(cert_file: Path, key_file: Path, client_ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    if client_ca_file is not None:
        context.load_verify_locations(cafile=client_ca_file)
        # Go's VerifyClientCertIfGiven: no certificate is fine, an unverifiable one fails the handshake.
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def tls_server_class(context: ssl.SSLContext) -> type[aiohttp.test_utils.RawTestServer]:
    """kmock.Server's `server_cls`: aiohttp's raw server listening with `context`."""

    class TLSServer(aiohttp.test_utils.RawTestServer):  # type: ignore[misc]
        async def start_server(self, *args: Any, **kwargs: Any) -> None:
            await super().start_server(*args, **{**kwargs, "ssl": context})

    return TLSServer
