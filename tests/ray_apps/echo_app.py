"""A trivial Ray Serve application for tests/test_ray_client.py: answers with the air-gap variables set."""

from __future__ import annotations

import os

from ray import serve
from starlette.requests import Request

from sovereign.serving_contract import AIR_GAP_ENV

ENV_KEYS = tuple(AIR_GAP_ENV)


@serve.deployment(ray_actor_options={"num_cpus": 0.01})
class Echo:
    async def __call__(self, request: Request) -> dict[str, str | None]:
        return {key: os.environ.get(key) for key in ENV_KEYS}


app = Echo.bind()
