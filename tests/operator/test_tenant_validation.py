"""The Tenant checks behind the admission webhook, as data: each case changes one field of a good spec."""

from __future__ import annotations

from typing import Any

import pytest
from sovereign_operator.tenant_validation import (
    problems_with_issuer_uniqueness,
    problems_with_nation_uniqueness,
    problems_with_tenant_spec,
    problems_with_tenant_update,
    rotation_period_seconds,
    tenants_sharing_an_issuer,
)

GOOD_SPEC: dict[str, Any] = {
    "nation": "LUX",
    "displayName": "Luxembourg",
    "clearance": "NATO SECRET",
    "quotas": {"cpu": "2", "memory": "8Gi", "gpus": 0, "maxModels": 4},
    "admins": [{"kind": "Group", "name": "lux-admins"}],
    "keyRotation": {"period": "720h"},
}


def with_changes(**changes: Any) -> dict[str, Any]:
    spec = {**GOOD_SPEC}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


ACCEPTED = {
    "the good spec": GOOD_SPEC,
    "millicores": with_changes(quotas={"cpu": "500m"}),
    "decimal exponent": with_changes(quotas={"memory": "1e9"}),
    "explicit plus sign": with_changes(quotas={"cpu": "+4"}),
    "zero quota": with_changes(quotas={"cpu": "0"}),
    "compound period": with_changes(keyRotation={"period": "1h30m"}),
    "one second period": with_changes(keyRotation={"period": "1s"}),
    "service account admin with namespace": with_changes(
        admins=[{"kind": "ServiceAccount", "name": "ci", "namespace": "lux-ci"}]
    ),
    "identity with inline jwks": with_changes(
        identity={"issuer": "https://id.lux", "audience": "sovereign", "jwks": {"keys": []}}
    ),
    "identity with jwks uri": with_changes(
        identity={"issuer": "https://id.lux", "audience": "sovereign", "jwksUri": "https://id.lux/jwks"}
    ),
    "no optional sections": {"nation": "LUX", "displayName": "Luxembourg", "clearance": "NATO UNCLASSIFIED"},
}

