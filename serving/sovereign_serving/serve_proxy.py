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

Left to see: whether a prefix is served (an unknown path is 404, a nation's gateway answers 401 without a
token), which tells a prober that a three-letter nation has an endpoint there, one guess at a time.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

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


def proxy_middlewares() -> list[Middleware]:
    """The proxy callback (`PROXY_ENV`)."""
    return [Middleware(WithoutRouteTable)]
