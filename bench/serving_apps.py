"""The serving benchmark's baseline ingress: the gateway's FastAPI route without the gateway's work.

`BareIngress` accepts `POST /v1/chat/completions` as the gateway does, parses the JSON body and calls the
named application's `chat` through a Ray Serve handle (looked up once, as the gateway does), then answers
with the model's dict: no authentication, policy, markings or rate limit. Imported by the replicas from
`bench/` (on their PYTHONPATH, set by `bench/serving.py`).
"""

# No `from __future__ import annotations`: FastAPI must see the route's annotations as classes in the replica.

import json
from typing import Any

from fastapi import FastAPI, Request
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.responses import JSONResponse, Response

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@serve.deployment(name="BareIngress")
@serve.ingress(app)
class BareIngress:
    def __init__(self, application: str) -> None:
        self._application = application
        self._handle: DeploymentHandle | None = None

    @app.post("/v1/chat/completions")
    async def chat_completions(self, request: Request) -> Response:
        body: Any = json.loads(await request.body())
        if self._handle is None:
            self._handle = serve.get_app_handle(self._application)
        return JSONResponse(await self._handle.chat.remote(body))
