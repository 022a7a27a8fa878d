"""A nation's admin against the policy verification: what it writes (TenantPolicies, models, datasets) can
neither slip a grant past the invariants nor stall the publication of every nation's bundle.

Pure: the same functions the admission webhook and the operator's policy pass call (the webhook's refusals
end to end: tests/policy/test_policy_diff_e2e.py; the operator's: tests/operator/test_policy_verification.py).
"""

from __future__ import annotations

from sovereign.catalogue import Catalogue
from sovereign.domain.markings import Classification, Markings, Resource, ResourceKind
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.engine import PolicyEngine
from sovereign.policy.matrix import MatrixTenant
from sovereign.policy.nation_rules import nation_bundle_rules
from sovereign.policy.principal_classes import MAX_ATOMS, class_matrix
from sovereign.policy.verify import Invariant, verify_bundle
from sovereign.tenant_policy_diff import tenant_policy_change_on

SHIPPED = PolicyBundle.load()
USERS = [
    MatrixTenant("FRA", Classification.COSMIC_TOP_SECRET),
    MatrixTenant("DEU", Classification.NATO_SECRET),
    MatrixTenant("POL", Classification.NATO_SECRET),
]


def _resource(name: str, owner: str, level: str, **markings: list[str]) -> Resource:
    kind = ResourceKind.model if name.endswith("-model") else ResourceKind.dataset
    marks = Markings(owner=owner, classification=level, **markings)  # type: ignore[arg-type]
    return Resource(kind=kind, name=name, markings=marks)


RESOURCES = [
    _resource("fra/plans", "FRA", "NATO SECRET", releasableTo=["DEU"]),
    _resource("deu/reports", "DEU", "NATO CONFIDENTIAL"),
]


def _catalogue(bundle: PolicyBundle) -> Catalogue:
    tenants = [
        {"metadata": {"name": u.nation.lower()}, "spec": {"nation": u.nation, "clearance": u.clearance.value}}
        for u in USERS
    ]
    return Catalogue(tenants, {(r.kind, r.name): r for r in RESOURCES}, bundle, True)


def test_a_model_with_many_compartments_cannot_stall_the_verification_of_every_bundle() -> None:
    # 2**30 subsets if each compartment were a class of its own: the verification would never end and no
    # nation's bundle would be published. Compared with the resource's set as a whole, they add 3 classes.
    compartments = [f"C{i:02}" for i in range(30)]
    bloated = _resource("fra/bloated-model", "FRA", "NATO SECRET", compartments=compartments)
    cells = class_matrix(PolicyEngine(SHIPPED), USERS, [bloated])
    per_level = {(c.principal.nation, c.principal.clearance) for c in cells}
    assert len(cells) == 3 * len(per_level)
    verification = verify_bundle(SHIPPED, USERS, [*RESOURCES, bloated])
    assert verification.ok, verification.first_problem()
    allowed = {c.principal.compartments for c in cells if c.allowed}
    assert allowed == {tuple(compartments)}  # only a user holding all 30


def test_a_rule_naming_more_groups_than_are_enumerated_is_refused_before_it_reaches_the_bundle() -> None:
    groups = " || ".join(f'principal.groups.contains("g{i}")' for i in range(MAX_ATOMS + 1))
    cedar = f'@id("many") forbid (principal, action, resource) when {{ {groups} }};'
    change = tenant_policy_change_on(_catalogue(SHIPPED), [], "tenant-fra", "many", cedar)
    verification = change.verify()
    assert not verification.ok
    assert verification.unanalysable is not None
    assert f"at most {MAX_ATOMS} are enumerated" in verification.unanalysable


def test_a_permit_for_one_user_on_another_nations_resource_is_caught_as_if_for_every_user() -> None:
    # Past the shape checks (a faulty operator, a hand-edited ConfigMap): France's rule lets the user `jan`
    # read Germany's reports. Proven in a weaker form (every user), it breaks releasability.
    raw = (
        '@id("fra/raw/one-pole") permit (principal, action, resource) '
        'when { resource.owner == "DEU" && principal.sub == "jan" };'
    )
    verification = verify_bundle(SHIPPED.with_nation_rules({"FRA": raw}), USERS, RESOURCES)
    assert verification.weakened == ("fra/raw/one-pole",)
    # The rule is FRA's, so it is consulted only for FRA's users and FRA's resources: it lets FRA's users
    # (not Poland's) read Germany's reports, which no rule of Germany's discloses.
    releasability = verification.result(Invariant.releasability)
    assert releasability.violations > 0
    example = releasability.counterexamples[0]
    assert (example.principal and example.principal.nation, example.resource) == ("FRA", "deu/reports")
    assert example.deciding_policy_ids == ("fra/raw/one-pole",)
    assert not verification.result(Invariant.originator_control).holds


def test_a_nations_rule_ids_cannot_pose_as_another_nations_disclosure() -> None:
    # A TenantPolicy's ids are qualified by the operator (`fra/<policy>/<id>`): whatever it names itself, a
    # rule of France's never counts as Germany's disclosure.
    rules = nation_bundle_rules(
        "FRA",
        [("deu", '@id("deu-disclosure") forbid (principal, action, resource) when { false };')],
    )
    assert '@id("fra/deu/deu-disclosure")' in rules
    verification = verify_bundle(SHIPPED.with_nation_rules({"FRA": rules}), USERS, RESOURCES)
    assert verification.ok, verification.first_problem()
    # Written raw with Germany's prefix into France's part of the bundle, it is caught.
    raw = '@id("deu/x/y") permit (principal, action, resource) when { resource.owner == "FRA" };'
    caught = verify_bundle(SHIPPED.with_nation_rules({"FRA": raw}), USERS, RESOURCES)
    ids = caught.result(Invariant.originator_control).counterexamples
    assert any("without 'fra/'" in example.why for example in ids)
