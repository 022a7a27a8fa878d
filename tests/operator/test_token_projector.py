"""The devstack's token projector (sovereign_devstack.token_projector), local-ray's stand-in for the kubelet's
projected ServiceAccount token: with its own identity against the session's API server it writes each nation
namespace's model-serving token (0600), refreshes it after 80% of its lifetime, mints it again when the
ServiceAccount is re-created (new uid), removes it when the ServiceAccount is gone, and never logs it. The
process `sovereign up` and the fixtures start answers its health check once its first pass is done."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sovereign_devstack.processes import free_loopback_port, start_service, stop_service
from sovereign_devstack.token_projector import (
    PROJECTOR_SERVICE,
    REFRESH_FRACTION,
    TOKEN_SECONDS,
    TokenProjector,
    projector_spec,
)

from sovereign.clients.kubernetes import load_api_client
from sovereign.domain.nations import SERVING_SERVICE_ACCOUNT
from tests.helpers import kubectl, wait_until
from tests.operator.harness import Platform

NATION = "tpq"  # a namespace of its own, no Tenant: the projector looks at ServiceAccounts only
NAMESPACE = f"tenant-{NATION}"


def service_account_uid(platform: Platform) -> str:
    args = (
        "get",
        "serviceaccount",
        SERVING_SERVICE_ACCOUNT,
        "-n",
        NAMESPACE,
        "-o",
        "jsonpath={.metadata.uid}",
    )
    return kubectl(platform.kube, *args).stdout


def create_service_account(platform: Platform) -> str:
    kubectl(platform.kube, "create", "serviceaccount", SERVING_SERVICE_ACCOUNT, "-n", NAMESPACE)
    return service_account_uid(platform)


def token_uid(token: str) -> str:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["kubernetes.io"]["serviceaccount"]["uid"])


@pytest.fixture
def nation_namespace(platform: Platform) -> Iterator[str]:
    kubectl(platform.kube, "create", "namespace", NAMESPACE)
    try:
        yield create_service_account(platform)
    finally:
        kubectl(platform.kube, "delete", "namespace", NAMESPACE, "--ignore-not-found")


def test_it_refreshes_re_mints_on_a_new_uid_and_removes(
    platform: Platform, nation_namespace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    projector = TokenProjector(load_api_client(str(platform.token_projector)), tmp_path)
    token_file = tmp_path / NATION / "token"
    now = time.time()

    projector.project(now)
    first = token_file.read_text()
    assert token_uid(first) == nation_namespace
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    projector.project(now + 1)
    assert token_file.read_text() == first  # not due yet

    projector.project(now + TOKEN_SECONDS * REFRESH_FRACTION)  # the kubelet's rule: after 80%
    refreshed = token_file.read_text()
    assert refreshed != first and token_uid(refreshed) == nation_namespace

    # Offboarded and onboarded again: a new ServiceAccount, the old token is void; minted again at once.
    kubectl(platform.kube, "delete", "serviceaccount", SERVING_SERVICE_ACCOUNT, "-n", NAMESPACE)
    new_uid = create_service_account(platform)
    assert new_uid != nation_namespace
    projector.project(now + 2 + TOKEN_SECONDS * REFRESH_FRACTION)
    assert token_uid(token_file.read_text()) == new_uid

    kubectl(platform.kube, "delete", "serviceaccount", SERVING_SERVICE_ACCOUNT, "-n", NAMESPACE)
    projector.project(now + 3 + TOKEN_SECONDS * REFRESH_FRACTION)
    assert not token_file.parent.exists()

    logged = caplog.text
    assert "re-minted (new uid)" in logged and "token removed" in logged
    for token in (first, refreshed):
        assert token not in logged and token.split(".")[1] not in logged


def test_the_process_writes_a_nation_that_appears_later(
    platform: Platform, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """As `sovereign up` runs it: healthy after its first pass, then a nation's token within a pass or two
    of its ServiceAccount, and gone again with its namespace."""
    port = free_loopback_port()
    start_service(projector_spec(platform.token_projector, tmp_path / "tokens", port, 0.5), tmp_path)
    request.addfinalizer(lambda: stop_service(tmp_path, PROJECTOR_SERVICE, timeout=5.0))
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["lastError"] is None
    token_file = tmp_path / "tokens" / NATION / "token"
    kubectl(platform.kube, "create", "namespace", NAMESPACE)
    try:
        uid = create_service_account(platform)
        wait_until(lambda: token_file.exists() and token_uid(token_file.read_text()) == uid, "token written")
    finally:
        kubectl(platform.kube, "delete", "namespace", NAMESPACE, "--ignore-not-found")
    wait_until(lambda: not token_file.exists(), "token removed with the namespace")
    log = (tmp_path / "logs" / f"{PROJECTOR_SERVICE}.log").read_text()
    assert f"{NAMESPACE}/{SERVING_SERVICE_ACCOUNT}: token new" in log
