"""The verification cases (tests/policy/verify_cases/*.yaml, format in its README.md) through verify_bundle.

Each case is a bundle that keeps every invariant, breaks some (each expected counterexample must be found,
and nothing else may fail), or cannot be verified at all. Below them, the marking rule itself broken on
purpose: the markings invariant must catch a rule that drops the recipient or lowers the classification.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cedarpy
import pytest
import yaml

from sovereign.domain.markings import AnswerMarking, Classification, Markings, Resource, answer_marking
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.matrix import MatrixTenant
from sovereign.policy.nation_rules import nation_bundle_rules
from sovereign.policy.verify import Counterexample, Invariant, Verification, verify_bundle

CASES_DIR = Path(__file__).parent / "verify_cases"
CASE_FILES = sorted(CASES_DIR.glob("*.yaml"))
SHIPPED = PolicyBundle.load()
PERMIT = "markings/permit-cleared-releasable-compartmented"
_CASE_KEYS = {"description", "tenants", "resources", "bundle", "expect"}


def load(path: Path) -> dict[str, Any]:
    case = yaml.safe_load(path.read_text())
    assert isinstance(case, dict) and set(case) == _CASE_KEYS, f"{path.name}: keys must be {_CASE_KEYS}"
    return case


def base_text(base: str | dict[str, Any]) -> str:
    if base == "shipped":
        return SHIPPED.base
    assert isinstance(base, dict), f"base is 'shipped' or a mapping, not {base!r}"
    if "text" in base:
        return str(base["text"])
    without = set(base.get("without", []))
    parsed = json.loads(cedarpy.policies_to_json_str(SHIPPED.base))
    static = parsed["staticPolicies"]
    found = {(p.get("annotations") or {}).get("id") for p in static.values()}
    assert without <= found, f"the shipped base has no policy {sorted(without - found)}"
    parsed["staticPolicies"] = {
        key: p for key, p in static.items() if (p.get("annotations") or {}).get("id") not in without
    }
    return "\n".join([cedarpy.policies_from_json_str(json.dumps(parsed)), base.get("add", "")])


def build_bundle(spec: dict[str, Any]) -> PolicyBundle:
    rules: dict[str, list[str]] = {}
    for nation, policies in (spec.get("tenant_policies") or {}).items():
        rules.setdefault(nation, []).append(nation_bundle_rules(nation, policies.items()))
    for nation, text in (spec.get("nation_rules") or {}).items():
        rules.setdefault(nation, []).append(text)
    base = PolicyBundle(SHIPPED.schema, base_text(spec["base"]))
    return base.with_nation_rules({nation: "\n".join(texts) for nation, texts in rules.items()})


def verify_case(case: dict[str, Any]) -> Verification:
    tenants = [
        MatrixTenant(t["nation"], Classification(t["clearance"]), t.get("suspended", False))
        for t in case["tenants"]
    ]
    resources = [
        Resource(kind=r["kind"], name=r["name"], markings=Markings(**r["markings"]))
        for r in case["resources"]
    ]
    return verify_bundle(build_bundle(case["bundle"]), tenants, resources)


def matches(found: Counterexample, expected: dict[str, Any]) -> bool:
    if "principal" in expected:
        wanted = expected["principal"]
        if wanted is None:
            if found.principal is not None:
                return False
        elif found.principal is None or any(
            found.principal.as_dict()[name] != value for name, value in wanted.items()
        ):
            return False
    return (
        found.resource == expected.get("resource", found.resource)
        and set(found.deciding_policy_ids) == set(expected.get("deciding", found.deciding_policy_ids))
        and expected.get("why", "") in found.why
    )


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_verification_finds_exactly_the_expected_counterexamples(path: Path) -> None:
    case = load(path)
    expect = case["expect"]
    verification = verify_case(case)
    if "unanalysable" in expect:
        assert not verification.ok
        assert verification.unanalysable is not None, verification.as_dict()
        assert expect["unanalysable"] in verification.unanalysable
        assert verification.first_problem() == f"cannot be verified: {verification.unanalysable}"
        return
    assert verification.unanalysable is None, verification.unanalysable
    assert list(verification.weakened) == expect.pop("weakened", [])
    if expect == {"holds": True}:
        assert verification.ok, verification.first_problem()
        assert verification.first_problem() is None
        assert verification.cells > 0
        return
    broken = {Invariant(name): counterexamples for name, counterexamples in expect.items()}
    assert not verification.ok
    assert verification.first_problem() is not None
    for result in verification.results:
        found = "\n".join(c.describe() for c in result.counterexamples)
        if result.invariant not in broken:
            assert result.holds, f"{result.invariant} should hold, but:\n{found}"
            continue
        assert not result.holds, f"{result.invariant} should be broken"
        assert result.violations >= len(result.counterexamples) > 0
        for expected in broken[result.invariant]:
            assert any(matches(c, expected) for c in result.counterexamples), (
                f"{result.invariant}: no counterexample like {expected}; found:\n{found}"
            )


def test_every_invariant_has_cases_that_break_it_and_cases_that_keep_it() -> None:
    cases = [load(path)["expect"] for path in CASE_FILES]
    assert sum(expect.get("holds") is True for expect in cases) >= 4
    for invariant in Invariant:
        breaking = sum(invariant.value in expect for expect in cases)
        assert breaking >= 2, f"{invariant}: {breaking} breaking case(s)"
    assert sum("weakened" in expect for expect in cases) >= 2
    assert sum("unanalysable" in expect for expect in cases) >= 2


# The marking rule itself broken on purpose: the verification is given the rule to check.

LIAISON = """
@id("pol-liaison")
permit (principal, action, resource)
when { resource.owner == "FRA" && principal.nationality == "POL" && principal.groups.contains("liaison") };
"""
TENANTS = [
    MatrixTenant("FRA", Classification.COSMIC_TOP_SECRET),
    MatrixTenant("POL", Classification.NATO_SECRET),
]
OWNER_ONLY = Resource(
    kind="Model",
    name="fra/planner",
    markings=Markings(owner="FRA", classification=Classification.NATO_SECRET),
)


def verify_with_marking(marking: Any) -> Verification:
    bundle = SHIPPED.with_nation_rules({"FRA": nation_bundle_rules("FRA", [("liaison", LIAISON)])})
    return verify_bundle(bundle, TENANTS, [OWNER_ONLY], marking=marking)


def test_the_shipped_marking_rule_keeps_the_markings_invariant() -> None:
    verification = verify_with_marking(answer_marking)
    assert verification.ok, verification.first_problem()
    assert verification.result(Invariant.markings).checked > 0


def test_a_marking_rule_that_forgets_the_disclosure_drops_the_recipient() -> None:
    def without_recipient(markings: list[Markings], members: Any = None, **_: Any) -> AnswerMarking:
        return answer_marking(markings, members)

    verification = verify_with_marking(without_recipient)
    result = verification.result(Invariant.markings)
    assert not verification.ok
    assert result.violations == 1  # POL's liaison at NATO SECRET: the one disclosed cell
    (found,) = result.counterexamples
    assert found.principal is not None
    assert (found.principal.nation, found.principal.clearance, found.principal.groups) == (
        "POL",
        Classification.NATO_SECRET,
        ("liaison",),
    )
    assert found.resource == "fra/planner"
    assert found.deciding_policy_ids == ("fra/liaison/pol-liaison",)
    assert "REL TO FRA, which excludes its recipient POL" in found.why
    assert all(r.holds for r in verification.results if r.invariant is not Invariant.markings)


def test_a_marking_rule_that_lowers_the_classification_is_caught_on_every_allowed_cell() -> None:
    def one_level_lower(markings: list[Markings], *args: Any, **kwargs: Any) -> AnswerMarking:
        answer = answer_marking(markings, *args, **kwargs)
        lower = list(Classification)[max(answer.classification.rank - 1, 0)]
        return answer.model_copy(update={"classification": lower})

    verification = verify_with_marking(one_level_lower)
    result = verification.result(Invariant.markings)
    allowed = result.checked
    assert allowed == 5  # FRA at NATO SECRET and COSMIC TOP SECRET, liaison or not; POL's liaison
    assert result.violations == allowed
    nations = {c.principal.nation for c in result.counterexamples if c.principal}
    assert nations == {"FRA", "POL"}
    assert all(
        "the answer is marked NATO CONFIDENTIAL, below its input's NATO SECRET" in c.why
        for c in result.counterexamples
    )
