"""A Ray and a Ray Serve of a test module's own, in the test process, with the environment every serving
process gets (AIR_GAP_ENV) and the repository on PYTHONPATH (the replicas import the tests' fake model); the
environment is restored and Ray shut down after."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray import serve
from sovereign_devstack.processes import free_loopback_port

from sovereign.serving_contract import AIR_GAP_ENV

REPOSITORY = str(Path(__file__).resolve().parents[2])


@contextlib.contextmanager
def local_serve(env: dict[str, str] | None = None, **ray_options: Any) -> Iterator[int]:
    """Ray (2 CPUs, no dashboard) and Serve's HTTP proxy on a free loopback port, which is yielded; `env`:
    more environment for Ray's processes, `ray_options`: more `ray.init` arguments."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**AIR_GAP_ENV, **(env or {})}.items():
            patch.setenv(name, value)
        patch.setenv(
            "PYTHONPATH", os.pathsep.join(p for p in (REPOSITORY, os.environ.get("PYTHONPATH")) if p)
        )
        port = free_loopback_port()
        # address="local": a Ray of our own, even when another one on this machine is the "current" cluster.
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, **ray_options)
        try:
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            yield port
        finally:
            serve.shutdown()
            ray.shutdown()
