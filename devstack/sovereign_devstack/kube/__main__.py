"""`python -m sovereign_devstack.kube --host H --port N --service-account-key-file PATH --tls-cert-file PATH
--tls-private-key-file PATH [--client-ca-file PATH] [--token-auth-file PATH] [--audit-log PATH]`:
the devstack's Kubernetes API server, over HTTPS only, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

import kmock

from sovereign_devstack.kube.audit_log import AUDIT_LOG_ENV, AuditLog
from sovereign_devstack.kube.authn import read_token_file
from sovereign_devstack.kube.persistence import DataDir, DataDirError
from sovereign_devstack.kube.server import DevstackKubeAPI
from sovereign_devstack.kube.service_account_tokens import DEFAULT_ISSUER, TokenIssuer
from sovereign_devstack.kube.store import Store
from sovereign_devstack.kube.tls import server_ssl_context, tls_server_class


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sovereign_devstack.kube", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--service-account-key-file",
        type=Path,
        required=True,
        help="PEM RSA private key that signs ServiceAccount tokens (public half at PATH.pub)",
    )
    # The flags of kube-apiserver (k8s docs: /docs/reference/command-line-tools-reference/kube-apiserver/).
    parser.add_argument("--tls-cert-file", type=Path, required=True, help="PEM serving certificate")
    parser.add_argument("--tls-private-key-file", type=Path, required=True, help="its PEM private key")
    parser.add_argument(
        "--client-ca-file", type=Path, default=None, help="CA bundle that verifies client certificates"
    )
    parser.add_argument(
        "--token-auth-file", type=Path, default=None, help='static tokens: CSV token,user,uid,"group1,group2"'
    )
    parser.add_argument("--service-account-issuer", default=DEFAULT_ISSUER)
    parser.add_argument("--service-account-jwks-uri", default=None)
    parser.add_argument(
        "--audit-log",
        type=Path,
        default=os.environ.get(AUDIT_LOG_ENV) or None,
        help=f"append one JSON audit event per resource request to PATH (default: ${AUDIT_LOG_ENV})",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep every object in DIR (a journal and a snapshot, as etcd's data dir) so a restart finds "
        "them again; without it objects live in memory only",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    tokens = TokenIssuer(
        args.service_account_key_file, args.service_account_issuer, args.service_account_jwks_uri
    )
    audit_log = AuditLog(Path(args.audit_log)) if args.audit_log else None
    data_dir = DataDir(args.data_dir) if args.data_dir else None
    static_tokens = read_token_file(args.token_auth_file) if args.token_auth_file else {}
    handler = DevstackKubeAPI(tokens, audit_log, Store(data_dir), static_tokens)
    tls = server_ssl_context(args.tls_cert_file, args.tls_private_key_file, args.client_ca_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with kmock.Server(handler, host=args.host, port=args.port, server_cls=tls_server_class(tls)):
        handler.controllers.start()
        logging.getLogger("sovereign_devstack.kube").info("serving on https://%s:%d", args.host, args.port)
        await stop.wait()
        handler.store.close()
        await handler.controllers.stop()
    if audit_log is not None:
        audit_log.close()
    if data_dir is not None:
        data_dir.close()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # we log our own one line per request
    try:
        asyncio.run(serve(parse_args(argv)))
    except DataDirError as exc:  # in use, or unreadable: say so plainly and start nothing
        logging.getLogger("sovereign_devstack.kube").error("cannot use the data dir: %s", exc)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
