"""Helpers the tests share: the repository's root, kubectl run as a user would, and polling with a deadline
instead of sleeping."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent


def kubectl(
    kube_api: Any, *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the real kubectl against `kube_api` and return its result (stdout, stderr, returncode)."""
    result = subprocess.run(
        ["kubectl", *args], input=input, capture_output=True, text=True, env=kube_api.env(), timeout=60
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def wait_until(probe: Callable[[], T], what: str, timeout: float = 30.0, interval: float = 0.2) -> T:
    """Call `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for: {what}")
        time.sleep(interval)
