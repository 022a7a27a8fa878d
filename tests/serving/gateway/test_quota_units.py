"""The gateway's quotas as data, without Ray: whose buckets a caller spends, reservations and their
settlement, forgetting idle users, the limits a config gives, the 429s, the reservation estimate and the
refusal record."""

from __future__ import annotations

from typing import Any

import pytest
from sovereign_serving.audit_writer import refusal_record
from sovereign_serving.gateway import _quota_ledger, _ratelimit
from sovereign_serving.gateway._admission import is_refusal
from sovereign_serving.gateway._openai import tokens_to_reserve
from sovereign_serving.gateway._quota_ledger import (
    Dimension,
    QuotaLedger,
    QuotaTable,
    Rate,
    Refusal,
    Scope,
    quota_table,
)
from sovereign_serving.gateway._ratelimit import (
    LEASE_SECONDS,
    RENEW_BEFORE,
    TOKENS_PER_POOL_DIVISOR,
    PermitLeases,
    TokenPools,
    refused,
)

from sovereign.audit import AuditRecord
from sovereign.serving_contract import GatewayConfig
from sovereign.specs.tenant import Quotas
from tests.serving.gateway.nations import gateway_config

# FRA's gateway: FRA 4 requests and 100 tokens a minute (a user 2 and 50), DEU 600/1000 (a user 600/1000),
# and FRA caps DEU's users together at 3 requests and 60 tokens a minute on its federation routes.
TABLE = QuotaTable(
    "FRA",
    {"FRA": (Rate(4, 100), Rate(2, 50)), "DEU": (Rate(600, 1000), Rate(600, 1000))},
    {"DEU": Rate(3, 60)},
)


def admitted(ledger: QuotaLedger, calls: list[tuple[str, str]], now: float = 0.0) -> list[Refusal | None]:
    return [ledger.admit(nation, user, now) for nation, user in calls]


def test_a_user_spends_their_own_bucket_and_their_nations() -> None:
    ledger = QuotaLedger(TABLE, 0.0)
    first = admitted(ledger, [("FRA", "ada"), ("FRA", "ada"), ("FRA", "ada")])
    assert first[:2] == [None, None]
    assert first[2] == Refusal(Scope.USER, Dimension.REQUESTS, pytest.approx(30.0))
    # Another user of the nation is still served, until the nation's 4 are spent.
    assert admitted(ledger, [("FRA", "bob"), ("FRA", "bob")]) == [None, None]
    refusal = ledger.admit("FRA", "eve", 0.0)
    assert refusal is not None and refusal.scope is Scope.NATION
    assert ledger.admit("FRA", "ada", 30.0) is None  # a user's request every 30 s (and the nation's 2)


def test_another_nations_callers_never_spend_the_gateway_nations_quota() -> None:
    ledger = QuotaLedger(TABLE, 0.0)
    deu = admitted(ledger, [("DEU", f"junk-{n}") for n in range(5)])
    assert deu[:3] == [None, None, None]
    assert all(r is not None and r.scope is Scope.PEER for r in deu[3:])  # FRA's cap on DEU
    assert admitted(ledger, [("FRA", "ada"), ("FRA", "ada"), ("FRA", "bob"), ("FRA", "bob")]) == [None] * 4


def test_a_tenant_not_in_the_table_is_admitted_nothing() -> None:
    refusal = QuotaLedger(TABLE, 0.0).admit("POL", "ada", 0.0)
    assert refusal is not None and refusal.retry_after == 60.0 and not refusal.never


def test_tokens_are_reserved_and_settled_with_the_real_usage() -> None:
    ledger = QuotaLedger(TABLE, 0.0)
    assert ledger.reserve("FRA", "ada", 40, 0.0) is None  # ada: 10 of 50 left
    refusal = ledger.reserve("FRA", "ada", 20, 0.0)
    assert refusal is not None and (refusal.scope, refusal.dimension) == (Scope.USER, Dimension.TOKENS)
    assert refusal.retry_after == pytest.approx(12.0)  # 10 more tokens at 50 a minute
    ledger.settle("FRA", "ada", 40 - 5, 0.0)  # the answer used 5: 35 back
    assert ledger.reserve("FRA", "ada", 45, 0.0) is None
    ledger.settle("FRA", "ada", 45 - 60, 0.0)  # it used 60: ada owes 15
    refusal = ledger.reserve("FRA", "ada", 1, 0.0)
    assert refusal is not None and refusal.retry_after == pytest.approx(19.2)