REJECTED = {
    "unknown nation": (with_changes(nation="XXX"), "spec.nation: 'XXX' is not an ISO 3166-1 alpha-3"),
    "alpha-2 nation": (with_changes(nation="LU"), "spec.nation:"),
    "unknown clearance": (with_changes(clearance="TOP SECRET"), "spec.clearance: Input should be"),
    "empty display name": (with_changes(displayName=""), "spec.displayName:"),
    "negative cpu": (with_changes(quotas={"cpu": "-1"}), 'spec.quotas.cpu: "-1" is negative'),
    "negative memory": (
        with_changes(quotas={"memory": "-512Mi"}),
        'spec.quotas.memory: "-512Mi" is negative',
    ),
    "cpu as a YAML number": (with_changes(quotas={"cpu": 2}), "spec.quotas.cpu: Input should be a valid"),
    "two decimal points": (
        with_changes(quotas={"cpu": "1.2.3"}),
        'spec.quotas.cpu: "1.2.3" is not a Kubernetes quantity',
    ),
    "suffix in wrong order": (
        with_changes(quotas={"memory": "5iM"}),
        'spec.quotas.memory: "5iM" is not a Kubernetes quantity',
    ),
    "words": (with_changes(quotas={"memory": "lots"}), 'spec.quotas.memory: "lots" is not a Kubernetes'),
    "not a number": (with_changes(quotas={"cpu": "NaN"}), 'spec.quotas.cpu: "NaN" is not a Kubernetes'),
    "surrounding blanks": (with_changes(quotas={"cpu": " 1"}), 'spec.quotas.cpu: " 1" is not a Kubernetes'),
    "negative gpus": (with_changes(quotas={"gpus": -1}), "spec.quotas.gpus: Input should be greater than"),
    "negative max models": (with_changes(quotas={"maxModels": -3}), "spec.quotas.maxModels:"),
    "unknown top-level field": (with_changes(colour="blue"), "spec.colour: unknown field"),
    "unknown quota field": (with_changes(quotas={"disks": "3"}), "spec.quotas.disks: unknown field"),
    "unknown subject kind": (with_changes(admins=[{"kind": "Robot", "name": "r2"}]), "spec.admins[0].kind:"),
    "service account without namespace": (
        with_changes(admins=[{"kind": "ServiceAccount", "name": "ci"}]),
        "spec.admins[0].namespace: a ServiceAccount subject needs its namespace",
    ),
    "a Kubernetes identity as admin": (
        with_changes(admins=[{"kind": "Group", "name": "system:serviceaccounts"}]),
        "spec.admins[0].name: a nation's admin cannot be a Kubernetes identity (system:*)",
    ),
    "a platform ServiceAccount as admin": (
        with_changes(
            admins=[{"kind": "ServiceAccount", "name": "sovereign-operator", "namespace": "sovereign-system"}]
        ),
        "spec.admins[0].namespace: a nation's admin cannot be a ServiceAccount of sovereign-system",
    ),
    "group with a namespace": (
        with_changes(admins=[{"kind": "Group", "name": "g", "namespace": "x"}]),
        "spec.admins[0].namespace: a Group subject has no namespace",
    ),
    "period in days": (
        with_changes(keyRotation={"period": "30d"}),
        'spec.keyRotation.period: "30d" is not a duration',
    ),
    "period below a second": (
        with_changes(keyRotation={"period": "500ms"}),
        'spec.keyRotation.period: "500ms" is shorter than 1s',
    ),
    "zero period": (with_changes(keyRotation={"period": "0s"}), 'spec.keyRotation.period: "0s" is shorter'),
    "identity without keys": (
        with_changes(identity={"issuer": "https://id.lux", "audience": "sovereign"}),
        "spec.identity: needs jwks or jwksUri",
    ),
    "missing clearance": (
        {"nation": "LUX", "displayName": "Luxembourg"},
        "spec.clearance: Field required",
    ),
}


