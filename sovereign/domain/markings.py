"""Security markings: classification levels in their total order."""

from __future__ import annotations

from enum import StrEnum


class Classification(StrEnum):
    """NATO classification levels, lowest first. Comparisons follow this order, not the strings' order."""

    NATO_UNCLASSIFIED = "NATO UNCLASSIFIED"
    NATO_RESTRICTED = "NATO RESTRICTED"
    NATO_CONFIDENTIAL = "NATO CONFIDENTIAL"
    NATO_SECRET = "NATO SECRET"
    COSMIC_TOP_SECRET = "COSMIC TOP SECRET"

    @property
    def rank(self) -> int:
        return list(Classification).index(self)

    # StrEnum would compare alphabetically; the markings' order is the declaration order.
    def __lt__(self, other: object) -> bool:
        return self.rank < Classification(other).rank

    def __le__(self, other: object) -> bool:
        return self.rank <= Classification(other).rank

    def __gt__(self, other: object) -> bool:
        return self.rank > Classification(other).rank

    def __ge__(self, other: object) -> bool:
        return self.rank >= Classification(other).rank

    __hash__ = StrEnum.__hash__
