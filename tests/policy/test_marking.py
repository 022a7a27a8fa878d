"""An answer's marking: the highest classification, releasable to the intersection of releasabilities."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sovereign.domain.markings import Classification, ExcludesRecipient, Markings, answer_marking


def m(owner: str, level: str, rel=(), denied=()) -> Markings:
    return Markings(owner=owner, classification=level, releasable_to=list(rel), denied_nations=list(denied))


@pytest.mark.parametrize(
    ("markings", "level", "releasable"),
    [
        ([m("FRA", "NATO SECRET")], "NATO SECRET", ["FRA"]),
        (
            [m("FRA", "NATO SECRET", ["DEU"]), m("DEU", "NATO RESTRICTED", ["FRA"])],
            "NATO SECRET",
            ["DEU", "FRA"],
        ),
        ([m("FRA", "NATO RESTRICTED", ["DEU"]), m("GBR", "COSMIC TOP SECRET")], "COSMIC TOP SECRET", []),
        (
            [m("FRA", "NATO SECRET", ["NATO"]), m("DEU", "NATO RESTRICTED", ["ITA"])],
            "NATO SECRET",
            ["DEU", "ITA"],
        ),
        ([m("FRA", "NATO SECRET", ["NATO"]), m("DEU", "NATO SECRET", ["NATO"])], "NATO SECRET", ["NATO"]),
        (
            [m("FRA", "NATO SECRET", ["NATO"], ["ITA"]), m("DEU", "NATO SECRET", ["ITA", "GBR"])],
            "NATO SECRET",
            ["DEU", "GBR"],
        ),
    ],
    ids=["one", "owners-included", "disjoint", "nato-and-list", "nato-and-nato", "denied-removed"],
)
def test_answer_marking(markings, level: str, releasable: list[str]) -> None:
    marking = answer_marking(markings)
    assert marking.classification == Classification(level)
    assert marking.releasable_to == releasable


# The recipient rule (policies/cedar/README.md): the marking never excludes the nation the answer goes to.
@pytest.mark.parametrize(
    ("markings", "recipient", "disclosed_by", "releasable"),
    [
        ([m("FRA", "NATO SECRET", ["DEU"])], "DEU", (), ["DEU", "FRA"]),
        ([m("FRA", "NATO SECRET", ["DEU"])], "EST", ("FRA",), ["DEU", "EST", "FRA"]),
        ([m("FRA", "NATO SECRET")], "FRA", (), ["FRA"]),
        ([m("FRA", "NATO SECRET", ["NATO"])], "EST", (), ["FRA", "NATO"]),
        (
            [m("FRA", "NATO SECRET", ["DEU"]), m("FRA", "NATO RESTRICTED", ["NATO"])],
            "EST",
            ("FRA",),
            ["DEU", "EST", "FRA"],
        ),
        (
            [m("FRA", "NATO SECRET", ["DEU"]), m("DEU", "NATO RESTRICTED", ["EST", "FRA"])],
            "EST",
            ("FRA",),
            ["DEU", "EST", "FRA"],
        ),
    ],
    ids=[
        "released-unchanged",
        "disclosed-by-owner-added",
        "owner-unchanged",
        "nato-covers-recipient",
        "grounded-model-and-chunk",
        "two-owners-one-disclosing",
    ],
)
def test_an_answer_marking_includes_its_recipient(markings, recipient, disclosed_by, releasable) -> None:
    marking = answer_marking(markings, recipient=recipient, disclosed_by=frozenset(disclosed_by))
    assert marking.releasable_to == releasable
    assert recipient in marking.releasable_to or "NATO" in marking.releasable_to


@pytest.mark.parametrize(
    ("markings", "recipient", "disclosed_by"),
    [
        ([m("FRA", "NATO SECRET", ["DEU"])], "EST", ()),
        ([m("FRA", "NATO SECRET", ["DEU"])], "EST", ("DEU",)),
        ([m("FRA", "NATO SECRET", ["NATO"], ["EST"])], "EST", ("FRA",)),
        ([m("FRA", "NATO SECRET", ["EST"]), m("DEU", "NATO SECRET", ["FRA"])], "EST", ("FRA",)),
    ],
    ids=["not-disclosed", "disclosed-by-another-nation", "denied-nation", "second-owner-did-not-disclose"],
)
def test_an_answer_excluding_its_recipient_is_refused(markings, recipient, disclosed_by) -> None:
    with pytest.raises(ExcludesRecipient):
        answer_marking(markings, recipient=recipient, disclosed_by=frozenset(disclosed_by))


def test_answer_marking_needs_a_resource() -> None:
    with pytest.raises(ValueError):
        answer_marking([])


@pytest.mark.parametrize(
    "fields",
    [
        {"owner": "XXX", "classification": "NATO SECRET"},
        {"owner": "FRA", "classification": "SECRET"},
        {"owner": "FRA", "classification": "NATO SECRET", "releasableTo": ["EUROPE"]},
        {"owner": "FRA", "classification": "NATO SECRET", "deniedNations": ["NATO"]},
        {"owner": "FRA", "classification": "NATO SECRET", "colour": "red"},
    ],
    ids=["unknown-owner", "unknown-level", "unknown-releasable", "nato-denied", "extra-field"],
)
def test_invalid_markings_are_rejected(fields) -> None:
    with pytest.raises(ValidationError):
        Markings.model_validate(fields)


# The verification checks the marking rule on each resource alone (sovereign.policy.verify); that covers
# every answer built from several only if the rule is a fold of the single ones, as checked here.
NATIONS = ["FRA", "DEU", "POL", "GBR", "EST"]
nations = st.sampled_from(NATIONS)
several_markings = st.lists(
    st.builds(
        m,
        nations,
        st.sampled_from(list(Classification)),
        st.lists(st.sampled_from([*NATIONS, "NATO"]), max_size=3),
        st.lists(nations, max_size=1),
    ),
    min_size=1,
    max_size=4,
)


def includes_recipient(markings: list[Markings], recipient: str, disclosed_by: frozenset[str]) -> bool:
    try:
        marking = answer_marking(markings, recipient=recipient, disclosed_by=disclosed_by)
    except ExcludesRecipient:
        return False
    return recipient in marking.releasable_to or "NATO" in marking.releasable_to


@settings(max_examples=500, deadline=None)
@given(markings=several_markings, recipient=nations, disclosed_by=st.frozensets(nations))
def test_an_answer_from_several_resources_is_the_fold_of_the_single_ones(
    markings: list[Markings], recipient: str, disclosed_by: frozenset[str]
) -> None:
    each = [includes_recipient([one], recipient, disclosed_by) for one in markings]
    assert includes_recipient(markings, recipient, disclosed_by) == all(each)
    marking = answer_marking(markings)
    assert all(marking.classification >= one.classification for one in markings)
    if all(each):
        delivered = answer_marking(markings, recipient=recipient, disclosed_by=disclosed_by)
        assert all(delivered.classification >= one.classification for one in markings)
