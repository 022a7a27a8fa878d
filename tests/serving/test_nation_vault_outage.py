"""A nation's processes on Ray and their Vault going away: the retriever refuses a load with what happened
(VaultSealed / VaultUnreachable, which the gateway turns into 503 `vault_sealed` / `vault_unreachable`), and
the nation's Vault login (NationVault) keeps nothing broken: the same object logs in and decrypts once Vault
is back and unsealed. Against a real OpenBao of the test's own and a ServiceAccount token from the session's
API server; the retriever runs in-process (its Ray Serve wrapper adds nothing here)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import hvac
import pytest
from sovereign_serving.nation_vault import NationVault

from sovereign.clients.vault import VaultSealed, VaultUnreachable, classify_vault_error
from sovereign.dataplane import DatasetStore
from sovereign.serving_contract import VaultSink
from tests.dataplane.samples import TRANSIT
from tests.servers import KubeAPI, VaultServer
from tests.serving.est_retriever import DATASET, NATION, READER, retriever_for, write_index
from tests.serving.gateway.nation_vault import vault_sink_in


@pytest.mark.faults  # `make faults`: kept out of `make test` for its time
def test_the_retriever_refuses_while_vault_is_out_and_the_login_heals(
    fresh_vault: VaultServer, kube_api: KubeAPI, tmp_path: Path
) -> None:
    stores = tmp_path / "stores"
    count = 6
    with vault_sink_in(fresh_vault, kube_api, NATION, tmp_path) as sink:
        write_index(stores, fresh_vault, count)
        retriever = retriever_for(sink, stores)

        def search() -> None:
            asyncio.run(retriever.search(READER.model_dump(by_alias=True), DATASET, "convoy", 3))

        nation = NationVault(VaultSink.model_validate(sink))
        fresh_vault.seal()
        with pytest.raises(VaultSealed, match="is sealed: it serves no key until unsealed"):
            search()
        with pytest.raises(hvac.exceptions.VaultDown) as sealed_login:
            nation.client()
        assert isinstance(classify_vault_error(sealed_login.value), VaultSealed)

        fresh_vault.stop(kill=True)
        with pytest.raises(VaultUnreachable, match="is unreachable"):
            search()

        fresh_vault.start()
        fresh_vault.unseal()
        # The very NationVault that failed logs in now and decrypts the index.
        loaded = DatasetStore(stores, NATION, DATASET).load(nation.client(), TRANSIT)
        assert len(loaded.chunks) == count
