"""Rate limits a caller spends, shared by every replica of the gateway that serves it.

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

Where: one named Ray actor per gateway nation (`QuotaKeeper`, get-or-create by name, detached so it outlives
any one replica) keeps every bucket of the callers that gateway serves, so N replicas admit what one would.
Its memory is bounded: a user's buckets are forgotten once refilled to full (idle for up to a minute; a full
bucket is what a new user gets) and at most MAX_TRACKED_USERS users are kept (the least recently seen go
first). Nations and peers are bounded by the Tenants.

Overhead: one keeper call per admission and one per reservation, except when the caller's quotas are large:
a replica then leases a caller's requests a small batch at a time (a lease holds at most 1/1200 of the
smallest request quota the caller spends: one permit for any quota under 2,400 a minute, so small quotas stay
exact), and reserves a caller's tokens a pool at a time (`TokenPools`: at most 1/1200 of the smallest token
quota, used only when that is at least twice the request), refunds going back into the pool; unused permits
are forgotten and a pool's leftover goes back to the keeper after LEASE_SECONDS. A settlement is sent without
waiting for it.

A quota of 0 admits nothing. The keeper decides in `QuotaLedger`, pure (the clock is given), tested as data.

The keeper also remembers the ids (`jti`) of the peer gateways' federation assertions its nation's replicas
accepted (`first_use`, a `ReplayCache`), so an assertion is used once by the nation's gateway, not once per
replica: one more keeper call per federated request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import ray
from ray.exceptions import RayActorError

from sovereign.domain.nations import GATEWAY_ACTOR_NAMESPACE, quota_actor_name
from sovereign.identity.federation_assertions import AssertionRejected, ReplayCache
from sovereign.serving_contract import GatewayConfig
from sovereign.specs.tenant import Quotas

from ._errors import GatewayError, rate_limited, unauthenticated, unavailable

logger = logging.getLogger("sovereign.gateway")

QUOTA_NAMESPACE = GATEWAY_ACTOR_NAMESPACE
MAX_TRACKED_USERS = 50_000  # users whose buckets a keeper holds at once (the least recently seen go first)
EMPTY_WAIT = 60.0  # Retry-After of a bucket that never refills (a quota of 0) or that a request cannot fit
LEASE_SECONDS = 1.0  # requests leased to a replica and not used by then are forgotten
MAX_LEASE = 64
PERMITS_PER_LEASE_DIVISOR = 1200  # a lease holds at most 1/1200 of a minute's requests (50 ms of them)
MAX_HELD_LEASES = 10_000  # callers with leased requests a replica holds at once
TOKENS_PER_POOL_DIVISOR = 1200  # a token pool holds at most 1/1200 of a minute's tokens (50 ms of them)
UNLIMITED_POOL = 1_000_000  # the pool of a caller no token quota limits


def lease_size(requests_per_minute: int) -> int:
    return max(1, min(MAX_LEASE, requests_per_minute // PERMITS_PER_LEASE_DIVISOR))


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


# SECTION the keeper (one Ray actor per gateway nation) and a replica's client


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class QuotaKeeper:
    """The QuotaLedger of a gateway nation, shared by its gateway's replicas (a named actor)."""

    def __init__(self) -> None:
        self._ledger: QuotaLedger | None = None
        self._assertions = ReplayCache()

    def configure(self, table: QuotaTable) -> None:
        now = _now()
        if self._ledger is None:
            self._ledger = QuotaLedger(table, now)
        else:
            self._ledger.configure(table, now)

    def lease(self, nation: str, user: str, want: int) -> tuple[int, Refusal | None] | bool:
        """(requests granted, why none); False: not configured (restarted empty)."""
        if self._ledger is None:
            return False
        return self._ledger.lease(nation, user, want, _now())

    def reserve(self, nation: str, user: str, tokens: int) -> Refusal | None | bool:
        """None: reserved; a Refusal; False: not configured (restarted empty)."""
        if self._ledger is None:
            return False
        return self._ledger.reserve(nation, user, tokens, _now())

    def first_use(self, jti: str, expires_at: float) -> str:
        """ "first" once per assertion id; "replayed" after; "full" when too many live ones are remembered."""
        try:
            self._assertions.admit(jti, expires_at, time.time())  # an assertion's times are wall-clock
        except AssertionRejected as rejected:
            return "full" if rejected.reason_code == "replay-cache-full" else "replayed"
        return "first"

    def settle(self, nation: str, user: str, refund: int) -> None:
        if self._ledger is not None:
            self._ledger.settle(nation, user, refund, _now())


def _now() -> float:
    return time.monotonic()  # the keeper's clock, in the keeper's process


