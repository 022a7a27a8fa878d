"""A nation's Vault slow under its retriever (the data path): reached through a loopback proxy that holds
every chunk the client sends for a while. Slow within the Vault client's timeout (10 s), what a search does
first (log in as the nation, decrypt the index) succeeds, only later; slower than that, a search fails with
VaultUnreachable (the gateway's 503 `vault_unreachable`) instead of hanging, and loading succeeds once Vault
is fast again. Real OpenBao, a real ServiceAccount token; the retriever in-process as in
test_nation_vault_outage.py. The times are printed (RELIABILITY.md), never asserted."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sovereign_serving.nation_vault import NationVault

from sovereign.clients.vault import VaultUnreachable
from sovereign.dataplane import DatasetStore
from sovereign.serving_contract import VaultSink
from tests.dataplane.samples import TRANSIT
from tests.operator.switchable_proxy import SwitchableProxy
from tests.servers import KubeAPI, VaultServer
from tests.serving.est_retriever import DATASET, NATION, READER, retriever_for, write_index
from tests.serving.gateway.nation_vault import vault_sink_in

NEVER_HANGS = 120  # seconds: far above the client's timeout times the calls of one search


def timed(call: Callable[[], object]) -> tuple[float, BaseException | None]:
    """Seconds `call` took and what it raised; one that outlives NEVER_HANGS fails the test."""
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(call)
        try:
            error = future.exception(timeout=NEVER_HANGS)
        except concurrent.futures.TimeoutError:
            pytest.fail(f"a call hung for {NEVER_HANGS} s on a slow Vault")
    return time.monotonic() - started, error


@pytest.mark.faults  # `make faults`: kept out of `make test` for its time
def test_a_slow_vault_slows_the_first_search_and_one_past_the_timeout_fails_clearly(
    fresh_vault: VaultServer, kube_api: KubeAPI, tmp_path: Path
) -> None:
    stores = tmp_path / "stores"
    with vault_sink_in(fresh_vault, kube_api, NATION, tmp_path) as sink:
        write_index(stores, fresh_vault, 6)
        target = urlsplit(fresh_vault.url)
        proxy = SwitchableProxy(target.hostname or "127.0.0.1", target.port or 8200, target.scheme)
        proxy.open()
        try:
            slow_sink = {**sink, "vaultAddr": proxy.url}

            def load_index() -> None:
                # What a search does first: log in as the nation and decrypt the index (the retriever's
                # `_index`); the search then embeds the query on Ray, which this test does not run.
                vault = NationVault(VaultSink.model_validate(slow_sink))
                DatasetStore(stores, NATION, DATASET).load(vault.client(), TRANSIT)

            def search() -> None:
                retriever = retriever_for(slow_sink, stores)
                asyncio.run(retriever.search(READER.model_dump(by_alias=True), DATASET, "convoy", 3))

            fast, error = timed(load_index)
            assert error is None, error
            proxy.delay = 1.0  # within the client's timeout
            slow, error = timed(load_index)
            assert error is None, error
            proxy.delay = 12.0  # past the client's timeout (10 s): the search fails before its embedding
            failed, error = timed(search)
            assert isinstance(error, VaultUnreachable) and "unreachable" in str(error), error
            proxy.delay = 0.0
            healed, error = timed(load_index)
            assert error is None, error
        finally:
            proxy.shutdown()
    print(
        f"\nlogin and decrypt the index: {fast:.2f} s with Vault fast, {slow:.2f} s at 1 s per chunk; "
        f"at 12 s per chunk a search failed VaultUnreachable after {failed:.1f} s; "
        f"{healed:.2f} s once fast again"
    )
