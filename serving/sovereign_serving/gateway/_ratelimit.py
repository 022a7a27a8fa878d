"""Rate limits shared by every replica of a nation's gateway: the keeper holding them, a replica's client.

What is counted and who pays: `_quota_ledger.py`.

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

Renewed ahead: a request that finds its caller's lease or pool near its end (RENEW_BEFORE of its time left,
or a quarter of it) tops it up at the keeper in the background, back to one lease or pool, and that top-up
extends its time; so a caller who keeps calling waits for the keeper only on their first request, and is
charged what they use plus at most one lease held. The request itself is served from what is held and never
waits for the top-up; a top-up the keeper refuses leaves the lease to run out, and the next request then asks
the keeper itself (and gets the 429).

The keeper also remembers the ids (`jti`) of the peer gateways' federation assertions its nation's replicas
accepted (`first_use`, a `ReplayCache`), so an assertion is used once by the nation's gateway, not once per
replica: one more keeper call per federated request.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayActorError

from sovereign.domain.nations import GATEWAY_ACTOR_NAMESPACE, quota_actor_name
from sovereign.identity.federation_assertions import AssertionRejected, ReplayCache

from . import _telemetry as telemetry
from ._errors import GatewayError, rate_limited, unauthenticated, unavailable
from ._quota_ledger import NOTHING, QuotaLedger, QuotaTable, Refusal, Scope

logger = logging.getLogger("sovereign.gateway")

QUOTA_NAMESPACE = GATEWAY_ACTOR_NAMESPACE

LEASE_SECONDS = 1.0  # requests leased to a replica and not used by then are forgotten
RENEW_BEFORE = LEASE_SECONDS / 4  # a lease or pool this close to its end is topped up in the background
RENEW_BELOW = 4  # ... or one with under 1/RENEW_BELOW of a lease or pool left
MAX_LEASE = 64
PERMITS_PER_LEASE_DIVISOR = 1200  # a lease holds at most 1/1200 of a minute's requests (50 ms of them)
MAX_HELD_LEASES = 10_000  # callers with leased requests a replica holds at once
TOKENS_PER_POOL_DIVISOR = 1200  # a token pool holds at most 1/1200 of a minute's tokens (50 ms of them)
UNLIMITED_POOL = 1_000_000  # the pool of a caller no token quota limits


def lease_size(requests_per_minute: int) -> int:
    return max(1, min(MAX_LEASE, requests_per_minute // PERMITS_PER_LEASE_DIVISOR))


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


Keeper = ray.actor.ActorHandle[QuotaKeeper]


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


def _top_up(left: int, until: float, size: int, now: float) -> int:
    """How much to ask the keeper for ahead so a live lease or pool of `size` is full again (0: not yet)."""
    if now >= until or size < 2:
        return 0
    if until - now > RENEW_BEFORE and left * RENEW_BELOW >= size:
        return 0
    return max(0, size - left)


class PermitLeases:
    """Request permits a replica leased ahead for its callers (large request quotas only). Pure (the clock is
    given). At most MAX_HELD_LEASES callers are held; a caller holds at most one lease's permits (two for a
    moment when a request emptied the lease while its top-up was on its way)."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], tuple[int, float]] = {}  # caller → (requests left, until)

    def take(self, key: tuple[str, str], now: float) -> bool:
        """Whether one permit came out of the caller's live lease."""
        left, until = self._held.get(key, (0, 0.0))
        if now >= until or left < 1:
            return False
        self._held[key] = (left - 1, until)
        return True

    def top_up(self, key: tuple[str, str], size: int, now: float) -> int:
        """Permits to lease ahead for the caller now (0: their lease is not near its end, or is gone)."""
        return _top_up(*self._held.get(key, (0, 0.0)), size, now)

    def add(self, key: tuple[str, str], granted: int, now: float) -> None:
        """`granted` permits leased for the caller: with what their live lease still holds, until
        LEASE_SECONDS from now."""
        left, until = self._held.pop(key, (0, 0.0))
        held = granted + (left if now < until else 0)
        if held < 1:
            return
        if len(self._held) >= MAX_HELD_LEASES:  # bounded: the expired go, then the oldest (their permits too)
            self._held = {k: v for k, v in self._held.items() if v[1] > now}
            while len(self._held) >= MAX_HELD_LEASES:
                del self._held[next(iter(self._held))]
        self._held[key] = (held, now + LEASE_SECONDS)