@pytest.mark.parametrize("spec", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted(spec: dict[str, Any]) -> None:
    assert problems_with_tenant_spec(spec) == []


@pytest.mark.parametrize(("spec", "expected"), REJECTED.values(), ids=REJECTED.keys())
def test_rejected_naming_the_field(spec: dict[str, Any], expected: str) -> None:
    problems = problems_with_tenant_spec(spec)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


def test_every_problem_is_reported_at_once() -> None:
    spec = with_changes(nation="XXX", quotas={"cpu": "-1", "memory": "lots"}, colour="blue")
    fields = sorted(problem.split(":")[0] for problem in problems_with_tenant_spec(spec))
    assert fields == ["spec.colour", "spec.nation", "spec.quotas.cpu", "spec.quotas.memory"]


UPDATES = {
    "same nation": ("LUX", "LUX", []),
    "nation changed": ("LUX", "MLT", ["spec.nation: is immutable (was 'LUX', now 'MLT')"]),
}


@pytest.mark.parametrize(("old", "new", "expected"), UPDATES.values(), ids=UPDATES.keys())
def test_nation_is_immutable(old: str, new: str, expected: list[str]) -> None:
    problems = problems_with_tenant_update(with_changes(nation=old), with_changes(nation=new))
    assert [p.split(";")[0] for p in problems] == expected


UNIQUENESS = {
    "no other tenants": ("lux", [], []),
    "itself on update": ("lux", [("lux", "LUX")], []),
    "other nations only": ("lux", [("mlt", "MLT"), ("bad", None)], []),
    "nation taken": ("lux-2", [("lux", "LUX")], ["spec.nation: 'LUX' already belongs to Tenant 'lux'"]),
}


@pytest.mark.parametrize(("name", "existing", "expected"), UNIQUENESS.values(), ids=UNIQUENESS.keys())
def test_one_tenant_per_nation(
    name: str, existing: list[tuple[str, str | None]], expected: list[str]
) -> None:
    problems = problems_with_nation_uniqueness(name, "LUX", existing)
    assert [p.split(";")[0] for p in problems] == expected


LUX_DEV_ISSUER = "https://identity.sovereign.local/lux"


def tenant(
    name: str, nation: str, issuer: str | None = None, published: str | None = None, at: str = ""
) -> Any:
    spec: dict[str, Any] = {"nation": nation}
    if issuer is not None:
        spec["identity"] = {"issuer": issuer, "audience": "a", "jwksUri": "https://keys.example/jwks"}
    status = {"identity": {"issuer": published}} if published else {}
    return {"metadata": {"name": name, "creationTimestamp": at}, "spec": spec, "status": status}


ISSUERS = {
    "own dev issuer": ({"nation": "NLD"}, [tenant("lux", "LUX", published=LUX_DEV_ISSUER)], []),
    "itself on update": (
        {"nation": "LUX", "identity": {"issuer": "https://idp.lu", "audience": "a"}},
        [tenant("lux", "LUX", published=LUX_DEV_ISSUER)],
        [],
    ),
    "another's dev issuer": (
        {"nation": "NLD", "identity": {"issuer": LUX_DEV_ISSUER, "audience": "a"}},
        [tenant("lux", "LUX")],
        [f"spec.identity.issuer: '{LUX_DEV_ISSUER}' is already the token issuer of Tenant 'lux' (LUX); each"],
    ),
    "another's own issuer": (
        {"nation": "NLD", "identity": {"issuer": "https://idp.lu", "audience": "a"}},
        [tenant("lux", "LUX", issuer="https://idp.lu")],
        ["spec.identity.issuer: 'https://idp.lu' is already the token issuer of Tenant 'lux' (LUX)"],
    ),
    "a dev issuer another names": (
        {"nation": "LUX"},
        [tenant("nld", "NLD", issuer=LUX_DEV_ISSUER)],
        [f"spec.identity: without it, the dev issuer '{LUX_DEV_ISSUER}' would be used, already the token"],
    ),
}


@pytest.mark.parametrize(("spec", "existing", "expected"), ISSUERS.values(), ids=ISSUERS.keys())
def test_one_tenant_per_token_issuer(spec: dict[str, Any], existing: list[Any], expected: list[str]) -> None:
    problems = problems_with_issuer_uniqueness("lux" if spec["nation"] == "LUX" else "nld", spec, existing)
    assert len(problems) == len(expected)
    assert all(p.startswith(e) for p, e in zip(problems, expected, strict=True)), problems


def test_the_older_tenant_keeps_a_shared_issuer_and_only_it_is_served() -> None:
    tenants = [
        tenant("nld", "NLD", issuer=LUX_DEV_ISSUER, at="2026-01-02T00:00:00Z"),
        tenant("lux", "LUX", published=LUX_DEV_ISSUER, at="2026-01-01T00:00:00Z"),
        tenant("bel", "BEL", published="https://identity.sovereign.local/bel", at="2025-01-01T00:00:00Z"),
        tenant("new", "MLT"),  # no issuer published yet: not a gateway's concern
    ]
    assert tenants_sharing_an_issuer(tenants) == {"nld": ("lux", LUX_DEV_ISSUER)}
    same_time = [tenant("b", "NLD", published="https://x"), tenant("a", "LUX", published="https://x")]
    assert tenants_sharing_an_issuer(same_time) == {"b": ("a", "https://x")}


PERIODS = {"720h": 2_592_000.0, "1h30m": 5400.0, "90s": 90.0, "1.5s": 1.5, "250ms": 0.25}


@pytest.mark.parametrize(("period", "seconds"), PERIODS.items(), ids=PERIODS.keys())
def test_rotation_period_seconds(period: str, seconds: float) -> None:
    assert rotation_period_seconds(period) == pytest.approx(seconds)


@pytest.mark.parametrize("period", ["", "30d", "h", "1h 30m", "-1h"])
def test_rotation_period_that_is_not_a_duration(period: str) -> None:
    assert rotation_period_seconds(period) is None
