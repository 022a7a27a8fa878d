"""`python -m sovereign_devstack.vault --host H --port P --root-token T`: serve until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import os
import sys

# Vault's API uses the non-standard LIST verb (hvac sends it). aiohttp's C parser (llhttp) rejects unknown
# verbs; its documented pure-Python parser accepts any RFC 9110 token. Must be set before aiohttp is imported.
os.environ["AIOHTTP_NO_EXTENSIONS"] = "1"

from aiohttp import web  # noqa: E402

from sovereign_devstack.vault.server import create_app  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sovereign_devstack.vault",
        description="In-memory Vault-API-compatible dev server (like `vault server -dev`).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8200)
    parser.add_argument("--root-token", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("sovereign_devstack.vault").info(
        "vault dev server listening on %s:%d", args.host, args.port
    )
    # run_app turns SIGTERM and SIGINT into a graceful shutdown and returns normally.
    web.run_app(
        create_app(args.root_token),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        handle_signals=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
