"""What one audit record says: who did what to which resources, and what was decided. Never any content.

The models refuse unknown fields (`extra="forbid"`), so a prompt, a completion or a token cannot be added to
a record by passing one more keyword; `details` is the only open part, and it takes a few short scalar
facts under names that do not look like content or credentials.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from sovereign.domain.nations import is_nation_code

# Administrative events the platform records; decisions are always `policy-decision`.
ADMIN_EVENTS = ("tenant-provisioned", "key-rotated", "key-shredded", "policy-changed")
DECISION_EVENT = "policy-decision"
REFUSAL_EVENT = "request-refused"  # a gateway's refusal after authentication that no decision recorded

MAX_DETAILS = 16
MAX_DETAIL_CHARS = 256
# Names under which content or credentials would travel; refused in `details` (compared case-insensitively,
# ignoring `-` and `_`).
_REFUSED_DETAIL_NAMES = frozenset(
    {
        "prompt",
        "prompts",
        "completion",
        "completions",
        "message",
        "messages",
        "content",
        "input",
        "output",
        "text",
        "token",
        "accesstoken",
        "idtoken",
        "bearer",
        "authorization",
        "jwt",
        "password",
        "secret",
        "plaintext",
    }
)
_EVENT = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

DetailValue = str | int | float | bool | None


def _nation(code: str) -> str:
    if not is_nation_code(code):
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-3 nation code")
    return code


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AuditActor(_Strict):
    """Who acted: the subject and nation of a verified principal (or the operator), never its token."""

    sub: str = Field(min_length=1, max_length=256, description="Subject of the caller's verified token.")
    nation: str = Field(description="The caller's nation (its issuer's), ISO 3166-1 alpha-3.")

    _check_nation = field_validator("nation")(_nation)


class AuditDecision(_Strict):
    """The outcome of one policy decision, as `decide()` returned it."""

    outcome: Literal["allowed", "denied"] = Field(description="What the policy engine decided.")
    policy_ids: list[str] = Field(
        default_factory=list, alias="policyIds", description="Ids of the policies that decided it."
    )
    bundle_version: str = Field(alias="bundleVersion", description="Version hash of the policy bundle used.")


class AuditRecord(_Strict):
    """One entry of a nation's audit log (its content: the log encrypts it with the nation's data key)."""

    time: datetime = Field(description="When it happened; UTC, written as RFC 3339 with `Z`.")
    nation: str = Field(description="The nation whose log holds the record (ISO 3166-1 alpha-3).")
    kind: Literal["decision", "admin", "refusal"] = Field(
        description="A policy decision, an administrative event, or a refusal (status and code in `details`)."
    )
    event: str = Field(description="What happened, kebab-case: policy-decision, key-rotated, …")
    actor: AuditActor = Field(description="Who acted.")
    resources: list[str] = Field(
        default_factory=list, max_length=64, description="Names of the resources acted on (no content)."
    )
    decision: AuditDecision | None = Field(default=None, description="For kind `decision`: the outcome.")
    details: dict[str, DetailValue] = Field(
        default_factory=dict,
        description=f"At most {MAX_DETAILS} short non-content facts (key version, reason code, …).",
    )

    _check_nation = field_validator("nation")(_nation)

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("time must carry a timezone (UTC)")
        return value.astimezone(UTC)

    @field_serializer("time")
    def _rfc3339(self, value: datetime) -> str:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    @field_validator("event")
    @classmethod
    def _kebab(cls, value: str) -> str:
        if not _EVENT.match(value) or len(value) > 64:
            raise ValueError(f"event {value!r} is not a kebab-case name")
        return value

    @field_validator("resources")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or len(name) > 256:
                raise ValueError("resource names are 1 to 256 characters")
        return value

    @field_validator("details")
    @classmethod
    def _facts_only(cls, value: dict[str, DetailValue]) -> dict[str, DetailValue]:
        if len(value) > MAX_DETAILS:
            raise ValueError(f"details holds at most {MAX_DETAILS} facts")
        for name, fact in value.items():
            if name.lower().replace("-", "").replace("_", "") in _REFUSED_DETAIL_NAMES:
                raise ValueError(f"details may not carry {name!r}: audit records hold no content or tokens")
            if isinstance(fact, str) and len(fact) > MAX_DETAIL_CHARS:
                raise ValueError(f"details[{name!r}] is longer than {MAX_DETAIL_CHARS} characters")
        return value

    @model_validator(mode="after")
    def _kind_matches(self) -> AuditRecord:
        if self.kind == "decision" and (self.decision is None or self.event != DECISION_EVENT):
            raise ValueError(f"a decision record has event {DECISION_EVENT!r} and a decision")
        if self.kind == "admin" and self.decision is not None:
            raise ValueError("an admin record carries details, not a decision")
        if self.kind == "refusal" and (self.decision is not None or self.event != REFUSAL_EVENT):
            raise ValueError(f"a refusal record has event {REFUSAL_EVENT!r} and details, not a decision")
        return self

    def canonical_bytes(self) -> bytes:
        """The bytes that are encrypted: sorted-key compact JSON, so equal records give equal bytes."""
        content = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
