"""The catalogue built from cluster objects, `check_access` and the access-matrix report, without a cluster.

Tenants carry inline key sets, so tokens are validated as the CLI validates them; the end-to-end test
(test_cli_check_e2e.py) drives the same through the `sovereign` command against the real operator.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from rich.console import Console

from sovereign.access_check import check_access
from sovereign.catalogue import BASE_ONLY_NOTE, Catalogue, bundle_from_configmap, resources_from_objects
from sovereign.cli import access_matrix_commands
from sovereign.domain.markings import Classification, ResourceKind
from sovereign.identity.tokens import TokenRejected
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.nation_rules import nation_bundle_rules

KEYS = {n: ed25519.Ed25519PrivateKey.generate() for n in ("FRA", "DEU", "EST")}
CLEARANCE = {"FRA": "NATO SECRET", "DEU": "NATO SECRET", "EST": "NATO RESTRICTED"}


def tenant_object(nation: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(KEYS[nation].public_key()))
    identity = {
        "issuer": f"https://id.{nation.lower()}.example",
        "audience": f"sovereign-{nation.lower()}",
        "jwks": {"keys": [{**jwk, "kid": nation.lower(), "alg": "EdDSA"}]},
    }
    spec = {"nation": nation, "clearance": CLEARANCE[nation], "identity": identity}
    return {"metadata": {"name": nation.lower(), "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": spec}


def model(name: str, namespace: str, markings: Any, model_name: str | None = None) -> dict[str, Any]:
    spec = {"model": model_name or name, "markings": markings}
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def dataset(name: str, namespace: str, markings: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"markings": markings}}


SECRET_TO_DEU = {"classification": "NATO SECRET", "releasableTo": ["DEU"]}
TENANTS = [tenant_object(n) for n in ("FRA", "DEU", "EST")]
MODELS = [
    model("analyst", "tenant-fra", SECRET_TO_DEU),
    model("stray", "default", SECRET_TO_DEU),  # not in a tenant namespace
    model("bad", "tenant-fra", {"classification": "TOP"}),  # invalid markings
    model("twin-a", "tenant-deu", {"classification": "NATO UNCLASSIFIED"}, model_name="twin"),
    model("twin-b", "tenant-deu", {"classification": "NATO SECRET"}, model_name="twin"),
]
DATASETS = [dataset("reports", "tenant-est", {"classification": "NATO RESTRICTED", "releasableTo": ["NATO"]})]


def catalogue(bundle: PolicyBundle | None = None) -> Catalogue:
    resources, warnings = resources_from_objects(TENANTS, MODELS, DATASETS)
    published = bundle is not None
    return Catalogue(TENANTS, resources, bundle or PolicyBundle.load(), published, warnings)


def token(nation: str, clearance: str = "NATO SECRET", **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": f"https://id.{nation.lower()}.example",
        "aud": f"sovereign-{nation.lower()}",
        "sub": f"user-{nation.lower()}",
        "nationality": nation,
        "clearance": clearance,
        "iat": now,
        "exp": now + 600,
        **claims,
    }
    return jwt.encode(payload, KEYS[nation], algorithm="EdDSA", headers={"kid": nation.lower()})


def test_catalogue_holds_tenant_resources_and_warns_about_the_rest() -> None:
    resources, warnings = resources_from_objects(TENANTS, MODELS, DATASETS)
    assert sorted(resources) == [(ResourceKind.dataset, "est/reports"), (ResourceKind.model, "fra/analyst")]
    analyst = resources[(ResourceKind.model, "fra/analyst")]
    assert (analyst.markings.owner, analyst.markings.releasable_to) == ("FRA", ["DEU"])
    text = "\n".join(warnings)
    assert "ModelDeployment default/stray skipped: not in a tenant namespace" in text
    assert "ModelDeployment tenant-fra/bad skipped: invalid markings (classification" in text
    assert "Model deu/twin skipped: claimed by several objects" in text


def test_absent_bundle_is_the_base_and_a_published_one_is_read_back() -> None:
    base, published = bundle_from_configmap(None)
    assert (base.version, published) == (PolicyBundle.load().version, False)
    rules = nation_bundle_rules(
        "EST",
        [
            (
                "no-deu",
                '@id("x") forbid (principal, action, resource) when { principal.nationality == "DEU" };',
            )
        ],
    )
    with_rules = PolicyBundle.load().with_nation_rules({"EST": rules})
    read, published = bundle_from_configmap(with_rules.to_configmap_data())
    assert (read.version, published) == (with_rules.version, True)


def test_deu_user_may_invoke_the_model_released_to_deu() -> None:
    result = check_access(catalogue(), token("DEU"), "fra/analyst")
    assert result.decision.allowed, result.decision.reasons
    assert result.decision.marking is not None
    assert result.decision.marking.classification is Classification.NATO_SECRET
    assert result.decision.marking.releasable_to == ["DEU", "FRA"]
    body = result.as_dict()
    assert body["note"] == BASE_ONLY_NOTE and body["principal"]["issuerNation"] == "DEU"


def test_est_user_is_denied_with_a_reason() -> None:
    result = check_access(catalogue(), token("EST", "NATO RESTRICTED"), "fra/analyst")
    assert not result.decision.allowed
    assert result.decision.reasons == ["fra/analyst: forbidden by markings/limit-clearance"]


def test_capped_clearance_is_reported() -> None:
    result = check_access(catalogue(), token("EST", "COSMIC TOP SECRET"), "est/reports")
    assert result.clearance_capped and result.principal.clearance is Classification.NATO_RESTRICTED


@pytest.mark.parametrize("name", ["fra/nothing", "default/stray", "fra/bad", "deu/twin", "est/reports"])
def test_unknown_and_invisible_models_get_the_same_answer(name: str) -> None:
    decision = check_access(catalogue(), token("FRA"), name).decision
    assert (decision.allowed, decision.reasons, decision.deciding_policy_ids) == (
        False,
        [f"unknown resource {name!r}"],
        [],
    )


def test_a_nations_published_rule_decides() -> None:
    cedar = '@id("no-deu") forbid (principal, action, resource) when { principal.nationality == "DEU" };'
    bundle = PolicyBundle.load().with_nation_rules({"FRA": nation_bundle_rules("FRA", [("keep-out", cedar)])})
    decision = check_access(catalogue(bundle), token("DEU"), "fra/analyst").decision
    assert not decision.allowed and decision.deciding_policy_ids == ["fra/keep-out/no-deu"]


def test_a_refused_token_raises_with_its_reason() -> None:
    with pytest.raises(TokenRejected) as rejected:
        check_access(catalogue(), token("DEU", nationality="FRA"), "fra/analyst")
    assert rejected.value.reason_code == "nationality-mismatch"


def test_matrix_report_and_its_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    report = access_matrix_commands.matrix_report(catalogue())
    assert [t["nation"] for t in report["tenants"]] == ["DEU", "EST", "FRA"]
    cells = {(c["nation"], c["clearance"], c["resource"]): c["allowed"] for c in report["cells"]}
    assert cells[("DEU", "NATO SECRET", "fra/analyst")] is True
    assert cells[("DEU", "NATO CONFIDENTIAL", "fra/analyst")] is False
    assert cells[("EST", "NATO RESTRICTED", "fra/analyst")] is False
    assert cells[("EST", "NATO RESTRICTED", "est/reports")] is True
    assert len(report["cells"]) == 2 * (4 + 2 + 4)  # DEU and FRA: 4 levels; EST: 2
    only = access_matrix_commands.matrix_report(catalogue(), nations=["est"])
    assert {c["nation"] for c in only["cells"]} == {"EST"}

    console = Console(width=200, record=True)
    monkeypatch.setattr(access_matrix_commands, "console", console)
    access_matrix_commands.print_report(report)
    wide = console.export_text()
    assert "fra/analyst" in wide and "✓" in wide and "✗" in wide and "deciding policies" in wide
    assert BASE_ONLY_NOTE in wide
    access_matrix_commands.print_report(report, long=True)
    long = console.export_text()
    assert "│ EST    │ NATO RESTRICTED   │ fra/analyst │ ✗ deny   │ markings/limit-clearance" in long
    narrow = Console(width=40, record=True)  # too narrow for the wide table: the long format
    monkeypatch.setattr(access_matrix_commands, "console", narrow)
    access_matrix_commands.print_report(report)
    assert "decision" in narrow.export_text()
