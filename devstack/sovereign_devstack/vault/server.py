"""HTTP front of the Vault dev server: /v1/ paths, verbs to operations, tokens, JSON errors, access log.

Vault docs: /vault/api-docs (HTTP API overview, status codes, LIST verb)
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from sovereign_devstack.vault.common import VaultError
from sovereign_devstack.vault.core import VaultCore
from sovereign_devstack.vault.messages import Reply, VaultRequest, envelope

log = logging.getLogger("sovereign_devstack.vault")
CORE_KEY: web.AppKey[VaultCore] = web.AppKey("vault_core", VaultCore)
JSON = "application/json"  # exactly this: hvac only parses error bodies when the header equals it


def json_response(status: int, body: dict[str, Any] | None) -> web.Response:
    if body is None:
        return web.Response(status=status)
    # Built by hand: web.json_response would append "; charset=utf-8" to the Content-Type.
    response = web.Response(status=status, body=json.dumps(body).encode())
    response.headers["Content-Type"] = JSON
    response.headers["Cache-Control"] = "no-store"
    return response


def error_response(err: VaultError) -> web.Response:
    # Vault docs: /vault/api-docs#error-response ({"errors": [...]})
    body: dict[str, Any] = {"errors": err.messages}
    if err.body_data is not None:
        # A KV v2 read of a deleted version: 404 with the normal envelope and its metadata, no "errors".
        body = envelope(err.body_data, mount_type="kv")
    return json_response(err.status, body)


def request_token(request: web.Request) -> str | None:
    """X-Vault-Token, or `Authorization: Bearer`. Vault docs: /vault/api-docs#authentication"""
    token = request.headers.get("X-Vault-Token")
    if token:
        return token
    authorization = request.headers.get("Authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[len("bearer ") :].strip() or None
    return None


def operation_for(method: str, query: dict[str, str]) -> str:
    """HTTP verb to logical operation. Vault docs: /vault/docs/concepts/policies#capabilities and
    /vault/api-docs#http-verbs (LIST, or GET with ?list=true)."""
    if method == "LIST" or (method == "GET" and query.get("list", "").lower() in ("true", "1")):
        return "list"
    return {
        "GET": "read",
        "HEAD": "read",
        "POST": "update",
        "PUT": "update",
        "DELETE": "delete",
        "PATCH": "patch",
    }.get(method, "")


async def parse_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise VaultError(400, f"failed to parse JSON input: {exc}") from None
    if not isinstance(data, dict):
        raise VaultError(400, "failed to parse JSON input: expected an object")
    return data


async def handle_v1(request: web.Request) -> web.Response:
    try:
        query = {k: v for k, v in request.query.items()}
        operation = operation_for(request.method, query)
        if not operation:
            raise VaultError(405, "unsupported operation")
        path = request.match_info["path"]
        while "//" in path:
            path = path.replace("//", "/")
        path = path.lstrip("/")
        if request.method == "HEAD" and path.rstrip("/") != "sys/health":
            raise VaultError(405, "unsupported operation")
        if operation == "list" and not path.endswith("/"):
            path += "/"  # list paths are prefixes (Vault docs: /vault/docs/concepts/policies#policy-syntax)
        if request.method == "PATCH" and request.content_type != "application/merge-patch+json":
            # Vault docs: /vault/api-docs/secret/kv/kv-v2#patch-secret
            raise VaultError(
                415,
                f'PATCH requires Content-Type of application/merge-patch+json, got "{request.content_type}"',
            )
        data = await parse_body(request) if request.method in ("POST", "PUT", "PATCH", "DELETE") else {}
        if operation in ("read", "list"):
            data = {**query, **data}  # GET parameters are request data in Vault
        vault_request = VaultRequest(
            operation=operation,
            path=path,
            data=data,
            query=query,
            token=request_token(request),
            head=request.method == "HEAD",
        )
        reply: Reply = await request.app[CORE_KEY].handle(vault_request)
        return json_response(reply.status, reply.body)
    except VaultError as err:
        return error_response(err)
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return json_response(500, {"errors": ["internal error"]})


@web.middleware
async def access_log(request: web.Request, handler):
    """One line per request: method, path, status. Never bodies, query strings or headers (tokens)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # e.g. a path outside /v1/
        log.info("%s %s %s", request.method, request.path, exc.status)
        raise
    log.info("%s %s %s", request.method, request.path, response.status)
    return response


def create_app(root_token: str, core: VaultCore | None = None) -> web.Application:
    app = web.Application(middlewares=[access_log], client_max_size=32 * 1024 * 1024)
    app[CORE_KEY] = core or VaultCore(root_token)
    app.router.add_route("*", "/v1/{path:.*}", handle_v1)
    return app
