"""Per-nation rate limits shared by every replica of the nation's gateway.

One named Ray actor per nation (`QuotaKeeper`, get-or-create by name, detached so it outlives any one
replica) holds two token buckets: requests per minute and tokens per minute, each refilled continuously
and holding at most one minute's worth. Replicas never keep limits of their own, so N replicas admit what
one would (no per-replica multiplication).

Overhead: a replica leases a small batch of request permits at once (one actor call per batch; a batch is
one permit unless the quota is large, so small quotas stay exact) and forgets unused permits after
LEASE_SECONDS. Tokens are charged after the answer with the model's real usage, sent with the next lease
(or at once when batches are single permits); a nation whose token bucket is empty gets 429 until it
refills.

A quota of 0 admits nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

import ray
from ray.exceptions import RayActorError

from ._errors import rate_limited, unavailable

logger = logging.getLogger("sovereign.gateway")

QUOTA_NAMESPACE = "sovereign-gateway"
LEASE_SECONDS = 1.0
MAX_LEASE = 64
PERMITS_PER_LEASE_DIVISOR = 1200  # a lease holds at most 1/1200 of a minute's requests (50 ms of them)


def quota_actor_name(nation: str) -> str:
    return f"{nation.lower()}-gateway-quota"


def lease_size(requests_per_minute: int) -> int:
    return max(1, min(MAX_LEASE, requests_per_minute // PERMITS_PER_LEASE_DIVISOR))


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
        self.level = min(self.capacity, self.level + (now - self.updated) * self.per_second)
        self.updated = now

    def wait_for(self, level: float) -> float:
        """Seconds until the bucket holds `level`."""
        if self.per_second <= 0:
            return 60.0
        return max(0.0, (level - self.level) / self.per_second)


class TenantQuota:
    """A nation's request and token buckets; pure (the clock is given), kept by the QuotaKeeper actor."""

    def __init__(self, requests_per_minute: int, tokens_per_minute: int, now: float) -> None:
        self.requests = _Bucket.per_minute(requests_per_minute, now)
        self.tokens = _Bucket.per_minute(tokens_per_minute, now)

    def resize(self, requests_per_minute: int, tokens_per_minute: int, now: float) -> None:
        self.requests.resize(requests_per_minute, now)
        self.tokens.resize(tokens_per_minute, now)

    def lease(self, want: int, tokens_used: int, now: float) -> tuple[int, float, str]:
        """(permits granted, seconds to wait when none, which quota refused: "requests" or "tokens")."""
        self.requests.refill(now)
        self.charge(tokens_used, now)
        if self.tokens.level <= 0:
            return 0, max(1.0, self.tokens.wait_for(1.0)), "tokens"
        granted = min(want, math.floor(self.requests.level))
        if granted < 1:
            return 0, max(1.0, self.requests.wait_for(1.0)), "requests"
        self.requests.level -= granted
        return granted, 0.0, ""

    def charge(self, tokens: int, now: float) -> None:
        """Tokens an answer used; the bucket may go below zero (the next requests wait for it)."""
        self.tokens.refill(now)
        self.tokens.level -= tokens


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class QuotaKeeper:
    """The one TenantQuota of a nation, shared by its gateway's replicas (a named actor)."""

    def __init__(self) -> None:
        self._quota: TenantQuota | None = None

    def configure(self, requests_per_minute: int, tokens_per_minute: int) -> None:
        if self._quota is None:
            self._quota = TenantQuota(requests_per_minute, tokens_per_minute, time.monotonic())
        else:
            self._quota.resize(requests_per_minute, tokens_per_minute, time.monotonic())

    def lease(self, want: int, tokens_used: int) -> tuple[int, float, str]:
        if self._quota is None:
            return 0, 1.0, "unconfigured"
        return self._quota.lease(want, tokens_used, time.monotonic())

    def charge(self, tokens: int) -> None:
        if self._quota is not None:
            self._quota.charge(tokens, time.monotonic())


class QuotaClient:
    """A replica's side of its nation's QuotaKeeper: leases permits, reports tokens used."""

    def __init__(self, nation: str) -> None:
        self.nation = nation
        self._actor: ray.actor.ActorHandle | None = None
        self._limits: tuple[int, int] | None = None
        self._batch = 1
        self._permits = 0
        self._lease_expires = 0.0
        self._pending_tokens = 0
        self._leasing = asyncio.Lock()

    def _connect(self) -> ray.actor.ActorHandle:
        self._actor = QuotaKeeper.options(
            name=quota_actor_name(self.nation),
            namespace=QUOTA_NAMESPACE,
            get_if_exists=True,
            lifetime="detached",
        ).remote()
        return self._actor

    async def configure(self, requests_per_minute: int, tokens_per_minute: int) -> None:
        self._limits = (requests_per_minute, tokens_per_minute)
        self._batch = lease_size(requests_per_minute)
        self._permits = 0
        actor = await asyncio.to_thread(self._connect)
        await actor.configure.remote(requests_per_minute, tokens_per_minute)

    def _take(self) -> bool:
        if self._permits > 0 and time.monotonic() < self._lease_expires:
            self._permits -= 1
            return True
        return False

    async def admit(self) -> None:
        """Take one request permit, or raise a 429 GatewayError (503 when the keeper cannot be reached).

        With batched leases, concurrent requests that find no permit wait for one lease instead of each
        leasing a batch (which would strand permits that then expire unused).
        """
        if self._take():
            return
        if self._batch == 1:
            return await self._admit_by_lease()
        async with self._leasing:
            if self._take():
                return
            await self._admit_by_lease()

    async def _admit_by_lease(self) -> None:
        tokens, self._pending_tokens = self._pending_tokens, 0
        granted, retry_after, refused = await self._lease(tokens)
        if refused == "unconfigured" and self._limits is not None:  # the keeper restarted empty
            await self.configure(*self._limits)
            granted, retry_after, refused = await self._lease(0)
        if granted < 1:
            if refused not in ("requests", "tokens"):
                raise unavailable("rate limiting is unavailable; try again later", code="quota_unavailable")
            raise rate_limited(retry_after, refused)
        self._permits = granted - 1
        self._lease_expires = time.monotonic() + LEASE_SECONDS

    async def _lease(self, tokens: int) -> tuple[int, float, str]:
        for attempt in range(2):
            actor = self._actor
            try:
                if actor is None:
                    raise RayActorError()
                return await actor.lease.remote(self._batch, tokens)
            except RayActorError:
                logger.warning("the quota keeper of %s is unreachable (attempt %d)", self.nation, attempt + 1)
                if self._limits is None:
                    break
                try:
                    await self.configure(*self._limits)
                except Exception:  # noqa: BLE001 — reported below as unavailable
                    logger.exception("the quota keeper of %s cannot be recreated", self.nation)
                    break
        raise unavailable("rate limiting is unavailable; try again later", code="quota_unavailable")

    def charge(self, tokens: int) -> None:
        """Tokens used by an answer: sent now when leases are single permits, else with the next lease."""
        if tokens <= 0:
            return
        if self._batch == 1 and self._actor is not None:
            self._actor.charge.remote(tokens)
        else:
            self._pending_tokens += tokens
