"""The policy test cases (policies/cedar/tests/ALLOW, DENY) through `decide()`, and their coverage."""

from __future__ import annotations

import pytest

from sovereign.policy.cases import load_cases
from sovereign.policy.engine import decide

CASES = load_cases()
PERMIT = "markings/permit-cleared-releasable-compartmented"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.expected}/{c.name}" for c in CASES])
def test_case_decides_as_expected_with_its_deciding_policies(case) -> None:
    decision = decide(case.principal, case.action, [case.resource])
    assert ("ALLOW" if decision.allowed else "DENY") == case.expected, decision.reasons
    assert decision.deciding_policy_ids == sorted(case.deciding_policy_ids)
    assert decision.reasons
    assert (decision.marking is not None) == decision.allowed


def test_there_are_at_least_a_hundred_cases() -> None:
    assert len(CASES) >= 100


def test_every_policy_decides_some_case() -> None:
    deciding = {pid for case in CASES for pid in case.deciding_policy_ids}
    assert deciding == {
        PERMIT,
        "markings/limit-denied-nations",
        "markings/limit-suspended-tenant",
        "markings/limit-foreign-issuer",
        "markings/limit-clearance",
        "markings/limit-compartments",
    }


def _denied_on_one_clause(predicate, expected_ids: list[str]) -> list[str]:
    return [
        c.name
        for c in CASES
        if c.expected == "DENY"
        and c.deciding_policy_ids == expected_ids
        and predicate(c.principal, c.resource["markings"])
    ]


def test_every_clause_of_the_permit_denies_some_case_on_its_own() -> None:
    # A case that fails only one clause of the permit: releasability, clearance or compartments.
    from sovereign.domain.markings import Classification

    def releasable(p, m):
        return (
            p["nationality"] == m["owner"]
            or p["nationality"] in m["releasableTo"]
            or "NATO" in m["releasableTo"]
        )

    def cleared(p, m):
        return Classification(p["clearance"]) >= Classification(m["classification"])

    def compartmented(p, m):
        return set(m["compartments"]) <= set(p["compartments"])

    # Releasability is the permit's alone (no policy decides); clearance and compartments also have forbids,
    # which hold for a nation's own permits too.
    assert _denied_on_one_clause(
        lambda p, m: not releasable(p, m) and cleared(p, m) and compartmented(p, m), []
    )
    assert _denied_on_one_clause(
        lambda p, m: releasable(p, m) and not cleared(p, m) and compartmented(p, m),
        ["markings/limit-clearance"],
    )
    assert _denied_on_one_clause(
        lambda p, m: releasable(p, m) and cleared(p, m) and not compartmented(p, m),
        ["markings/limit-compartments"],
    )
    # Releasability by owner, by nation and by NATO each allows some case.
    allowed = [c for c in CASES if c.expected == "ALLOW"]
    assert any(c.principal["nationality"] == c.resource["markings"]["owner"] for c in allowed)
    assert any(c.principal["nationality"] in c.resource["markings"]["releasableTo"] for c in allowed)
    assert any(
        "NATO" in c.resource["markings"]["releasableTo"]
        and c.principal["nationality"] != c.resource["markings"]["owner"]
        for c in allowed
    )


def test_case_file_names_read_as_sentences() -> None:
    for case in CASES:
        assert case.name == case.name.lower() and " " not in case.name and "-" not in case.name
        assert any(verb in case.name.split("_") for verb in ("invokes", "reads")), case.name


@pytest.mark.parametrize("case", CASES, ids=[f"{c.expected}/{c.name}" for c in CASES])
def test_case_file_is_a_valid_request_of_the_domain_model(case) -> None:
    # A malformed DENY case would otherwise "pass" by being denied as invalid input.
    from sovereign.domain.markings import Principal, Resource

    Principal.model_validate(case.principal)
    Resource.model_validate(case.resource)
    decision = decide(case.principal, case.action, [case.resource])
    if case.expected == "DENY" and not case.deciding_policy_ids:
        assert "no policy permits it" in decision.reasons[0]
