"""The soak's traffic (bench/soak.py): the mix of request kinds a nation's users send, each sent with httpx
as the tests send it, a closed loop that measures capacity and an open loop that drives a rate.

Every request's outcome records its kind, start, latency, status, whether the status is the one its kind
expects and the trace id the gateway returns in `traceresponse` (its audit records carry it)."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from soak_checks import Outcome

REQUEST_TIMEOUT = 60.0  # seconds: an answer later than this is a failure (no hang)
MAX_IN_FLIGHT = 256  # the open loop's backlog beyond which a request is not sent but counted as failed
MAX_TOKENS = 16
DATASET = "fra/intel-summaries"


@dataclass(frozen=True)
class Kind:
    """One kind of request: where it goes, as whom (a key of the tokens), its body, the status it expects
    and how many decision records each nation's log gets for it."""

    name: str
    path: str
    caller: str
    body: Mapping[str, Any]
    expect: int
    records: Mapping[str, int]
    weight: int
    stream: bool = False


def _chat(model: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": MAX_TOKENS,
        **extra,
    }


# An FRA analyst (NATO SECRET) on FRA's endpoint; an FRA user cleared NATO UNCLASSIFIED, refused
# `fra/analyst` (NATO RESTRICTED); a DEU analyst (NATO CONFIDENTIAL) on DEU's endpoint asking FRA's model,
# released to DEU: DEU's gateway decides, both nations' logs record it.
KINDS: tuple[Kind, ...] = (
    Kind(
        "chat",
        "/fra/v1/chat/completions",
        "fra",
        _chat("fra/analyst", "Summarise the day."),
        200,
        {"FRA": 1},
        3,
    ),
    Kind(
        "stream",
        "/fra/v1/chat/completions",
        "fra",
        _chat("fra/analyst", "Summarise the night.", stream=True),
        200,
        {"FRA": 1},
        2,
        stream=True,
    ),
    Kind(
        "embed",
        "/fra/v1/embeddings",
        "fra",
        {"model": "fra/embedder", "input": ["convoy sighted near the border", "drone activity at dawn"]},
        200,
        {"FRA": 1},
        2,
    ),
    Kind(
        "grounded",
        "/fra/v1/chat/completions",
        "fra",
        _chat("fra/analyst", "What do we know about drones?", sovereign={"datasets": [DATASET], "top_k": 3}),
        200,
        {"FRA": 2},  # the model's decision and the dataset's
        1,
    ),
    Kind(
        "denied",
        "/fra/v1/chat/completions",
        "fra-unclassified",
        _chat("fra/analyst", "x"),
        403,
        {"FRA": 1},
        1,
    ),
    Kind(
        "cross-nation",
        "/deu/v1/chat/completions",
        "deu",
        _chat("fra/analyst", "Summarise the week."),
        200,
        {"DEU": 1, "FRA": 1},
        1,
    ),
)


def mix(kinds: tuple[Kind, ...] = KINDS, seed: int = 17) -> Iterator[Kind]:
    """The kinds in their weights' proportions, shuffled in rounds (seeded): every round holds each kind
    `weight` times, so any minute holds the same mix."""
    rng = random.Random(seed)
    one_round = [kind for kind in kinds for _ in range(kind.weight)]
    while True:
        rng.shuffle(one_round)
        yield from one_round


def _trace_id(response: httpx.Response) -> str | None:
    parts = response.headers.get("traceresponse", "").split("-")
    return parts[1] if len(parts) == 4 else None


async def _read_stream(response: httpx.Response) -> str:
    """'' once `[DONE]` arrived after chunks and no error event, else what went wrong."""
    chunks, done = 0, False
    async for line in response.aiter_lines():
        if not line.startswith("data: "):
            continue
        data = line.removeprefix("data: ")
        if data == "[DONE]":
            done = True
            continue
        event = json.loads(data)
        if "error" in event:
            return f"stream error event {(event['error'] or {}).get('code')}"
        chunks += 1
    return "" if done and chunks else f"stream ended without [DONE] after {chunks} chunks"


async def send(
    client: httpx.AsyncClient, base: str, kind: Kind, tokens: Mapping[str, str], t0: float
) -> Outcome:
    """One request of `kind`; never raises (a transport failure or timeout is an outcome with status 0)."""
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {tokens[kind.caller]}"}
    status, trace, error = 0, None, ""
    try:
        async with client.stream("POST", base + kind.path, json=kind.body, headers=headers) as response:
            status, trace = response.status_code, _trace_id(response)
            if status == 200 and kind.stream:
                error = await _read_stream(response)
            else:
                body = json.loads(await response.aread())
                if status == 200 and not (body.get("choices") or body.get("data")):
                    error = "200 without choices or data"
                elif status != kind.expect:
                    error = str((body.get("error") or {}).get("code") or body)[:120]
    except (httpx.HTTPError, json.JSONDecodeError) as failure:
        error = type(failure).__name__
    seconds = time.monotonic() - started
    expected = status == kind.expect and not error
    return Outcome(kind.name, started - t0, seconds, status, expected, trace, error)


@dataclass
class Progress:
    """What the loops report as they go (read by the caller's progress line)."""

    sent: int = 0
    done: int = 0
    unexpected: int = 0
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.done += 1
        self.unexpected += not outcome.expected


def new_client(connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(timeout=REQUEST_TIMEOUT, limits=limits)


async def closed_loop(
    base: str,
    tokens: Mapping[str, str],
    connections: int,
    seconds: float,
    kinds: Iterator[Kind],
    report: Progress,
) -> float:
    """`connections` clients each sending the mix back to back for `seconds`; returns requests per second
    (answered or denied as expected; an unexpected outcome is counted in `report` and not in the rate)."""
    async with new_client(connections) as client:
        t0 = time.monotonic()
        deadline = t0 + seconds

        async def worker() -> int:
            count = 0
            while time.monotonic() < deadline:
                report.sent += 1
                outcome = await send(client, base, next(kinds), tokens, t0)
                report.add(outcome)
                count += outcome.expected
            return count

        counts = await asyncio.gather(*(worker() for _ in range(connections)))
        return sum(counts) / (time.monotonic() - t0)


async def open_loop(
    base: str,
    tokens: Mapping[str, str],
    rate: float,
    seconds: float,
    kinds: Iterator[Kind],
    report: Progress,
    tick: Callable[[float], None],
) -> None:
    """Start one request every 1/`rate` seconds for `seconds`, whether or not the earlier ones are answered
    (open loop); `tick(elapsed)` about once a second. A backlog above MAX_IN_FLIGHT is a failure."""
    async with new_client(MAX_IN_FLIGHT) as client:
        t0 = time.monotonic()
        in_flight: set[asyncio.Task[None]] = set()
        next_tick = 1.0

        async def one(kind: Kind) -> None:
            report.add(await send(client, base, kind, tokens, t0))

        for index in itertools.count():
            due = index / rate
            if due >= seconds:
                break
            await asyncio.sleep(max(0.0, t0 + due - time.monotonic()))
            if due >= next_tick:
                tick(due)
                next_tick = due + 1.0
            kind = next(kinds)
            report.sent += 1
            if len(in_flight) >= MAX_IN_FLIGHT:
                report.add(Outcome(kind.name, due, 0.0, 0, False, None, "client backlog full"))
                continue
            task = asyncio.create_task(one(kind))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight, timeout=REQUEST_TIMEOUT + 5)
