"""Ray Serve's HTTP proxy without its route table: `/-/routes` answers 404, as a path that is not there.

Ray Serve 2.60's proxy answers `GET /-/routes` itself, before any application and without a token, with every
HTTP route it serves and the application behind it (`ray.serve._private.proxy`, `routes_response`): on the
devstack's one Ray, every nation's gateway. No Serve option turns it off. What the proxy does offer is its
callback: the Starlette middlewares returned by the function that `RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`
names are put in front of its own routing (`ray.serve._private.http_util.configure_http_middlewares`). The
variable is read by the proxy actor when it starts, from the environment of its node's Ray processes, so
`PROXY_ENV` (in sovereign.serving_contract, naming `proxy_middlewares` below) goes into the environment of
every Ray node: the devstack's `ray_head_spec`, the containers of a nation's RayService
(`builders/rayservice.py`). `/-/healthz` stays (KubeRay and load balancers probe it).

When the proxy itself fails a request (the replica it was answering on died, Ray's own backpressure or
timeout), Ray's answer is plain text, and for a failure it does not classify it sends nothing, so its HTTP
server answers `500 Internal Server Error`: `OpenAIShapedProxyErrors` makes each of these an OpenAI-shaped
error like the gateway's, 503 `endpoint_unavailable` with Retry-After for the unclassified one (an OpenAI
client retries it). The gateway's own answers are JSON and pass untouched.

Left to see: whether a prefix is served (an unknown path is 404, a nation's gateway answers 401 without a
token), which tells a prober that a three-letter nation has an endpoint there, one guess at a time.
"""

from __future__ import annotations

import json

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ROUTE_TABLE_PATH = "/-/routes"  # Ray Serve's `ASGIProxyRequest.is_route_request`
_NOT_FOUND = b"Not Found"


class WithoutRouteTable:
    """ASGI middleware: the route table request gets 404; everything else goes on to Ray's proxy."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The proxy's own test: the path after the ASGI root path (`ASGIProxyRequest.route_path`).
        path = str(scope.get("path", ""))[len(str(scope.get("root_path", ""))) :]
        if scope["type"] != "http" or path != ROUTE_TABLE_PATH:
            await self.app(scope, receive, send)
            return
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(_NOT_FOUND)),
        ]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": _NOT_FOUND})


# The proxy's own plain-text answers (`ray.serve._private.http_util.get_http_response_status`) by status.
_PROXY_FAILURES = {
    408: ("the request took longer than the endpoint allows; retry", "timeout", "endpoint_timeout"),
    429: ("the endpoint is busy; retry later", "rate_limit_error", "endpoint_busy"),
    503: ("the endpoint cannot take requests right now; retry later", "server_error", "endpoint_unavailable"),
}
_UNANSWERED = (503, "the endpoint failed while answering; retry", "server_error", "endpoint_unavailable")


def openai_error(
    status: int, message: str, type_: str, code: str, headers: list[tuple[bytes, bytes]]
) -> list[Message]:
    """The ASGI messages of an OpenAI-shaped error: `{"error": {message, type, param, code}}`."""
    body = json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()
    start_headers = [
        *headers,
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": start_headers},
        {"type": "http.response.body", "body": body},
    ]


class OpenAIShapedProxyErrors:
    """ASGI middleware: the proxy's own failures as OpenAI-shaped JSON; whatever the application answered
    (any JSON, or a response already started) passes as it is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        held: Message | None = None  # the proxy's own plain-text start, rewritten with its body

        async def forward(message: Message) -> None:
            nonlocal started, held
            if message["type"] == "http.response.start" and _is_proxy_failure(message):
                held = message
                return
            if held is not None:  # the held start's body: replaced by the JSON error
                if message["type"] == "http.response.body" and not message.get("more_body", False):
                    status = int(held["status"])
                    kept = [(k, v) for k, v in held.get("headers", []) if k.lower() == b"retry-after"]
                    for reply in openai_error(status, *_PROXY_FAILURES[status], kept):
                        await send(reply)
                    started, held = True, None
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, forward)
        except Exception:  # noqa: BLE001 — the client gets an answer either way; Ray logged the cause
            if started:
                raise
        if not started:
            status, message, type_, code = _UNANSWERED
            for reply in openai_error(status, message, type_, code, [(b"retry-after", b"1")]):
                await send(reply)


def _is_proxy_failure(start: Message) -> bool:
    headers = dict((k.lower(), v) for k, v in start.get("headers", []))
    plain = headers.get(b"content-type", b"").startswith(b"text/plain")
    return plain and int(start["status"]) in _PROXY_FAILURES


def proxy_middlewares() -> list[Middleware]:
    """The proxy callback (`PROXY_ENV`). Ray wraps its proxy in them in order (`_apply_middlewares`): the
    last is outermost, so every answer, the route table's 404 included, passes the error shaping."""
    return [Middleware(WithoutRouteTable), Middleware(OpenAIShapedProxyErrors)]
