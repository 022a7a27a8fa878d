"""The data plane's public names: what the ingest job, the retriever and the gateway import."""

import sovereign.dataplane as dataplane


def test_all_is_sorted_and_importable() -> None:
    assert dataplane.__all__ == sorted(dataplane.__all__)
    assert all(hasattr(dataplane, name) for name in dataplane.__all__)
