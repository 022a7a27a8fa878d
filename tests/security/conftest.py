"""The attacks need provisioned nations: one operator and two nations, LUX and NLD, shared by every module
here (package scope), on the session's platform (tests/operator/conftest.py `platform`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.operator.conftest import (  # noqa: F401  (fixtures)
    OperatorProcess,
    Platform,
    platform,
    pytest_runtest_makereport,
    started_operator,
)
from tests.operator.tenants import apply_tenant, delete_tenant, wait_ready


@pytest.fixture(scope="package")
def security_operator(
    platform: Platform,  # noqa: F811  (the fixture imported above)
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The real operator as its chart ServiceAccount (runtime `none`), leading for every module here."""
    with started_operator(platform, tmp_path_factory.mktemp("operator"), {}) as process:
        yield process


@pytest.fixture(scope="package")
def nations(
    platform: Platform,  # noqa: F811
    security_operator: OperatorProcess,
) -> Iterator[Platform]:
    apply_tenant(platform.kube, "lux", "LUX", admins=[{"kind": "Group", "name": "lux-admins"}])
    apply_tenant(platform.kube, "nld", "NLD", admins=[{"kind": "Group", "name": "nld-admins"}])
    wait_ready(platform.kube, "lux")
    wait_ready(platform.kube, "nld")
    try:
        yield platform
    finally:
        delete_tenant(platform.kube, "lux")
        delete_tenant(platform.kube, "nld")
