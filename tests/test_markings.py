"""Classification levels form one total order, used everywhere a level is compared."""

from __future__ import annotations

import pytest

from sovereign.domain.markings import Classification

LEVELS = [
    "NATO UNCLASSIFIED",
    "NATO RESTRICTED",
    "NATO CONFIDENTIAL",
    "NATO SECRET",
    "COSMIC TOP SECRET",
]


@pytest.mark.parametrize(("lower", "higher"), list(zip(LEVELS, LEVELS[1:], strict=False)))
def test_each_level_is_below_the_next(lower: str, higher: str) -> None:
    assert Classification(lower) < Classification(higher)
    assert Classification(higher) >= Classification(lower)
    assert not Classification(higher) <= Classification(lower)


def test_order_is_the_markings_order_not_alphabetical() -> None:
    # Alphabetically "COSMIC TOP SECRET" < "NATO CONFIDENTIAL"; in the markings' order it is the highest.
    assert sorted(Classification(level) for level in reversed(LEVELS)) == [Classification(x) for x in LEVELS]
    assert max(Classification) is Classification.COSMIC_TOP_SECRET


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError):
        Classification("TOP SECRET")
