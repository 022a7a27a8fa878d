"""The gateway tests' shared fixture: DEU's federation signer, its gateway key in a real OpenBao."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sovereign_devstack.pki import CertificateAuthority

from tests.servers import KubeAPI
from tests.serving.gateway.nation_vault import gateways_signing_in


@pytest.fixture(scope="module")
def deu_signing(
    kube_api: KubeAPI, devstack_ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """DEU's federation signer (its gateway key in a real OpenBao) and the key set FRA trusts it by."""
    with gateways_signing_in(kube_api, devstack_ca, tmp_path_factory.mktemp("fed"), ("DEU",)) as (_, signers):
        yield signers["DEU"]
