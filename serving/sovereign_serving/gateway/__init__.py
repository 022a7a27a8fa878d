"""A nation's OpenAI-compatible gateway on Ray Serve: `build_app` is its import path's entry."""

from ._app import Gateway, build_app
from ._errors import NOT_AVAILABLE, GatewayError
from ._ratelimit import QUOTA_NAMESPACE, QuotaKeeper

__all__ = [
    "NOT_AVAILABLE",
    "QUOTA_NAMESPACE",
    "Gateway",
    "GatewayError",
    "QuotaKeeper",
    "build_app",
]
