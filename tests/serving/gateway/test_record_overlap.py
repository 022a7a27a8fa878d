"""A decision's record and the model call run together, and nothing is answered before the record is durable
(`_decisions.Recording`, `answered_when_durable`, `durable_first`): pure asyncio, the record and the model as
coroutines whose timing the test sets."""

from __future__ import annotations

import asyncio

import pytest
from sovereign_serving.gateway._decisions import Recording, answered_when_durable, durable_first
from sovereign_serving.gateway._errors import GatewayError, bad_request, unavailable


def audit_refused() -> GatewayError:
    return unavailable("the decision cannot be recorded", code="audit_unavailable")


async def record(events: list[str], seconds: float, fails: bool = False) -> None:
    await asyncio.sleep(seconds)
    if fails:
        events.append("record failed")
        raise audit_refused()
    events.append("record durable")


async def model(events: list[str], seconds: float, fails: bool = False) -> str:
    events.append("model called")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        events.append("model cancelled")
        raise
    if fails:
        raise unavailable("the model is unavailable", code="model_unavailable")
    events.append("model answered")
    return "answer"


def test_the_model_runs_while_the_record_is_on_its_way_and_the_answer_waits_for_it() -> None:
    async def scenario() -> tuple[str, list[str], float]:
        events: list[str] = []
        began = asyncio.get_running_loop().time()
        recording = Recording(record(events, 0.2))
        answer = await answered_when_durable(recording, model(events, 0.05))
        events.append("answered")
        return answer, events, asyncio.get_running_loop().time() - began

    answer, events, took = asyncio.run(scenario())
    assert answer == "answer"
    assert events == ["model called", "model answered", "record durable", "answered"]
    assert took < 0.2 + 0.05  # overlapped, not one after the other


def test_a_failed_record_drops_the_answer_and_refuses_the_request() -> None:
    async def scenario() -> list[str]:
        events: list[str] = []
        with pytest.raises(GatewayError) as refused:
            await answered_when_durable(Recording(record(events, 0.01, fails=True)), model(events, 0.5))
        assert refused.value.code == "audit_unavailable"
        return events

    assert asyncio.run(scenario()) == ["model called", "record failed", "model cancelled"]


def test_a_failed_model_call_is_raised_only_once_its_record_is_durable() -> None:
    async def scenario() -> list[str]:
        events: list[str] = []
        with pytest.raises(GatewayError) as failed:
            await answered_when_durable(Recording(record(events, 0.1)), model(events, 0.01, fails=True))
        events.append(f"raised {failed.value.code}")
        return events

    assert asyncio.run(scenario()) == ["model called", "record durable", "raised model_unavailable"]


def test_a_check_refusing_after_the_decision_waits_for_its_record_and_a_failed_record_wins() -> None:
    async def scenario(fails: bool) -> tuple[str, list[str]]:
        events: list[str] = []
        recording = Recording(record(events, 0.05, fails=fails))
        try:
            async with durable_first(recording):
                raise bad_request("too many messages", param="messages")
        except GatewayError as error:
            return error.code, events
        raise AssertionError("not refused")

    assert asyncio.run(scenario(fails=False)) == ("invalid_request", ["record durable"])
    assert asyncio.run(scenario(fails=True)) == ("audit_unavailable", ["record failed"])


def test_a_request_cancelled_does_not_cancel_its_record() -> None:
    async def scenario() -> list[str]:
        events: list[str] = []
        recording = Recording(record(events, 0.1))
        waiting = asyncio.ensure_future(answered_when_durable(recording, model(events, 1.0)))
        await asyncio.sleep(0.01)
        waiting.cancel()  # the client went away
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.sleep(0.15)
        return events

    assert asyncio.run(scenario()) == ["model called", "model cancelled", "record durable"]
