"""Errors as the OpenAI API shapes them: `{"error": {"message", "type", "param", "code"}}`.

Messages are written here, never built from a request: no prompt, completion or token ever reaches one.
"""

from __future__ import annotations

import math

from starlette.responses import JSONResponse

from sovereign.clients.vault import VaultSealed, VaultUnavailable

# One message for a model that does not exist and one that exists but is forbidden: a denial never tells
# a user whether a model they may not use is there.
NOT_AVAILABLE = "model {name!r} is not available to you"
DATASET_NOT_AVAILABLE = "dataset {name!r} is not available to you"  # the same, for datasets
MAX_ECHOED = 128  # characters of a client's string (a model or dataset name) an error message repeats


def echoed(value: str) -> str:
    """A client's string as an error message may repeat it: at most MAX_ECHOED characters, marked when cut."""
    return value if len(value) <= MAX_ECHOED else value[:MAX_ECHOED] + "…"


class GatewayError(Exception):
    """An answer other than success: HTTP status, OpenAI error type, code and a safe message."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, dict[str, str | None]]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def unauthenticated(code: str, message: str) -> GatewayError:
    return GatewayError(
        401, message, type="authentication_error", code=code, headers={"WWW-Authenticate": "Bearer"}
    )


def not_available(model: str) -> GatewayError:
    return GatewayError(
        403, NOT_AVAILABLE.format(name=echoed(model)), type="permission_error", code="model_not_available"
    )


def dataset_not_available(dataset: str) -> GatewayError:
    return GatewayError(
        403,
        DATASET_NOT_AVAILABLE.format(name=echoed(dataset)),
        type="permission_error",
        code="dataset_not_available",
    )


def bad_request(message: str, param: str | None = None, code: str = "invalid_request") -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def rate_limited(retry_after: float, whose: str, what: str, *, never: bool = False) -> GatewayError:
    """429: `whose` quota ("your", "your nation's", "FRA's cap on your nation's") of `what` ("requests",
    "tokens") is used up, or (`never`) the request alone needs more tokens than that quota holds."""
    seconds = max(1, math.ceil(retry_after))
    message = (
        f"this request needs more tokens than {whose} {what} per minute quota holds; lower `max_tokens` "
        "or send less"
        if never
        else f"{whose} {what} per minute quota is used up; retry in {seconds} s"
    )
    return GatewayError(
        429,
        message,
        type="rate_limit_error",
        code="rate_limit_exceeded",
        headers={"Retry-After": str(seconds)},
    )


def unavailable(
    message: str, code: str = "service_unavailable", headers: dict[str, str] | None = None
) -> GatewayError:
    return GatewayError(503, message, type="server_error", code=code, headers=headers)


def vault_unavailable(outage: VaultUnavailable) -> GatewayError:
    """503 while the nation's Vault is sealed or unreachable: nothing that needs the nation's key is served
    (fail closed) until it is back; the next request after that succeeds."""
    if isinstance(outage, VaultSealed):
        return unavailable(
            "your nation's keys are locked: its Vault is sealed, so nothing is served until the platform's "
            "operators unseal it; retry later",
            code="vault_sealed",
        )
    return unavailable(
        "your nation's keys cannot be reached: its Vault does not answer, so nothing is served; retry later",
        code="vault_unreachable",
    )


def model_failed() -> GatewayError:
    return GatewayError(
        502, "the model could not answer the request", type="server_error", code="model_error"
    )
