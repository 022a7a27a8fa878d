"""The actors every request calls (a nation's QuotaKeeper and AuditWriter) are created without Ray task
events: Ray's GCS keeps each call's events (up to 100,000 tasks), so with them on its memory grew with the
traffic (`make soak`, RELIABILITY.md "Soak"). No Ray here: the actor classes are replaced by recorders."""

from __future__ import annotations

from typing import Any

import pytest
from sovereign_serving import audit_writer
from sovereign_serving.gateway import _ratelimit

from sovereign.serving_contract import AuditSink


class RecordedActorClass:
    def __init__(self) -> None:
        self.options_given: dict[str, Any] = {}

    def options(self, **options: Any) -> RecordedActorClass:
        self.options_given = options
        return self

    def remote(self, *args: Any) -> object:
        return object()


def test_the_quota_keeper_is_created_without_task_events(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = RecordedActorClass()
    monkeypatch.setattr(_ratelimit, "QuotaKeeper", recorded)
    _ratelimit.QuotaClient("FRA")._connect()
    assert recorded.options_given["enable_task_events"] is False
    assert recorded.options_given["get_if_exists"] is True


def test_the_audit_writer_is_created_without_task_events(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = RecordedActorClass()
    monkeypatch.setattr(audit_writer, "AuditWriter", recorded)
    sink = AuditSink.model_validate(
        {
            "vaultAddr": "https://127.0.0.1:8200",
            "role": "tenant-fra",
            "tokenFile": "/nonexistent/token",
            "directory": "/nonexistent/audit",
        }
    )
    audit_writer.AuditClient("FRA", sink)._own_writer()
    assert recorded.options_given["enable_task_events"] is False
    assert recorded.options_given["get_if_exists"] is True
