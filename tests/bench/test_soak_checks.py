"""The soak's checks (bench/soak_checks.py) on data: what passes, what fails and what the report says."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from bench.soak_checks import (
    OVERALL,
    Outcome,
    audit_check,
    audit_one_to_one,
    drift_check,
    errors_check,
    expected_records,
    latency_drift,
    memory_check,
    memory_growth,
    percentile,
    timeline,
    windows,
)

RECORDS = {"chat": {"FRA": 1}, "grounded": {"FRA": 2}, "denied": {"FRA": 1}, "cross": {"DEU": 1, "FRA": 1}}


def ok(kind: str, started: float, seconds: float, trace: str | None = None, status: int = 200) -> Outcome:
    return Outcome(kind, started, seconds, status, True, trace)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 99, math.nan),
        ([3.0], 99, 3.0),
        ([float(n) for n in range(1, 101)], 99, 99.0),
        ([float(n) for n in range(1, 101)], 50, 50.0),
        ([5.0, 1.0, 4.0, 2.0, 3.0], 99, 5.0),
        ([5.0, 1.0, 4.0, 2.0, 3.0], 50, 3.0),
    ],
    ids=["none", "one", "p99-of-100", "p50-of-100", "p99-unsorted", "p50-unsorted"],
)
def test_percentile_is_the_nearest_rank(values: list[float], q: float, expected: float) -> None:
    found = percentile(values, q)
    assert (math.isnan(found) and math.isnan(expected)) or found == expected


@pytest.mark.parametrize(
    ("outcomes", "passed", "said"),
    [
        ([ok("chat", 0, 0.1), ok("denied", 0, 0.1, status=403)], True, "0 unexpected errors"),
        ([Outcome("chat", 0, 0.1, 429, False)], False, "1 unexpected: chat 429 ×1"),
        (
            [Outcome("chat", 0, 0.1, 503, False), Outcome("chat", 1, 0.1, 503, False)],
            False,
            "2 unexpected: chat 503 ×2",
        ),
        ([Outcome("stream", 0, 60, 0, False, None, "ReadTimeout")], False, "stream ReadTimeout ×1"),
    ],
    ids=["denials-are-expected", "a-429", "two-503", "a-timeout"],
)
def test_unexpected_errors(outcomes: list[Outcome], passed: bool, said: str) -> None:
    check = errors_check(outcomes)
    assert check.passed is passed
    assert said in check.detail


def test_memory_growth_is_end_over_first_minute_for_processes_present_at_both() -> None:
    assert memory_growth({"a [1]": 100, "b [2]": 200, "c [3]": 50}, {"a [1]": 104, "b [2]": 100}) == {
        "a [1]": 1.04,
        "b [2]": 0.5,
    }


@pytest.mark.parametrize(
    ("first", "last", "passed", "said"),
    [
        (
            {"raylet [1]": 1000, "operator [2]": 2000},
            {"raylet [1]": 1049, "operator [2]": 1900},
            True,
            "1.049×",
        ),
        ({"raylet [1]": 1000}, {"raylet [1]": 1050}, False, "grew ≥ 1.05×: raylet [1] 1.050×"),
        ({"raylet [1]": 1000, "replica [3]": 500}, {"raylet [1]": 1000}, False, "gone: replica [3]"),
        ({"raylet [1]": 1000}, {"raylet [1]": 1000, "replica [4]": 500}, True, "new: replica [4]"),
        ({}, {}, False, "0 processes"),
    ],
    ids=["under-5-percent", "at-5-percent", "a-process-died", "a-process-came", "nothing-measured"],
)
def test_memory_check(first: dict[str, int], last: dict[str, int], passed: bool, said: str) -> None:
    check = memory_check(first, last)
    assert check.passed is passed
    assert said in check.detail


def test_windows_are_the_first_and_last_minute_by_start_time() -> None:
    outcomes = [ok("chat", t, 0.1) for t in (0, 30, 59.9, 60, 100, 119.9, 120, 150, 179.9)]
    first, last = windows(outcomes, duration=180, window=60)
    assert [o.started for o in first] == [0, 30, 59.9]
    assert [o.started for o in last] == [120, 150, 179.9]


def test_drift_per_kind_and_overall_leaves_out_unexpected_outcomes() -> None:
    first = [ok("chat", 0, 0.10), ok("chat", 1, 0.20), ok("embed", 2, 0.05)]
    last = [ok("chat", 120, 0.10), ok("chat", 121, 0.22), ok("embed", 122, 0.05)]
    last.append(Outcome("chat", 123, 9.0, 503, False))  # an error's latency is no answer's latency
    drifts = latency_drift(first, last)
    assert set(drifts) == {"chat", "embed", OVERALL}
    assert drifts["chat"].p99_ratio == pytest.approx(1.1)
    assert drifts["embed"].p99_ratio == pytest.approx(1.0)
    assert drifts[OVERALL].first_count == drifts[OVERALL].last_count == 3
    assert drift_check(drifts).passed


@pytest.mark.parametrize(
    ("first_p99", "last_p99", "passed"),
    [(0.10, 0.12, True), (0.10, 0.1201, False), (0.10, 0.05, True)],
    ids=["at-20-percent", "above-20-percent", "faster"],
)
def test_drift_check_allows_20_percent(first_p99: float, last_p99: float, passed: bool) -> None:
    drifts = latency_drift([ok("chat", 0, first_p99)], [ok("chat", 120, last_p99)])
    check = drift_check(drifts)
    assert check.passed is passed
    assert ("above 1.20×: chat, overall" in check.detail) is not passed


def test_drift_of_a_kind_absent_from_a_window_fails() -> None:
    drifts = latency_drift([ok("chat", 0, 0.1), ok("grounded", 1, 0.3)], [ok("chat", 120, 0.1)])
    assert math.isnan(drifts["grounded"].p99_ratio)
    assert not drift_check(drifts).passed


def test_expected_records_by_nation_and_trace() -> None:
    outcomes = [
        ok("chat", 0, 0.1, "t1"),
        ok("grounded", 1, 0.1, "t2"),
        ok("denied", 2, 0.1, "t3", status=403),
        ok("cross", 3, 0.1, "t4"),
        Outcome("chat", 4, 0.1, 503, False, "t5"),  # not decided as expected: not counted
        ok("chat", 5, 0.1, None),  # decided, but no trace id came back
    ]
    expected, untraced = expected_records(outcomes, RECORDS)
    assert expected == {"FRA": Counter({"t1": 1, "t2": 2, "t3": 1, "t4": 1}), "DEU": Counter({"t4": 1})}
    assert [o.started for o in untraced] == [5]


@pytest.mark.parametrize(
    ("recorded", "one_to_one", "said"),
    [
        (
            {"FRA": ["t1", "t2", "t2", "t4"], "DEU": ["t4"]},
            True,
            "FRA: 4/4 decisions recorded, chain verified",
        ),
        (
            {"FRA": ["t1", "t2", "t4"], "DEU": ["t4"]},
            False,
            "FRA: 3/4 decisions recorded, 1 requests missing",
        ),
        (
            {"FRA": ["t1", "t2", "t2", "t4"], "DEU": []},
            False,
            "DEU: 0/1 decisions recorded, 1 requests missing",
        ),
        (
            {"FRA": ["t1", "t1", "t2", "t2", "t4"], "DEU": ["t4"]},
            False,
            "FRA: 4/4 decisions recorded, 1 requests with extra records",
        ),
        (
            {"FRA": ["t1", "t2", "t2", "t4", "probe", None], "DEU": ["t4"]},
            True,
            "FRA: 4/4 decisions recorded, 2 records of other requests",
        ),
    ],
    ids=["one-each", "one-missing", "owner-log-missing", "one-duplicated", "others-are-reported-not-failed"],
)
def test_audit_one_to_one(recorded: dict[str, list[str | None]], one_to_one: bool, said: str) -> None:
    expected, _ = expected_records(
        [ok("chat", 0, 0.1, "t1"), ok("grounded", 1, 0.1, "t2"), ok("cross", 2, 0.1, "t4")], RECORDS
    )
    match = audit_one_to_one(expected, recorded)
    assert match.one_to_one is one_to_one
    check = audit_check(match, [], {"FRA": True, "DEU": True})
    assert check.passed is one_to_one
    assert said in check.detail


def test_audit_check_fails_on_a_chain_that_does_not_verify_or_an_untraced_decision() -> None:
    expected, _ = expected_records([ok("chat", 0, 0.1, "t1")], RECORDS)
    match = audit_one_to_one(expected, {"FRA": ["t1"]})
    assert audit_check(match, [], {"FRA": True}).passed
    assert "CHAIN NOT VERIFIED" in audit_check(match, [], {"FRA": False}).detail
    assert not audit_check(match, [], {"FRA": False}).passed
    untraced = audit_check(match, [ok("chat", 1, 0.1)], {"FRA": True})
    assert not untraced.passed
    assert "1 decided requests came back without a trace id" in untraced.detail


def test_timeline_buckets_expected_answers_by_start_time() -> None:
    outcomes = [
        ok("chat", 1, 0.1),
        ok("chat", 5, 0.3),
        Outcome("chat", 6, 9.0, 503, False),
        ok("embed", 25, 0.2),
    ]
    assert timeline(outcomes, 10) == [(0, 2, 0.1, 0.3), (20, 1, 0.2, 0.2)]
