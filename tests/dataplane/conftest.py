"""A Vault of the data-plane tests' own (the real OpenBao) with EST's and FRA's keys, for the tests that
build indexes (tests/dataplane/samples.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sovereign_devstack.pki import CertificateAuthority

from tests.dataplane.samples import DataplaneVault, prepare_nations
from tests.servers import running_vault


@pytest.fixture(scope="module")
def dataplane_vault(
    tmp_path_factory: pytest.TempPathFactory, devstack_ca: CertificateAuthority
) -> Iterator[DataplaneVault]:
    with running_vault(tmp_path_factory.mktemp("dataplane-vault"), devstack_ca) as server:
        yield prepare_nations(server)
