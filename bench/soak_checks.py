"""The soak's checks (bench/soak.py), as pure functions over what it measured: unexpected errors, memory
growth per process, p99 drift from the first minute to the last, and one audit record per decision. No
processes, no I/O: tests/bench/test_soak_checks.py gives them data."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

GROWTH_LIMIT = 0.05  # memory of a process may grow by less than this, from the first minute's end to the end
DRIFT_LIMIT = 0.20  # the last minute's p99 may be at most this much above the first minute's
OVERALL = "overall"


@dataclass(frozen=True)
class Check:
    """One pass/fail line of the report, with the numbers it rests on."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Outcome:
    """One request the driver sent: its kind, when it started (seconds from the phase's start), how long it
    took, its HTTP status (0: no answer), whether that status is what its kind expects, and the gateway's
    trace id of it (from `traceresponse`), which its audit records carry."""

    kind: str
    started: float
    seconds: float
    status: int
    expected: bool
    trace_id: str | None = None
    error: str = ""


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile `q` (0-100) of `values`; NaN if there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def errors_check(outcomes: Iterable[Outcome]) -> Check:
    """Every request got what its kind expects (200, or the denial's 403); anything else is unexpected."""
    unexpected = Counter(f"{o.kind} {o.status or o.error or 'no answer'}" for o in outcomes if not o.expected)
    total = sum(unexpected.values())
    detail = (
        "0 unexpected errors"
        if not total
        else f"{total} unexpected: "
        + ", ".join(f"{what} ×{count}" for what, count in unexpected.most_common(8))
    )
    return Check("unexpected errors", total == 0, detail)


def memory_growth(first: Mapping[str, int], last: Mapping[str, int]) -> dict[str, float]:
    """RSS at the end over RSS at the first minute's end, for every process present at both (by key)."""
    return {key: last[key] / first[key] for key in sorted(first) if key in last and first[key] > 0}


def memory_check(first: Mapping[str, int], last: Mapping[str, int], limit: float = GROWTH_LIMIT) -> Check:
    """Every process's memory grew by less than `limit`; processes that came or went are named (a process
    that went away is a failure: something died under load)."""
    ratios = memory_growth(first, last)
    grown = {key: ratio for key, ratio in ratios.items() if ratio >= 1 + limit}
    gone = sorted(set(first) - set(last))
    new = sorted(set(last) - set(first))
    worst = max(ratios.items(), key=lambda item: item[1], default=("none", math.nan))
    parts = [f"{len(ratios)} processes, largest growth {worst[1]:.3f}× ({worst[0]})"]
    parts += (
        [f"grew ≥ {1 + limit:.2f}×: " + ", ".join(f"{k} {v:.3f}×" for k, v in grown.items())] if grown else []
    )
    parts += [f"gone: {', '.join(gone)}"] if gone else []
    parts += [f"new: {', '.join(new)}"] if new else []
    return Check("memory growth", not grown and not gone and bool(ratios), "; ".join(parts))


@dataclass(frozen=True)
class Drift:
    first_p50: float
    last_p50: float
    first_p99: float
    last_p99: float
    first_count: int
    last_count: int

    @property
    def p99_ratio(self) -> float:
        return self.last_p99 / self.first_p99 if self.first_p99 > 0 else math.nan

    @property
    def p50_ratio(self) -> float:
        return self.last_p50 / self.first_p50 if self.first_p50 > 0 else math.nan


def windows(
    outcomes: Sequence[Outcome], duration: float, window: float
) -> tuple[list[Outcome], list[Outcome]]:
    """The requests started in the first `window` seconds and in the last `window` seconds of `duration`."""
    first = [o for o in outcomes if o.started < window]
    last = [o for o in outcomes if o.started >= duration - window]
    return first, last


