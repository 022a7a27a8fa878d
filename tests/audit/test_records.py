"""What an audit record may hold: names and decisions, never content or tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from sovereign.audit import AuditActor, AuditRecord
from tests.audit.samples import make_record


def _admin(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "time": "2026-11-27T08:00:00Z",
        "nation": "FRA",
        "kind": "admin",
        "event": "tenant-provisioned",
        "actor": {"sub": "operator", "nation": "FRA"},
        "resources": ["tenant-fra"],
    }
    return {**body, **overrides}


@pytest.mark.parametrize(
    "field", ["prompt", "completion", "messages", "token", "content"], ids=lambda f: f"refuses-{f}"
)
def test_a_record_refuses_an_unknown_field(field: str) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        AuditRecord.model_validate(_admin(**{field: "the secret prompt"}))


def test_an_actor_refuses_a_token() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        AuditActor.model_validate({"sub": "analyst", "nation": "FRA", "token": "eyJ..."})


@pytest.mark.parametrize("name", ["prompt", "Completion", "access_token", "Authorization", "messages"])
def test_details_refuse_names_that_carry_content_or_credentials(name: str) -> None:
    with pytest.raises(ValidationError, match="audit records hold no content or tokens"):
        AuditRecord.model_validate(_admin(details={name: "x"}))


def test_details_refuse_long_text() -> None:
    with pytest.raises(ValidationError, match="longer than 256"):
        AuditRecord.model_validate(_admin(details={"reason": "x" * 257}))


def test_a_decision_record_needs_its_decision() -> None:
    with pytest.raises(ValidationError, match="a decision record"):
        AuditRecord.model_validate(_admin(kind="decision", event="policy-decision"))


def test_time_is_kept_in_utc_and_written_as_rfc3339() -> None:
    paris = timezone(timedelta(hours=1))
    record = AuditRecord.model_validate(_admin(time=datetime(2026, 11, 27, 9, 0, tzinfo=paris)))
    assert record.time == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    assert b'"time":"2026-11-27T08:00:00.000000Z"' in record.canonical_bytes()


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        AuditRecord.model_validate(_admin(time=datetime(2026, 11, 27, 8, 0)))


def test_canonical_bytes_round_trip() -> None:
    record = make_record(4)
    assert AuditRecord.model_validate_json(record.canonical_bytes()) == record
    assert b'"policyIds"' in record.canonical_bytes()


def test_a_nation_must_be_an_iso_code() -> None:
    with pytest.raises(ValidationError, match="alpha-3"):
        AuditRecord.model_validate(_admin(nation="FRANCE"))
