"""The limits a caller spends and the buckets that count them: pure (the clock is given), tested as data.

Who pays: the authenticated caller, never the gateway's nation as such. A request is charged to three kinds
of buckets, each a requests-per-minute and a tokens-per-minute token bucket (refilled continuously, holding
at most one minute's worth): the caller's nation (its Tenant's `quotas.requestsPerMinute`/`tokensPerMinute`),
the caller (`(nation, user)`: its nation's `userRequestsPerMinute`/`userTokensPerMinute`, by default
half the nation's) and, when the caller is another nation's user on this gateway's federation routes,
this nation's cap on that peer (its own Tenant's `quotas.peers`). So junk from another nation's users spends
their own quotas (and the cap their peer gets here), never this nation's, and one user cannot use up what
their colleagues share.

When: a request permit right after authentication (before the body is read, so refusals cost the caller
too); tokens at admission of a model call, reserved before the model runs: the prompt's estimate
(`_openai.tokens_to_reserve`: characters / 4, token ids one each) plus `max_tokens` as the gateway caps
it, or the inputs' estimate for embeddings. A reservation that does not fit is refused (429). After the
answer it is settled with the model server's real usage (the difference refunded, or charged when it used
more); a request that ends without the model's usage (a cancelled or broken stream, a failed call) pays what
it reserved: reserving takes the tokens, and only a settlement gives any back.

A quota of 0 admits nothing. One `QuotaLedger` per gateway nation, kept by its `QuotaKeeper`
(`_ratelimit.py`).
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from sovereign.serving_contract import GatewayConfig
from sovereign.specs.tenant import Quotas

logger = logging.getLogger("sovereign.gateway")

MAX_TRACKED_USERS = 50_000  # users whose buckets a keeper holds at once (the least recently seen go first)
EMPTY_WAIT = 60.0  # Retry-After of a bucket that never refills (a quota of 0) or that a request cannot fit


# SECTION limits, from the config


@dataclass(frozen=True)
class Rate:
    """Per-minute limits of one bucket pair; None: not limited in that dimension."""

    requests: int | None
    tokens: int | None


NOTHING = Rate(0, 0)


@dataclass(frozen=True)
class QuotaTable:
    """Every limit a gateway enforces: per nation, the nation's and one user's; the gateway nation's caps on
    other nations' users."""

    gateway: str
    nations: dict[str, tuple[Rate, Rate]]  # nation → (the nation's, one user's)
    peers: dict[str, Rate] = field(default_factory=dict)


def quota_table(config: GatewayConfig) -> QuotaTable:
    """The limits of every Tenant in the config. A Tenant whose quotas do not validate gets nothing (fail
    closed for that nation); the gateway's own must validate (else the config is refused: ValueError)."""
    nations: dict[str, tuple[Rate, Rate]] = {}
    own: Quotas | None = None
    for tenant in config.tenants:
        spec = tenant.get("spec") or {}
        nation = spec.get("nation")
        if not isinstance(nation, str):
            continue
        try:
            quotas = Quotas.model_validate(spec.get("quotas") or {})
        except ValueError:
            if nation == config.nation:
                raise
            logger.warning("the quotas of %s do not validate: its users are admitted nothing", nation)
            nations[nation] = (NOTHING, NOTHING)
            continue
        user_requests, user_tokens = quotas.per_user
        nations[nation] = (
            Rate(quotas.requests_per_minute, quotas.tokens_per_minute),
            Rate(user_requests, user_tokens),
        )
        own = quotas if nation == config.nation else own
    if own is None:
        raise ValueError(f"the config has no Tenant of {config.nation}, the gateway's own nation")
    peers = {
        peer: Rate(cap.requests_per_minute, cap.tokens_per_minute)
        for peer, cap in own.peers.items()
        if peer != config.nation
    }
    return QuotaTable(config.nation, nations, peers)


# SECTION buckets and the ledger (pure)


class Scope(Enum):
    """Whose quota a bucket is, as a refusal names it."""

    USER = "user"
    NATION = "nation"
    PEER = "peer"


class Dimension(Enum):
    REQUESTS = "requests"
    TOKENS = "tokens"


@dataclass
class _Bucket:
    capacity: float
    level: float
    per_second: float
    updated: float

    @classmethod
    def per_minute(cls, amount: int, now: float) -> _Bucket:
        return cls(float(amount), float(amount), amount / 60.0, now)

    def resize(self, amount: int, now: float) -> None:
        self.refill(now)
        self.capacity, self.per_second = float(amount), amount / 60.0
        self.level = min(self.level, self.capacity)

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + max(0.0, now - self.updated) * self.per_second)
        self.updated = now

    def full_at(self, now: float) -> bool:
        return self.level + max(0.0, now - self.updated) * self.per_second >= self.capacity

    def wait_for(self, level: float) -> float:
        """Seconds until the bucket holds `level` (EMPTY_WAIT when it never will)."""
        if self.per_second <= 0 or level > self.capacity:
            return EMPTY_WAIT
        return max(0.0, (level - self.level) / self.per_second)


class _Pair:
    """The requests and tokens buckets of one scope (None where the rate does not limit)."""

    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self.requests = None if rate.requests is None else _Bucket.per_minute(rate.requests, now)
        self.tokens = None if rate.tokens is None else _Bucket.per_minute(rate.tokens, now)

    def bucket(self, dimension: Dimension) -> _Bucket | None:
        return self.requests if dimension is Dimension.REQUESTS else self.tokens

    def resize(self, rate: Rate, now: float) -> None:
        if rate == self.rate:
            return
        for dimension, amount in ((Dimension.REQUESTS, rate.requests), (Dimension.TOKENS, rate.tokens)):
            bucket = self.bucket(dimension)
            if amount is None:
                bucket = None
            elif bucket is None:
                bucket = _Bucket.per_minute(amount, now)
            else:
                bucket.resize(amount, now)
            if dimension is Dimension.REQUESTS:
                self.requests = bucket
            else:
                self.tokens = bucket
        self.rate = rate

    def full_at(self, now: float) -> bool:
        return all(b.full_at(now) for b in (self.requests, self.tokens) if b is not None)