def timeline(outcomes: Sequence[Outcome], step: float) -> list[tuple[float, int, float, float]]:
    """(bucket start, expected answers, p50, p99) for every `step` seconds of start times, in order."""
    buckets: dict[int, list[float]] = {}
    for outcome in outcomes:
        if outcome.expected:
            buckets.setdefault(int(outcome.started // step), []).append(outcome.seconds)
    return [
        (index * step, len(values), percentile(values, 50), percentile(values, 99))
        for index, values in sorted(buckets.items())
    ]


def latency_drift(first: Sequence[Outcome], last: Sequence[Outcome]) -> dict[str, Drift]:
    """p50 and p99 of the expected answers' latency in both windows, by kind and overall."""
    kinds = sorted({o.kind for o in (*first, *last)})
    drifts = {}
    for kind in [*kinds, OVERALL]:
        a = [o.seconds for o in first if o.expected and kind in (o.kind, OVERALL)]
        b = [o.seconds for o in last if o.expected and kind in (o.kind, OVERALL)]
        drifts[kind] = Drift(
            percentile(a, 50), percentile(b, 50), percentile(a, 99), percentile(b, 99), len(a), len(b)
        )
    return drifts


def drift_check(drifts: Mapping[str, Drift], limit: float = DRIFT_LIMIT) -> Check:
    """The last minute's p99 within `limit` of the first minute's, for every kind and overall."""
    over = {kind: d.p99_ratio for kind, d in drifts.items() if not d.p99_ratio <= 1 + limit}
    detail = ", ".join(f"{kind} {d.p99_ratio:.2f}×" for kind, d in drifts.items())
    if over:
        detail += f"; above {1 + limit:.2f}×: {', '.join(sorted(over))}"
    return Check("p99 drift (last minute / first minute)", not over and bool(drifts), detail)


@dataclass(frozen=True)
class AuditMatch:
    """Records against decisions, per nation: how many the driver's requests should have made, how many
    matched, and the trace ids whose count differs (missing: fewer records; duplicated: more)."""

    expected: dict[str, int]
    matched: dict[str, int]
    missing: dict[str, list[str]] = field(default_factory=dict)
    duplicated: dict[str, list[str]] = field(default_factory=dict)
    # decision records of requests the driver did not send
    others: dict[str, int] = field(default_factory=dict)

    @property
    def one_to_one(self) -> bool:
        return not any(self.missing.values()) and not any(self.duplicated.values()) and bool(self.expected)


def expected_records(
    outcomes: Iterable[Outcome], records_by_kind: Mapping[str, Mapping[str, int]]
) -> tuple[dict[str, Counter[str]], list[Outcome]]:
    """Decision records each nation's log should hold, by trace id, for the requests that were decided
    (answered or denied as expected); and the decided requests that came back without a trace id."""
    expected: dict[str, Counter[str]] = {}
    untraced = []
    for outcome in outcomes:
        if not outcome.expected:
            continue
        if not outcome.trace_id:
            untraced.append(outcome)
            continue
        for nation, count in records_by_kind[outcome.kind].items():
            expected.setdefault(nation, Counter())[outcome.trace_id] += count
    return expected, untraced


def audit_one_to_one(
    expected: Mapping[str, Counter[str]], recorded: Mapping[str, Sequence[str | None]]
) -> AuditMatch:
    """Compare the decision records each nation's log holds (their trace ids) with the expected ones."""
    totals, matched, missing, duplicated, others = {}, {}, {}, {}, {}
    for nation in sorted({*expected, *recorded}):
        wanted = expected.get(nation, Counter())
        found = Counter(trace for trace in recorded.get(nation, ()))
        totals[nation] = sum(wanted.values())
        matched[nation] = sum(min(count, found[trace]) for trace, count in wanted.items())
        missing[nation] = sorted(trace for trace, count in wanted.items() if found[trace] < count)
        duplicated[nation] = sorted(trace for trace, count in wanted.items() if found[trace] > count)
        others[nation] = sum(count for trace, count in found.items() if trace not in wanted)
    return AuditMatch(totals, matched, missing, duplicated, others)


def audit_check(match: AuditMatch, untraced: Sequence[Outcome], chains_verified: Mapping[str, bool]) -> Check:
    """Exactly one record per decision in every nation's log, every request traced, every chain verified."""
    parts = [
        f"{nation}: {match.matched[nation]}/{match.expected[nation]} decisions recorded"
        + (f", {len(match.missing[nation])} requests missing records" if match.missing.get(nation) else "")
        + (
            f", {len(match.duplicated[nation])} requests with extra records"
            if match.duplicated.get(nation)
            else ""
        )
        + (f", {match.others[nation]} records of other requests" if match.others.get(nation) else "")
        + (", chain verified" if chains_verified.get(nation) else ", CHAIN NOT VERIFIED")
        for nation in sorted(match.expected)
    ]
    if untraced:
        parts.append(f"{len(untraced)} decided requests came back without a trace id")
    passed = match.one_to_one and not untraced and all(chains_verified.get(n) for n in match.expected)
    return Check("one audit record per decision", passed, "; ".join(parts))
