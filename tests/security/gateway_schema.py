"""The gateway's HTTP API as an OpenAPI document, for fuzzing it (schemathesis). The gateway serves none on
purpose (`openapi_url=None`): the document is built here from its own FastAPI app, whose routes take the raw
request (the handlers parse bodies themselves), so each operation gains the body it documents: the OpenAI
shapes, the `sovereign` grounding extension and the search request (`_grounding.py`'s own models)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sovereign_serving.gateway._grounding import Grounding, SearchRequest
from sovereign_serving.gateway._handlers import Handlers
from sovereign_serving.gateway._router import gateway_app

# What the gateway documents it may answer with 503 (`GatewayError`, OpenAI-shaped, with one of these codes):
# a part it depends on is out, never a crash.
DOCUMENTED_503_CODES = frozenset(
    {
        "not_configured",
        "config_refused",
        "audit_unavailable",
        "vault_unavailable",
        "dataset_unavailable",
        "model_unavailable",
        "federation_unavailable",
    }
)

_TEXT = {"type": "string", "maxLength": 2000}
_MESSAGE = {
    "type": "object",
    "properties": {"role": {"enum": ["system", "user", "assistant"]}, "content": _TEXT},
    "required": ["role", "content"],
}
_COMMON = {
    "stream": {"type": "boolean"},
    "max_tokens": {"type": "integer", "minimum": 1, "maximum": 4096},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "user": {"type": "string", "maxLength": 64},
}


def _body(properties: dict[str, Any], required: Sequence[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": list(required)}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _bodies(models: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The documented body of each POST path (after `/v1/` or `/federation/v1/`)."""
    model = {"enum": list(models)}
    grounding = Grounding.model_json_schema(ref_template="#/components/schemas/{model}")
    grounding.pop("title", None)
    return {
        "chat/completions": _body(
            {
                "model": model,
                "messages": {"type": "array", "items": _MESSAGE, "minItems": 1, "maxItems": 8},
                "sovereign": grounding,
                **_COMMON,
            },
            ["model", "messages"],
        ),
        "completions": _body({"model": model, "prompt": _TEXT, "sovereign": grounding, **_COMMON}, ["model"]),
        "embeddings": _body(
            {
                "model": model,
                "input": {"anyOf": [_TEXT, {"type": "array", "items": _TEXT, "maxItems": 8}]},
            },
            ["model", "input"],
        ),
        "sovereign/search": {
            "required": True,
            "content": {"application/json": {"schema": SearchRequest.model_json_schema()}},
        },
    }


def gateway_openapi(models: Sequence[str]) -> dict[str, Any]:
    """The gateway's OpenAPI document: its FastAPI app's paths (none served, none called here), each POST
    with its body (`models`: the model names to ask for), bearer authentication on every operation."""
    document = gateway_app(Handlers(None, None, None, None, None)).openapi()  # type: ignore[arg-type]
    bodies = _bodies(models)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            operation["security"] = [{"bearer": []}]
            operation["responses"] = {"default": {"description": "an answer or an OpenAI-shaped error"}}
            if method == "post":
                operation["requestBody"] = bodies[path.split("/v1/", 1)[1]]
    document.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer"}
    }
    return document