@dataclass(frozen=True)
class Refusal:
    """Why a request was not admitted: whose quota, in which dimension, and when to retry. `never`: the
    request alone needs more than the quota holds (it can only be admitted smaller)."""

    scope: Scope
    dimension: Dimension
    retry_after: float
    never: bool = False


class QuotaLedger:
    """Every bucket a gateway keeps, by caller; pure (the clock is given), kept by the QuotaKeeper actor."""

    def __init__(self, table: QuotaTable, now: float) -> None:
        self.table = table
        self._nations: dict[str, _Pair] = {}
        self._peers: dict[str, _Pair] = {}
        self._users: OrderedDict[tuple[str, str], _Pair] = OrderedDict()

    def configure(self, table: QuotaTable, now: float) -> None:
        """New limits: buckets resized (their level kept, capped), those of removed nations forgotten."""
        self.table = table
        for nation, pair in list(self._nations.items()):
            if nation in table.nations:
                pair.resize(table.nations[nation][0], now)
            else:
                del self._nations[nation]
        for peer, pair in list(self._peers.items()):
            if peer in table.peers:
                pair.resize(table.peers[peer], now)
            else:
                del self._peers[peer]
        for key, pair in list(self._users.items()):
            if key[0] in table.nations:
                pair.resize(table.nations[key[0]][1], now)
            else:
                del self._users[key]

    @property
    def tracked_users(self) -> int:
        return len(self._users)

    def _limits(self, nation: str) -> tuple[Rate, Rate]:
        return self.table.nations.get(nation, (NOTHING, NOTHING))  # not a Tenant here: nothing

    def _scopes(self, nation: str, user: str, now: float) -> Iterator[tuple[Scope, _Pair]]:
        """The caller's buckets, made when first needed: the user's, the nation's, the peer cap's."""
        nation_rate, user_rate = self._limits(nation)
        key = (nation, user)
        pair = self._users.get(key)
        if pair is None:
            pair = self._users[key] = _Pair(user_rate, now)
        self._users.move_to_end(key)
        yield Scope.USER, pair
        if nation not in self._nations:
            self._nations[nation] = _Pair(nation_rate, now)
        yield Scope.NATION, self._nations[nation]
        cap = self.table.peers.get(nation) if nation != self.table.gateway else None
        if cap is not None:
            if nation not in self._peers:
                self._peers[nation] = _Pair(cap, now)
            yield Scope.PEER, self._peers[nation]

    def _take(self, nation: str, user: str, dimension: Dimension, amount: int, now: float) -> Refusal | None:
        self._forget_idle_users(now)
        buckets = [
            (scope, bucket)
            for scope, pair in self._scopes(nation, user, now)
            if (bucket := pair.bucket(dimension)) is not None
        ]
        refusals = []
        for scope, bucket in buckets:
            bucket.refill(now)
            if amount > bucket.capacity:
                refusals.append(Refusal(scope, dimension, EMPTY_WAIT, never=bucket.capacity > 0))
            elif bucket.level < amount:
                refusals.append(Refusal(scope, dimension, bucket.wait_for(amount)))
        if refusals:  # the binding one: never admitted first, then the longest wait
            return max(refusals, key=lambda refusal: (refusal.never, refusal.retry_after))
        for _, bucket in buckets:
            bucket.level -= amount
        return None

    def admit(self, nation: str, user: str, now: float) -> Refusal | None:
        """Take one request from each of the caller's buckets, or none and say why."""
        return self._take(nation, user, Dimension.REQUESTS, 1, now)

    def lease(self, nation: str, user: str, want: int, now: float) -> tuple[int, Refusal | None]:
        """Up to `want` requests at once from each of the caller's buckets (at least one, or none and why)."""
        refusal = self.admit(nation, user, now)
        if refusal is not None:
            return 0, refusal
        buckets = [b for _, pair in self._scopes(nation, user, now) if (b := pair.requests) is not None]
        extra = min([want - 1, *(math.floor(bucket.level) for bucket in buckets)])
        for bucket in buckets:
            bucket.level -= max(0, extra)
        return 1 + max(0, extra), None

    def reserve(self, nation: str, user: str, tokens: int, now: float) -> Refusal | None:
        """Reserve `tokens` in each of the caller's buckets, or none and say why."""
        return self._take(nation, user, Dimension.TOKENS, max(0, tokens), now)

    def settle(self, nation: str, user: str, refund: int, now: float) -> None:
        """Give back what a reservation did not use (`refund` < 0: it used more, and owes it)."""
        for _, pair in self._scopes(nation, user, now):
            bucket = pair.tokens
            if bucket is not None:
                bucket.refill(now)
                bucket.level = min(bucket.capacity, bucket.level + refund)

    def _forget_idle_users(self, now: float) -> None:
        """Users whose buckets are full again are forgotten (a full bucket is what a new user gets); beyond
        MAX_TRACKED_USERS, the least recently seen go too."""
        while self._users:
            key, pair = next(iter(self._users.items()))
            if not (pair.full_at(now) or len(self._users) > MAX_TRACKED_USERS):
                return
            del self._users[key]
