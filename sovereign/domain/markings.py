"""Security markings: classification levels in their total order."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sovereign.domain.nations import is_nation_code


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
    def __lt__(self, other: str) -> bool:
        return self.rank < Classification(other).rank

    def __le__(self, other: str) -> bool:
        return self.rank <= Classification(other).rank

    def __gt__(self, other: str) -> bool:
        return self.rank > Classification(other).rank

    def __ge__(self, other: str) -> bool:
        return self.rank >= Classification(other).rank

    __hash__ = StrEnum.__hash__


# SECTION: the one description of markings and principals. The Cedar schema (sovereign.policy.schema) and the
# engine's entities are generated from these models; nothing else describes them.

NATO = "NATO"  # in releasableTo: every member tenant


def _nation_or_nato(codes: list[str]) -> list[str]:
    for code in codes:
        if code != NATO and not is_nation_code(code):
            raise ValueError(f"{code!r} is neither an ISO 3166-1 alpha-3 nation code nor {NATO!r}")
    return sorted(set(codes))


def _nations(codes: list[str]) -> list[str]:
    for code in codes:
        if not is_nation_code(code):
            raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-3 nation code")
    return sorted(set(codes))


def _nation(code: str) -> str:
    if not is_nation_code(code):
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-3 nation code")
    return code


class ResourceMarkings(BaseModel):
    """The markings a model's or dataset's spec carries; its owner is the nation whose namespace holds it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    classification: Classification = Field(description="Classification level of the resource.")
    releasable_to: list[str] = Field(
        default_factory=list,
        alias="releasableTo",
        description=f"Nations the resource is releasable to besides its owner, or {NATO!r} for every member.",
    )
    compartments: list[str] = Field(
        default_factory=list, description="Compartments (e.g. ATOMAL) a user must all hold."
    )
    denied_nations: list[str] = Field(
        default_factory=list,
        alias="deniedNations",
        description="Nations the originator excludes, whatever else says (a forbid).",
    )

    _releasable = field_validator("releasable_to")(_nation_or_nato)
    _denied = field_validator("denied_nations")(_nations)
    _compartments = field_validator("compartments")(lambda v: sorted(set(v)))

    def owned_by(self, owner: str) -> Markings:
        return Markings(owner=owner, **self.model_dump(by_alias=True))


class Markings(ResourceMarkings):
    """The markings every model and dataset carries, with its owner: what the policy engine sees."""

    owner: str = Field(description="Owner (originator) nation, ISO 3166-1 alpha-3.")

    _owner = field_validator("owner")(_nation)

    def releasable_set(self, members: frozenset[str] | None = None) -> frozenset[str]:
        """Owner plus releasableTo; NATO stays the symbol NATO unless the member nations are given."""
        nations = {self.owner, *self.releasable_to}
        if NATO in nations and members is not None:
            nations = (nations - {NATO}) | set(members)
        return frozenset(nations) - set(self.denied_nations)


class Principal(BaseModel):
    """A user of a nation, as the policy sees it (from a validated token and its Tenant)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    sub: str = Field(description="Subject of the user's token, unique within its issuer.")
    nationality: str = Field(description="The user's nation, ISO 3166-1 alpha-3.")
    clearance: Classification = Field(description="Clearance, already capped by the Tenant's clearance.")
    compartments: list[str] = Field(default_factory=list, description="Compartments the user holds.")
    groups: list[str] = Field(default_factory=list, description="Groups of the user within its nation.")
    issuer_nation: str = Field(
        alias="issuerNation", description="Nation of the issuer that signed the token."
    )
    tenant_suspended: bool = Field(
        default=False,
        alias="tenantSuspended",
        description="Whether the issuing nation's Tenant is suspended.",
    )

    _nationality = field_validator("nationality", "issuer_nation")(_nation)
    _sets = field_validator("compartments", "groups")(lambda v: sorted(set(v)))


class ResourceKind(StrEnum):
    model = "Model"
    dataset = "Dataset"


class Resource(BaseModel):
    """A model or dataset with its markings, named `<nation>/<name>` (e.g. fra/analyst)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    kind: ResourceKind = Field(description="Model or Dataset.")
    name: str = Field(min_length=1, description="`<nation>/<name>`, e.g. fra/analyst.")
    markings: Markings = Field(description="The resource's markings.")


class AnswerMarking(BaseModel):
    """The marking of an answer built from several resources."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    classification: Classification = Field(description="Highest classification of the resources used.")
    releasable_to: list[str] = Field(
        alias="releasableTo", description="Intersection of the resources' releasability, owners included."
    )


class ExcludesRecipient(ValueError):
    """An answer whose marking would exclude the nation it is delivered to: it is never delivered."""


def releases_to(markings: Markings, nation: str) -> bool:
    """Whether the resource's own markings release it to `nation` (a member: NATO covers it)."""
    if nation in markings.denied_nations:
        return False
    return nation == markings.owner or nation in markings.releasable_to or NATO in markings.releasable_to


def answer_marking(
    markings: list[Markings],
    members: frozenset[str] | None = None,
    *,
    recipient: str | None = None,
    disclosed_by: frozenset[str] = frozenset(),
) -> AnswerMarking:
    """Highest classification; releasable to the nations every resource is releasable to.

    With `recipient` (the nation the answer is delivered to) the recipient rule holds: an answer is never
    marked so that it excludes its recipient. A resource whose markings do not release it to the recipient
    may be in the answer only when its owner disclosed it to that nation by the owner's own rule
    (`disclosed_by`: the owners whose rule did); the marking then adds the recipient to REL TO, since the
    owner released it there. A resource that excludes the recipient without such a disclosure, or that
    denies the recipient (`deniedNations`: no rule overrides it), raises ExcludesRecipient.
    """
    if not markings:
        raise ValueError("an answer's marking needs at least one resource")
    disclosed = False
    if recipient is not None:
        for m in markings:
            if releases_to(m, recipient):
                continue
            if m.owner in disclosed_by and recipient not in m.denied_nations:
                disclosed = True
                continue
            raise ExcludesRecipient(
                f"a resource of {m.owner} is not releasable to {recipient} and {m.owner} did not disclose it"
            )
    sets = [m.releasable_set() for m in markings]
    common = (
        frozenset.intersection(*(s for s in sets if NATO not in s))
        if any(NATO not in s for s in sets)
        else None
    )
    if common is None:  # every resource is releasable to NATO
        common = frozenset({NATO, *frozenset.intersection(*sets)})
    else:  # NATO-wide sets only narrow by their explicit denials
        for m, s in zip(markings, sets, strict=True):
            if NATO in s:
                common = common - set(m.denied_nations)
    if disclosed and recipient is not None:
        common = common | {recipient}
    return AnswerMarking(classification=max(m.classification for m in markings), releasable_to=sorted(common))