def test_an_unsettled_reservation_is_paid() -> None:
    ledger = QuotaLedger(TABLE, 0.0)
    assert ledger.reserve("FRA", "ada", 50, 0.0) is None  # a stream cut short: nothing comes back
    assert ledger.reserve("FRA", "ada", 1, 0.0) is not None


def test_a_reservation_beyond_the_quota_is_never_admitted() -> None:
    refusal = QuotaLedger(TABLE, 0.0).reserve("FRA", "ada", 51, 0.0)
    assert refusal == Refusal(Scope.USER, Dimension.TOKENS, 60.0, never=True)
    message = refused(refusal, "FRA").message
    assert message.startswith("this request needs more tokens than your tokens per minute quota holds")


def test_the_peer_cap_limits_tokens_too() -> None:
    ledger = QuotaLedger(TABLE, 0.0)
    assert ledger.reserve("DEU", "ada", 60, 0.0) is None
    refusal = ledger.reserve("DEU", "bob", 1, 0.0)
    assert refusal is not None and refusal.scope is Scope.PEER


def test_idle_users_are_forgotten_and_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = QuotaLedger(TABLE, 0.0)
    admitted(ledger, [("DEU", f"user-{n}") for n in range(3)])
    assert ledger.tracked_users == 3
    ledger.admit("DEU", "late", 1.0)  # the others' buckets (600 a minute) are full again after 0.1 s
    assert ledger.tracked_users == 1
    monkeypatch.setattr(_quota_ledger, "MAX_TRACKED_USERS", 2)
    admitted(ledger, [("FRA", f"user-{n}") for n in range(4)], now=1.0)
    assert ledger.tracked_users == 3  # at most MAX_TRACKED_USERS, and the one being admitted


def test_resize_keeps_the_level_and_zero_admits_nothing() -> None:
    ledger = QuotaLedger(TABLE, 0.0)
    assert admitted(ledger, [("FRA", "ada"), ("FRA", "ada")]) == [None, None]
    zero = QuotaTable("FRA", {"FRA": (Rate(0, 0), Rate(0, 0))})
    ledger.configure(zero, 1.0)
    refusal = ledger.admit("FRA", "bob", 100.0)
    assert refusal is not None and refusal.retry_after == 60.0
    ledger.configure(TABLE, 100.0)
    assert ledger.admit("FRA", "bob", 101.0) is not None  # resized from empty: refills from there
    assert ledger.admit("FRA", "bob", 130.0) is None


def test_a_config_gives_each_nation_its_quotas_and_user_defaults() -> None:
    config: dict[str, Any] = gateway_config(
        "FRA",
        requests_per_minute=8,
        tokens_per_minute=1001,
        quotas={"userRequestsPerMinute": 5, "peers": {"DEU": {"requestsPerMinute": 3}}},
    )
    table = quota_table(GatewayConfig.model_validate(config))
    assert table.nations["FRA"] == (Rate(8, 1001), Rate(5, 501))  # tokens: half, rounded up
    assert table.nations["DEU"] == (Rate(600, 100_000), Rate(300, 50_000))
    assert table.nations["EST"] == (Rate(600, 100_000), Rate(300, 50_000))
    assert table.peers == {"DEU": Rate(3, None)}


def test_peer_caps_name_nations() -> None:
    with pytest.raises(ValueError, match="ISO 3166-1"):
        Quotas.model_validate({"peers": {"XXX": {"requestsPerMinute": 1}}})


@pytest.mark.parametrize(
    ("scope", "dimension", "start"),
    [
        (Scope.USER, Dimension.REQUESTS, "your requests per minute quota is used up; retry in 3 s"),
        (Scope.NATION, Dimension.TOKENS, "your nation's tokens per minute quota is used up"),
        (Scope.PEER, Dimension.REQUESTS, "FRA's cap on your nation's requests per minute quota is used up"),
    ],
)
def test_a_429_says_whose_quota_without_numbers(scope: Scope, dimension: Dimension, start: str) -> None:
    error = refused(Refusal(scope, dimension, 2.5), "FRA")
    assert (error.status, error.code, error.type) == (429, "rate_limit_exceeded", "rate_limit_error")
    assert error.headers == {"Retry-After": "3"} and error.message.startswith(start)