class TokenPools:
    """Tokens a replica reserved ahead for its callers, so a request whose caller's token quotas are all large
    reserves locally instead of calling the keeper (as request permits are leased). Pure (the clock is given).

    A pool is what the keeper reserved for one caller: requests take from it, a settlement's refund goes back
    into it while it is live, and what is left when it expires (LEASE_SECONDS) goes back to the keeper. Never
    more than 1/TOKENS_PER_POOL_DIVISOR of the smallest token quota the caller spends is held ahead, so what
    other replicas and users see is off by at most that; a pool no request tops up ends after LEASE_SECONDS.
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

    def top_up(self, key: tuple[str, str], size: int, now: float) -> int:
        """Tokens to reserve ahead for the caller now (0: their pool is not near its end, or is gone)."""
        return _top_up(*self._pools.get(key, (0, 0.0)), size, now)

    def extend(self, key: tuple[str, str], added: int, now: float) -> list[tuple[tuple[str, str], int]]:
        """`added` tokens reserved ahead for the caller: with what their live pool still holds, until
        LEASE_SECONDS from now. Returns the leftovers to give back to the keeper (their pool's, had it expired
        meanwhile, and every expired one)."""
        left, until = self._pools.pop(key, (0, 0.0))
        returned = []
        if now >= until:
            returned, left = [(key, left)] if left > 0 else [], 0
        return returned + self.replace(key, left + added, now)

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
        self._actor: Keeper | None = None
        self._table: QuotaTable | None = None
        self._permits = PermitLeases()
        self._pools = TokenPools()
        self._generation = 0  # a top-up answered after a new table is dropped (its pool's tokens given back)
        self._topping_up: dict[tuple[str, str, str], asyncio.Task[None]] = {}  # (kind, nation, user) → task

    def _connect(self) -> Keeper:
        actor_class: Any = QuotaKeeper  # Ray's ActorClass: mypy does not apply class decorators
        actor: Keeper = actor_class.options(
            name=quota_actor_name(self.nation),
            namespace=QUOTA_NAMESPACE,
            get_if_exists=True,
            lifetime="detached",
            # No task events: every request calls the keeper, and Ray's GCS would keep each call's events (up
            # to 100,000 tasks), its memory growing with the traffic (`make soak`); Ray Serve leaves them off
            # for its own actors too.
            enable_task_events=False,
        ).remote()
        self._actor = actor
        return actor

    async def configure(self, table: QuotaTable) -> None:
        self._table = table
        self._generation += 1
        self._permits = PermitLeases()
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
        want = self._lease_size(nation)
        if self._permits.take(key, now):
            if ahead := self._permits.top_up(key, want, now):
                self._in_background(("lease", nation, user), self._lease_ahead(nation, user, ahead))
            return
        with telemetry.quota_admit(self.nation, nation, want):
            outcome = await self._ask(lambda keeper: keeper.lease.remote(nation, user, want))
        granted, refusal = outcome if isinstance(outcome, tuple) else (0, outcome)
        self._raise_refused(refusal)
        if granted > 1:
            self._permits.add(key, granted - 1, now)

    async def _lease_ahead(self, nation: str, user: str, want: int) -> None:
        generation = self._generation
        outcome = await self._ask(lambda keeper: keeper.lease.remote(nation, user, want))
        granted = outcome[0] if isinstance(outcome, tuple) else 0
        if granted and generation == self._generation:  # a refusal: the lease runs out, the next request asks
            self._permits.add((nation, user), granted, time.monotonic())

    async def _pool_ahead(self, nation: str, user: str, tokens: int) -> None:
        generation = self._generation
        if await self._ask(lambda keeper: keeper.reserve.remote(nation, user, tokens)) is not None:
            return  # refused: the pool runs out, and the next request reserves at the keeper itself
        if generation != self._generation:
            self._give_back(nation, user, tokens)
            return
        for (pool_nation, pool_user), left in self._pools.extend((nation, user), tokens, time.monotonic()):
            self._give_back(pool_nation, pool_user, left)

    def _in_background(self, key: tuple[str, str, str], top_up: Coroutine[Any, Any, None]) -> None:
        """Run a top-up without the request waiting for it; one at a time per caller and kind."""
        if key in self._topping_up:
            top_up.close()
            return

        async def run() -> None:
            try:
                await top_up
            except Exception as failed:  # noqa: BLE001 — the request was served; the next one asks itself
                logger.warning("a quota top-up of %s failed: %s", self.nation, type(failed).__name__)
            finally:
                self._topping_up.pop(key, None)

        # A task of its own context: its keeper call is not a step of the request that started it.
        self._topping_up[key] = asyncio.get_running_loop().create_task(run(), context=contextvars.Context())

    async def reserve(self, nation: str, user: str, tokens: int) -> Reservation:
        """`tokens` reserved for the caller, or a 429 GatewayError (503 when the keeper is unreachable).

        From the caller's pool when it holds them; else, when the caller's token quotas are large enough for a
        pool of at least twice the request, a new pool is reserved at the keeper (the request's tokens taken
        from it); else exactly `tokens`. A pool the keeper cannot give does not refuse the request: it is
        then reserved alone, and refused only if that does not fit.
        """
        key, now = (nation, user), time.monotonic()
        size = self._pool_size(nation)
        if self._pools.take(key, tokens, now):
            if size >= 2 * tokens and (ahead := self._pools.top_up(key, size, now)):
                self._in_background(("pool", nation, user), self._pool_ahead(nation, user, ahead))
            return Reservation(nation, user, tokens)
        if size >= 2 * tokens:
            with telemetry.quota_reserve(self.nation, nation, size):
                pooled = await self._ask(lambda keeper: keeper.reserve.remote(nation, user, size)) is None
            if pooled:
                returned = self._pools.replace(key, size - tokens, time.monotonic())
                for (pool_nation, pool_user), left in returned:
                    self._give_back(pool_nation, pool_user, left)
                return Reservation(nation, user, tokens)
        with telemetry.quota_reserve(self.nation, nation, tokens):
            outcome = await self._ask(lambda keeper: keeper.reserve.remote(nation, user, tokens))
        self._raise_refused(outcome)
        return Reservation(nation, user, tokens)

    def _give_back(self, nation: str, user: str, tokens: int) -> None:
        if self._actor is not None and tokens:
            self._actor.settle.remote(nation, user, tokens)

    async def first_use(self, jti: str, expires_at: float) -> None:
        """A peer gateway's assertion `jti` used for the first time by any of this nation's replicas, or a
        401 GatewayError `replayed` (503 when the keeper is unreachable or remembers too many)."""
        outcome = await self._ask(lambda keeper: keeper.first_use.remote(jti, expires_at))
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

    async def _ask(self, ask: Callable[[Keeper], Awaitable[Any]]) -> Any:
        """What the keeper answers `ask`; once more after configuring it when it restarted empty (it answers
        False) or after connecting again when it is unreachable (503 when neither helps)."""
        for attempt in range(2):
            actor = self._actor
            try:
                if actor is None:
                    raise RayActorError()
                outcome = await ask(actor)
                if outcome is False and self._table is not None:  # the keeper restarted empty
                    await actor.configure.remote(self._table)
                    outcome = await ask(actor)
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
