"""The gateway's one router: every route of `_routes.ROUTES` to the handler of its operation, with the
OpenAI-shaped errors and the request's SERVER span around them all."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from . import _telemetry as telemetry
from ._admission import refusal_recorded
from ._errors import GatewayError
from ._handlers import Handlers
from ._routes import ROUTES, Operation

Handler = Callable[[Request, bool], Awaitable[Response]]

# FastAPI's own OpenTelemetry instrumentation (on by default since 0.16x) is off: it records the query string,
# logs exception messages and validation inputs (content), and would add a second SERVER span. The gateway's
# `TraceRequests` records the method, the route and the status only.
NO_FASTAPI_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


def _endpoint(handler: Handler, federated: bool) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await handler(request, federated)

    return endpoint


def gateway_app(handlers: Handlers) -> FastAPI:
    """A replica's ASGI app: the routes of ROUTES, each served by its operation's handler."""
    by_operation: dict[Operation, Handler] = {
        Operation.MODELS: handlers.models,
        Operation.CHAT: handlers.chat,
        Operation.COMPLETION: handlers.completion,
        Operation.EMBED: handlers.embeddings,
        Operation.SEARCH: handlers.search,
    }
    app = FastAPI(
        title="Sovereign gateway",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        telemetry=NO_FASTAPI_TELEMETRY,
    )
    app.add_middleware(telemetry.TraceRequests)

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, error: GatewayError) -> Response:
        await refusal_recorded(request, error)  # a refusal after authentication goes into the audit log
        return error.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> Response:
        kind = "not_found" if error.status_code == 404 else "invalid_request"
        message = "no such route" if error.status_code == 404 else "the request cannot be served"
        return GatewayError(error.status_code, message, code=kind).response()

    for route in ROUTES:
        endpoint = _endpoint(by_operation[route.operation], route.federated)
        app.add_api_route(route.path, endpoint, methods=[route.method], response_model=None)
    return app
