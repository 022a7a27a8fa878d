"""The attacks need provisioned nations: one operator (as its chart ServiceAccount, runtime `none`) and two
nations, LUX and NLD, shared by every module here (package scope), on the session's `platform`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.operator.harness import Platform, assert_least_privilege, operator_with_nations

NATIONS = {
    "lux": {"admins": [{"kind": "Group", "name": "lux-admins"}]},
    "nld": {"admins": [{"kind": "Group", "name": "nld-admins"}]},
}


@pytest.fixture(scope="package")
def nations(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with operator_with_nations(platform, tmp_path_factory.mktemp("operator"), NATIONS) as operator:
        yield platform
    assert_least_privilege([operator])
