"""What the gateway's decisions say: on a model (`ModelDecision`, and `Permitted`: the model with its answers'
marking) and on a dataset (`DatasetDecision`), allowed or denied, as spans, metrics and audit records show
them. Names, codes and ids only, never content. `Access` (`_access.py`) makes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sovereign.domain.markings import AnswerMarking, Markings
from sovereign.policy.engine import Decision
from sovereign.serving_contract import GatewayModel

from ._errors import GatewayError, echoed
from ._routes import Operation


@dataclass(frozen=True)
class Permitted:
    """A model the principal may invoke, with the marking its answers carry."""

    model: GatewayModel
    marking: AnswerMarking

    def headers(self) -> dict[str, str]:
        return marking_headers(self.marking)


def marking_headers(marking: AnswerMarking) -> dict[str, str]:
    return {
        "X-Sovereign-Classification": str(marking.classification),
        "X-Sovereign-Releasable-To": ",".join(marking.releasable_to),
    }


@dataclass(frozen=True)
class ModelDecision:
    """The gateway's decision on one request's model, allowed or denied (for its span, metric and audit).

    Names, codes and ids only, never content. `reason_codes`: `permitted`, `unknown-model`, `not-owned`
    (a federation route asked for a model the nation does not own), `forbidden` (a forbid policy decided),
    `not-permitted` (no policy permits it) or `no-marking`; `reasons` are the engine's own explanations.
    An allowed decision whose owner's own rule disclosed the model to a nation its markings do not release
    it to adds `disclosed-by-owner` (and the marking adds that nation; the rule's id is among the deciding
    policy ids: `sovereign.domain.markings.answer_marking`).
    """

    model: str
    owner: str | None  # the owner nation, when the model is in the gateway's config
    allowed: bool
    reason_codes: tuple[str, ...]
    reasons: tuple[str, ...]
    deciding_policy_ids: tuple[str, ...]
    bundle_version: str
    marking: AnswerMarking | None  # the answer's marking, when allowed

    @property
    def decision(self) -> str:
        return "allow" if self.allowed else "deny"

    @property
    def resource(self) -> str:
        return self.model


@dataclass(frozen=True)
class DatasetDecision:
    """The gateway's decision on one dataset a request names (`read`), allowed or denied, as a ModelDecision.

    `reason_codes`: `permitted`, `unknown-dataset`, `not-owned`, `forbidden`, `not-permitted`, `no-marking`;
    `disclosed-by-owner` with `permitted`, as for a model.
    """

    dataset: str
    owner: str | None
    allowed: bool
    reason_codes: tuple[str, ...]
    reasons: tuple[str, ...]
    deciding_policy_ids: tuple[str, ...]
    bundle_version: str
    markings: Markings | None  # the dataset's, when allowed (the answer's marking adds its chunks')

    @property
    def decision(self) -> str:
        return "allow" if self.allowed else "deny"

    @property
    def resource(self) -> str:
        return self.dataset


def permitted_codes(decision: Decision) -> tuple[str, ...]:
    """An allowing decision's reason codes: `disclosed-by-owner` too when an owner's own rule let the user
    read a resource its markings do not release to the user's nation."""
    return ("permitted", "disclosed-by-owner") if decision.disclosed_by_owner else ("permitted",)


def check_task(permitted: Permitted, operation: Operation, model: str) -> None:
    """400 `wrong_task` when the model does not do what the operation needs (generate or embed)."""
    if permitted.model.task != operation.task:
        kind = "an embedding model" if permitted.model.task == "embed" else "a generation model"
        raise GatewayError(
            400, f"model {echoed(model)!r} is {kind}: use its endpoint", param="model", code="wrong_task"
        )
