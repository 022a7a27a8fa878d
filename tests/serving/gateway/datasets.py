"""The grounding tests' datasets and the chunks the fake retriever holds, each with a canary word.

FRA's `fra/reports` (NATO RESTRICTED, releasable to DEU and POL) holds chunks stricter than itself: a SECRET
one, one releasable to DEU only, one FRA keeps for itself; POL's `pol/notes` is POL's own. A model of DEU's,
`deu/scribe`, is releasable to FRA and POL, so a chunk can narrow the answer's releasability below it.
"""

from __future__ import annotations

from typing import Any

from tests.serving.gateway.nations import FAKE_APP, gateway_config, model

DATASETS = [
    {
        "name": "fra/reports",
        "markings": {"owner": "FRA", "classification": "NATO RESTRICTED", "releasableTo": ["DEU", "POL"]},
    },
    {"name": "pol/notes", "markings": {"owner": "POL", "classification": "NATO RESTRICTED"}},
]
SCRIBE = model("deu/scribe", "DEU", releasable_to=("FRA", "POL"), application=FAKE_APP)


def chunk(
    dataset: str, n: int, keyword: str, classification: str = "NATO RESTRICTED", releasable_to: tuple = ()
) -> dict[str, Any]:
    owner = dataset.split("/")[0].upper()
    return {
        "dataset": dataset,
        "documentId": f"doc-{n}.md",
        "chunkId": f"doc-{n}.md#0",
        "keyword": keyword,
        "text": f"{keyword} report CANARY-{owner}-{n} of {dataset}",
        "markings": {"owner": owner, "classification": classification, "releasableTo": list(releasable_to)},
    }


CHUNKS = [
    chunk("fra/reports", 0, "routine", releasable_to=("DEU", "POL")),
    chunk("fra/reports", 1, "secret", classification="NATO SECRET", releasable_to=("DEU", "POL")),
    chunk("fra/reports", 2, "narrow", releasable_to=("DEU",)),
    chunk("fra/reports", 3, "withheld"),  # FRA's own only
    chunk("pol/notes", 0, "routine"),
]


def canaries(*, readable_by: str | None = None, unreadable_by: str | None = None) -> list[str]:
    """The canary words of the chunks a user of a nation (cleared NATO SECRET) may or may not read."""

    def readable(c: dict[str, Any], nation: str) -> bool:
        markings = c["markings"]
        return markings["owner"] == nation or nation in markings["releasableTo"]

    nation = readable_by or unreadable_by
    return [
        c["text"].split()[2]
        for c in CHUNKS
        if readable(c, nation) == (readable_by is not None)  # type: ignore[arg-type]
    ]


def grounded_config(nation: str, **options: Any) -> dict[str, Any]:
    """`gateway_config` with the datasets (as helper B's serving pass fills them) and DEU's scribe."""
    config = gateway_config(nation, **options)
    federation_urls = options.get("federation_urls") or {}
    datasets = [
        {**d, "federationUrl": federation_urls[owner]}
        if (owner := d["markings"]["owner"]) != nation and owner in federation_urls
        else d
        for d in DATASETS
    ]
    return {**config, "models": [*config["models"], SCRIBE], "datasets": datasets}
