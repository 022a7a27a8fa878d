"""`python -m sovereign_devstack.kube --host H --port N --service-account-key-file PATH [--audit-log PATH]`:
the devstack's Kubernetes API server, over plain HTTP until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

import kmock

from sovereign_devstack.kube.audit_log import AUDIT_LOG_ENV, AuditLog
from sovereign_devstack.kube.server import DevstackKubeAPI
from sovereign_devstack.kube.service_account_tokens import DEFAULT_ISSUER, TokenIssuer


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
    parser.add_argument("--service-account-issuer", default=DEFAULT_ISSUER)
    parser.add_argument("--service-account-jwks-uri", default=None)
    parser.add_argument(
        "--audit-log",
        type=Path,
        default=os.environ.get(AUDIT_LOG_ENV) or None,
        help=f"append one JSON audit event per resource request to PATH (default: ${AUDIT_LOG_ENV})",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    tokens = TokenIssuer(
        args.service_account_key_file, args.service_account_issuer, args.service_account_jwks_uri
    )
    audit_log = AuditLog(Path(args.audit_log)) if args.audit_log else None
    handler = DevstackKubeAPI(tokens, audit_log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with kmock.Server(handler, host=args.host, port=args.port):
        handler.controllers.start()
        logging.getLogger("sovereign_devstack.kube").info("serving on http://%s:%d", args.host, args.port)
        await stop.wait()
        handler.store.close()
        await handler.controllers.stop()
    if audit_log is not None:
        audit_log.close()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # we log our own one line per request
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