def refused(refusal: Refusal, gateway: str) -> GatewayError:
    """The 429 of a refusal: whose quota (the caller's own, their nation's, or this gateway's cap on their
    nation), never another nation's numbers."""
    whose = {
        Scope.USER: "your",
        Scope.NATION: "your nation's",
        Scope.PEER: f"{gateway}'s cap on your nation's",
    }[refusal.scope]
    return rate_limited(refusal.retry_after, whose, refusal.dimension.value, never=refusal.never)


@dataclass
class Reservation:
    """Tokens reserved for one request by its caller; settled once (the first settlement counts)."""

    nation: str
    user: str
    tokens: int
    settled: bool = False


class TokenPools:
    """Tokens a replica reserved ahead for its callers, so a request whose caller's token quotas are all large
    reserves locally instead of calling the keeper (as request permits are leased). Pure (the clock is given).

    A pool is what the keeper reserved for one caller: requests take from it, a settlement's refund goes back
    into it while it is live, and what is left when it expires (LEASE_SECONDS) goes back to the keeper. Never
    more than 1/TOKENS_PER_POOL_DIVISOR of the smallest token quota the caller spends is held ahead, so what
    other replicas and users see is off by at most that, for at most LEASE_SECONDS.
    """

    def __init__(self) -> None:
        self._pools: dict[tuple[str, str], tuple[int, float]] = {}  # caller → (tokens left, until)

    def take(self, key: tuple[str, str], tokens: int, now: float) -> bool:
        """Whether `tokens` came out of the caller's live pool."""
        left, until = self._pools.get(key, (0, 0.0))
        if now >= until or left < tokens:
            return False
        self._pools[key] = (left - tokens, until)
        return True

    def refund(self, key: tuple[str, str], tokens: int, now: float) -> bool:
        """Whether `tokens` (unused by a settled request) went back into the caller's live pool."""
        left, until = self._pools.get(key, (0, 0.0))
        if now >= until:
            return False
        self._pools[key] = (left + tokens, until)
        return True

    def replace(self, key: tuple[str, str], left: int, now: float) -> list[tuple[tuple[str, str], int]]:
        """A new pool of `left` tokens for the caller; returns the leftovers to give back to the keeper (the
        caller's previous pool, and every expired one, so a replica holds at most MAX_HELD_LEASES)."""
        returned = [(k, v[0]) for k, v in self._pools.items() if v[1] <= now and v[0] > 0]
        self._pools = {k: v for k, v in self._pools.items() if v[1] > now}
        previous = self._pools.pop(key, None)
        if previous is not None and previous[0] > 0:
            returned.append((key, previous[0]))
        while len(self._pools) >= MAX_HELD_LEASES:
            oldest = next(iter(self._pools))
            returned.append((oldest, self._pools.pop(oldest)[0]))
        self._pools[key] = (left, now + LEASE_SECONDS)
        return [(k, tokens) for k, tokens in returned if tokens > 0]


