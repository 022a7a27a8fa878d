"""Policy test cases as data: policies/cedar/tests/{ALLOW,DENY}/<sentence>.json, run through `decide()`.

A case holds a principal, an action, a resource and the expected deciding policy ids; its folder says the
expected decision. Used by the test suite and by `sovereign policy test`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sovereign.policy.engine import Decision, PolicyEngine
from sovereign.policy.schema import POLICY_DIR

CASES_DIR = POLICY_DIR / "tests"
DECISIONS = ("ALLOW", "DENY")


@dataclass(frozen=True)
class PolicyCase:
    name: str
    expected: str  # ALLOW or DENY
    principal: dict[str, Any]
    action: str
    resource: dict[str, Any]
    deciding_policy_ids: list[str]


@dataclass(frozen=True)
class CaseResult:
    case: PolicyCase
    decision: Decision

    @property
    def actual(self) -> str:
        return "ALLOW" if self.decision.allowed else "DENY"

    @property
    def passed(self) -> bool:
        return self.actual == self.case.expected and (
            self.decision.deciding_policy_ids == sorted(self.case.deciding_policy_ids)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.case.name,
            "expected": self.case.expected,
            "actual": self.actual,
            "expectedPolicyIds": sorted(self.case.deciding_policy_ids),
            "decidingPolicyIds": self.decision.deciding_policy_ids,
            "reasons": self.decision.reasons,
            "passed": self.passed,
        }


def load_case(path: Path) -> PolicyCase:
    data = json.loads(path.read_text())
    return PolicyCase(
        name=path.stem,
        expected=path.parent.name,
        principal=data["principal"],
        action=data["action"],
        resource=data["resource"],
        deciding_policy_ids=list(data["decidingPolicyIds"]),
    )


def load_cases(directory: Path = CASES_DIR) -> list[PolicyCase]:
    return [load_case(p) for d in DECISIONS for p in sorted((directory / d).glob("*.json"))]


def run_case(engine: PolicyEngine, case: PolicyCase) -> CaseResult:
    return CaseResult(case, engine.decide(case.principal, case.action, [case.resource]))


def run_cases(engine: PolicyEngine, cases: list[PolicyCase]) -> list[CaseResult]:
    return [run_case(engine, case) for case in cases]