@pytest.mark.parametrize(
    ("body", "kind", "reserved"),
    [
        ({"messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 16}, "chat", 10 + 16),
        ({"messages": [{"content": [{"type": "text", "text": "abcde"}]}], "max_tokens": 1}, "chat", 2 + 1),
        ({"messages": [{}], "max_tokens": 4, "max_completion_tokens": 8}, "chat", 1 + 8),
        ({"prompt": [1, 2, 3], "max_tokens": 2}, "completion", 3 + 2),
        ({"prompt": "abcdefgh", "max_tokens": 2}, "completion", 2 + 2),
        ({"input": ["abcd", "efgh", "i"]}, "embed", 3),
    ],
    ids=["chat-characters", "chat-parts", "chat-larger-limit", "token-ids", "prompt", "embed-inputs"],
)
def test_a_reservation_is_the_prompt_estimate_and_the_capped_max_tokens(
    body: dict[str, Any], kind: str, reserved: int
) -> None:
    assert tokens_to_reserve(body, kind) == reserved


@pytest.mark.parametrize(
    ("status", "recorded"),
    [(400, True), (401, False), (403, True), (413, True), (429, True), (502, False), (503, True)],
)
def test_which_refusals_are_audited(status: int, recorded: bool) -> None:
    assert is_refusal(status) is recorded


def test_a_refusal_record_holds_codes_only() -> None:
    record = refusal_record(
        "FRA",
        subject="ada",
        subject_nation="DEU",
        status=429,
        code="rate_limit_exceeded",
        param=None,
        route="/federation/v1/chat/completions",
        federated=True,
        trace_id="ab" * 16,
    )
    assert (record.kind, record.event, record.decision) == ("refusal", "request-refused", None)
    assert record.details == {
        "gateway": "FRA",
        "federated": True,
        "status": 429,
        "code": "rate_limit_exceeded",
        "route": "/federation/v1/chat/completions",
        "traceId": "ab" * 16,
    }
    with pytest.raises(ValueError, match="refusal record"):
        AuditRecord.model_validate({**record.model_dump(by_alias=True), "event": "policy-decision"})


def test_a_lease_takes_several_requests_only_as_many_as_every_bucket_holds() -> None:
    big = QuotaTable("FRA", {"FRA": (Rate(10, 100), Rate(6, 100))})
    ledger = QuotaLedger(big, 0.0)
    assert ledger.lease("FRA", "ada", 4, 0.0) == (4, None)
    assert ledger.lease("FRA", "ada", 4, 0.0) == (2, None)  # ada's 6
    granted, refusal = ledger.lease("FRA", "ada", 4, 0.0)
    assert granted == 0 and refusal is not None and refusal.scope is Scope.USER
    assert ledger.lease("FRA", "bob", 9, 0.0) == (4, None)  # the nation's 10


@pytest.mark.parametrize(("rpm", "batch"), [(0, 1), (4, 1), (2_399, 1), (12_000, 10), (10_000_000, 64)])
def test_lease_size_stays_exact_for_small_quotas(rpm: int, batch: int) -> None:
    assert _ratelimit.lease_size(rpm) == batch


# SECTION a replica's leased permits (large quotas: leased ahead, topped up before they run out)


def test_a_lease_is_topped_up_near_its_end_and_a_steady_caller_never_runs_dry() -> None:
    leases, caller, size = PermitLeases(), ("FRA", "alice"), 64
    assert not leases.take(caller, now=0.0)  # no lease yet: the request waits for the keeper
    leases.add(caller, size - 1, now=0.0)  # the first request's lease, one permit used by it
    assert leases.top_up(caller, size, now=0.1) == 0  # early and full: nothing asked ahead
    # A caller at 10 requests a second: the request that finds the lease in its last quarter asks, ahead, for
    # what it used, and the top-up extends it, so no request ever finds it gone.
    now, asked = 0.0, []
    for _ in range(30):
        now += 0.1
        assert leases.take(caller, now)
        if ahead := leases.top_up(caller, size, now):
            asked.append(ahead)
            leases.add(caller, ahead, now)  # the keeper's answer
    charged, used = size + sum(asked), 1 + 30
    assert charged <= used + size  # what was used plus one lease held, not a lease each second (3 s: 192)
    assert len(asked) == 3  # about once a lease's time, not per request


def test_a_drained_lease_is_topped_up_before_it_is_empty() -> None:
    leases, caller = PermitLeases(), ("FRA", "bob")
    leases.add(caller, 8, now=0.0)
    ahead = [leases.top_up(caller, 8, now=0.0) for _ in range(8) if leases.take(caller, now=0.0)]
    assert ahead == [0, 0, 0, 0, 0, 0, 7, 8]  # under a quarter left: asked for the rest
    assert not leases.take(caller, now=0.0)  # a top-up not yet answered: the next request asks itself


def test_a_lease_no_request_tops_up_ends_and_its_permits_are_not_carried() -> None:
    leases, caller = PermitLeases(), ("FRA", "carol")
    leases.add(caller, 10, now=0.0)
    assert leases.top_up(caller, 16, now=LEASE_SECONDS) == 0  # gone: a request asks the keeper itself
    assert not leases.take(caller, now=LEASE_SECONDS)
    leases.add(caller, 4, now=LEASE_SECONDS)  # a top-up answered late holds only what it brought
    assert [leases.take(caller, now=LEASE_SECONDS) for _ in range(5)] == [True] * 4 + [False]
    assert leases.top_up(caller, 1, now=LEASE_SECONDS - RENEW_BEFORE) == 0  # one permit a lease: exact


# SECTION a replica's token pools (large quotas: reserved ahead, refunds kept, leftovers given back)


def test_a_pool_is_topped_up_near_its_end_and_keeps_what_it_holds() -> None:
    pools, caller, start = TokenPools(), ("FRA", "alice"), 0.5
    assert pools.replace(caller, 90, now=start) == []
    pools.replace(("DEU", "bob"), 5, now=0.0)
    assert pools.take(caller, 10, now=start + 0.1) and pools.top_up(caller, 100, now=start + 0.1) == 0
    late = start + LEASE_SECONDS - RENEW_BEFORE
    assert pools.take(caller, 10, now=late) and pools.top_up(caller, 100, now=late) == 30  # 70 left
    # The top-up of 30 joins the 70 held, for LEASE_SECONDS more; bob's expired pool is given back.
    assert pools.extend(caller, 30, now=late + 0.05) == [(("DEU", "bob"), 5)]
    until = late + 0.05 + LEASE_SECONDS
    assert pools.take(caller, 100, now=until - 0.01) and not pools.take(caller, 1, now=until - 0.01)


def test_a_top_up_answered_after_its_pool_expired_gives_the_leftover_back() -> None:
    pools, caller = TokenPools(), ("FRA", "alice")
    pools.replace(caller, 40, now=0.0)
    assert pools.extend(caller, 60, now=LEASE_SECONDS) == [(caller, 40)]
    assert pools.take(caller, 60, now=LEASE_SECONDS) and not pools.take(caller, 1, now=LEASE_SECONDS)


def test_a_pool_serves_reservations_and_refunds_until_it_expires() -> None:
    pools, caller = TokenPools(), ("FRA", "alice")
    assert not pools.take(caller, 10, now=0.0)  # no pool yet: the keeper is asked
    assert pools.replace(caller, 90, now=0.0) == []  # a pool of 100 reserved, 10 taken by the request
    assert pools.take(caller, 60, now=0.5) and not pools.take(caller, 40, now=0.5)  # 30 left
    assert pools.refund(caller, 15, now=0.6) and pools.take(caller, 45, now=0.6)
    assert not pools.take(caller, 1, now=0.6)  # empty
    assert not pools.take(("FRA", "bob"), 1, now=0.6)  # one caller's pool is nobody else's
    assert not pools.refund(caller, 5, now=LEASE_SECONDS)  # expired: the refund goes to the keeper


def test_a_new_pool_gives_back_the_old_and_every_expired_one() -> None:
    pools = TokenPools()
    pools.replace(("FRA", "alice"), 30, now=0.0)
    pools.replace(("DEU", "bob"), 20, now=0.5)
    # alice's pool expired (its leftover is given back with her new one); bob's is still live, and stays.
    assert pools.replace(("FRA", "alice"), 50, now=LEASE_SECONDS + 0.1) == [(("FRA", "alice"), 30)]
    assert pools.take(("DEU", "bob"), 20, now=LEASE_SECONDS + 0.1)
    assert pools.replace(("FRA", "carol"), 5, now=2.2 * LEASE_SECONDS) == [(("FRA", "alice"), 50)]


def test_a_pool_only_for_callers_whose_token_quotas_are_large() -> None:
    config: dict[str, Any] = gateway_config(
        "FRA", tokens_per_minute=12_000_000, quotas={"userTokensPerMinute": 60}
    )
    client = _ratelimit.QuotaClient("FRA")
    client._table = quota_table(GatewayConfig.model_validate(config))
    assert client._pool_size("FRA") == 0  # 60 a minute: exact, never reserved ahead
    assert client._pool_size("DEU") == 50_000 // TOKENS_PER_POOL_DIVISOR  # DEU's user default: half of 100k