class QuotaClient:
    """A replica's side of its nation's QuotaKeeper."""

    def __init__(self, nation: str) -> None:
        self.nation = nation
        self._actor: ray.actor.ActorHandle | None = None
        self._table: QuotaTable | None = None
        self._permits: dict[tuple[str, str], tuple[int, float]] = {}  # caller → (requests leased, until)
        self._pools = TokenPools()

    def _connect(self) -> ray.actor.ActorHandle:
        self._actor = QuotaKeeper.options(
            name=quota_actor_name(self.nation),
            namespace=QUOTA_NAMESPACE,
            get_if_exists=True,
            lifetime="detached",
        ).remote()
        return self._actor

    async def configure(self, table: QuotaTable) -> None:
        self._table = table
        self._permits.clear()
        self._pools = TokenPools()  # what the old pools held refills in the keeper's buckets
        actor = await asyncio.to_thread(self._connect)
        await actor.configure.remote(table)

    def _lease_size(self, nation: str) -> int:
        """Requests leased at once for one of `nation`'s callers: one unless every request quota the caller
        spends is large, so small quotas stay exact."""
        table = self._table
        if table is None:
            return 1
        nation_rate, user_rate = table.nations.get(nation, (NOTHING, NOTHING))
        peer = table.peers.get(nation) if nation != table.gateway else None
        rates = [
            r.requests for r in (nation_rate, user_rate, peer) if r is not None and r.requests is not None
        ]
        return lease_size(min(rates, default=MAX_LEASE * PERMITS_PER_LEASE_DIVISOR))

    def _pool_size(self, nation: str) -> int:
        """Tokens reserved ahead for one of `nation`'s callers: 1/TOKENS_PER_POOL_DIVISOR of the smallest
        token quota the caller spends (0 without a table)."""
        table = self._table
        if table is None:
            return 0
        nation_rate, user_rate = table.nations.get(nation, (NOTHING, NOTHING))
        peer = table.peers.get(nation) if nation != table.gateway else None
        rates = [r.tokens for r in (nation_rate, user_rate, peer) if r is not None and r.tokens is not None]
        if not rates:
            return UNLIMITED_POOL
        return min(rates) // TOKENS_PER_POOL_DIVISOR

    async def admit(self, nation: str, user: str) -> None:
        """One request permit for the caller, or a 429 GatewayError (503 when the keeper is unreachable)."""
        key, now = (nation, user), time.monotonic()
        held = self._permits.pop(key, None)
        if held is not None and held[0] > 0 and now < held[1]:
            if held[0] > 1:
                self._permits[key] = (held[0] - 1, held[1])
            return
        outcome = await self._ask("lease", nation, user, self._lease_size(nation))
        granted, refusal = outcome if isinstance(outcome, tuple) else (0, outcome)
        self._raise_refused(refusal)
        if granted > 1:
            if len(self._permits) >= MAX_HELD_LEASES:  # bounded: the oldest leases go (their permits too)
                self._permits = {k: v for k, v in self._permits.items() if v[1] > now}
                while len(self._permits) >= MAX_HELD_LEASES:
                    del self._permits[next(iter(self._permits))]
            self._permits[key] = (granted - 1, now + LEASE_SECONDS)

    async def reserve(self, nation: str, user: str, tokens: int) -> Reservation:
        """`tokens` reserved for the caller, or a 429 GatewayError (503 when the keeper is unreachable).

        From the caller's pool when it holds them; else, when the caller's token quotas are large enough for a
        pool of at least twice the request, a new pool is reserved at the keeper (the request's tokens taken
        from it); else exactly `tokens`. A pool the keeper cannot give does not refuse the request: it is
        then reserved alone, and refused only if that does not fit.
        """
        key, now = (nation, user), time.monotonic()
        if self._pools.take(key, tokens, now):
            return Reservation(nation, user, tokens)
        size = self._pool_size(nation)
        if size >= 2 * tokens and await self._ask("reserve", nation, user, size) is None:
            for (pool_nation, pool_user), left in self._pools.replace(key, size - tokens, time.monotonic()):
                self._give_back(pool_nation, pool_user, left)
            return Reservation(nation, user, tokens)
        self._raise_refused(await self._ask("reserve", nation, user, tokens))
        return Reservation(nation, user, tokens)

    def _give_back(self, nation: str, user: str, tokens: int) -> None:
        if self._actor is not None and tokens:
            self._actor.settle.remote(nation, user, tokens)

    async def first_use(self, jti: str, expires_at: float) -> None:
        """A peer gateway's assertion `jti` used for the first time by any of this nation's replicas, or a
        401 GatewayError `replayed` (503 when the keeper is unreachable or remembers too many)."""
        outcome = await self._ask("first_use", jti, expires_at)
        if outcome == "replayed":
            raise unauthenticated("replayed", "invalid federation assertion: this assertion was already used")
        if outcome != "first":
            raise unavailable("too many federated calls at once; retry shortly", code="replay_cache_full")

    def settle(self, reservation: Reservation, used: int | None) -> None:
        """The request's real usage (None: unknown, so the reservation is paid); once, without waiting."""
        if reservation.settled:
            return
        reservation.settled = True
        if used is None or used == reservation.tokens:
            return
        refund, key = reservation.tokens - used, (reservation.nation, reservation.user)
        if refund > 0 and self._pools.refund(key, refund, time.monotonic()):
            return
        self._give_back(reservation.nation, reservation.user, refund)

    def _raise_refused(self, outcome: Refusal | None) -> None:
        if outcome is not None:
            raise refused(outcome, self.nation)

    async def _ask(self, method: str, *args: object) -> Any:
        for attempt in range(2):
            actor = self._actor
            try:
                if actor is None:
                    raise RayActorError()
                outcome = await getattr(actor, method).remote(*args)
                if outcome is False and self._table is not None:  # the keeper restarted empty
                    await actor.configure.remote(self._table)
                    outcome = await getattr(actor, method).remote(*args)
                if outcome is False:
                    break
                return outcome
            except RayActorError:
                logger.warning("the quota keeper of %s is unreachable (attempt %d)", self.nation, attempt + 1)
                if self._table is None:
                    break
                try:
                    await self.configure(self._table)
                except Exception:  # noqa: BLE001 — reported below as unavailable
                    logger.exception("the quota keeper of %s cannot be recreated", self.nation)
                    break
        raise unavailable("rate limiting is unavailable; try again later", code="quota_unavailable")
