"""The checks behind the ModelDeployment, DataSet and TenantPolicy webhooks, as data.

Each case changes one thing of a good object in France's namespace; the cluster has Tenants for FRA
(clearance NATO CONFIDENTIAL), DEU and EST.
"""

from __future__ import annotations

from typing import Any

import pytest
from sovereign_operator.resource_validation import (
    NOT_IN_TENANT_NAMESPACE,
    TenantFacts,
    nation_of_namespace,
    problems_with_dataset,
    problems_with_model_deployment,
    problems_with_source,
    problems_with_tenant_policy,
    tenant_facts_by_nation,
)

DIGEST = "ab" * 32
TENANTS = {
    "FRA": TenantFacts("fra", "FRA", "NATO CONFIDENTIAL"),
    "DEU": TenantFacts("deu", "DEU", "NATO SECRET"),
    "EST": TenantFacts("est", "EST", "NATO SECRET"),
}
GOOD_MARKINGS: dict[str, Any] = {"classification": "NATO CONFIDENTIAL", "releasableTo": ["DEU"]}
GOOD_MODEL: dict[str, Any] = {
    "model": "analyst",
    "source": "/models/fra/analyst",
    "sha256": {"model.safetensors": DIGEST},
    "markings": GOOD_MARKINGS,
}
ROOT = "/var/lib/sovereign/sources"  # the operator's dataset_source_root; FRA's documents are under ROOT/fra
GOOD_DATASET: dict[str, Any] = {
    "source": "reports",
    "markings": GOOD_MARKINGS,
    "embedding": {"modelDeployment": "fra-embedder"},
}


def marked(spec: dict[str, Any], **markings: Any) -> dict[str, Any]:
    return {**spec, "markings": {**GOOD_MARKINGS, **markings}}


MODEL_CASES = {
    "the good model": (GOOD_MODEL, "tenant-fra", []),
    "releasable to every member": (marked(GOOD_MODEL, releasableTo=["NATO", "EST"]), "tenant-fra", []),
    "at the clearance": (marked(GOOD_MODEL, classification="NATO RESTRICTED"), "tenant-fra", []),
    "above the clearance": (
        marked(GOOD_MODEL, classification="NATO SECRET"),
        "tenant-fra",
        ["spec.markings.classification: NATO SECRET exceeds the clearance of Tenant fra (NATO CONFIDENTIAL)"],
    ),
    "released to a nation without a Tenant": (
        marked(GOOD_MODEL, releasableTo=["DEU", "POL"]),
        "tenant-fra",
        ["spec.markings.releasableTo: POL has no Tenant"],
    ),
    "released and denied": (
        marked(GOOD_MODEL, deniedNations=["DEU"]),
        "tenant-fra",
        ["spec.markings.deniedNations: DEU is also in releasableTo (released and denied at once)"],
    ),
    "not a nation code": (
        marked(GOOD_MODEL, releasableTo=["XXX"]),
        "tenant-fra",
        ["spec.markings.releasableTo: 'XXX' is neither an ISO 3166-1 alpha-3 nation code nor 'NATO'"],
    ),
    "outside a tenant namespace": (
        GOOD_MODEL,
        "default",
        [
            "metadata.namespace: ModelDeployment must be in a tenant namespace (tenant-<nation>); "
            "default belongs to no Tenant"
        ],
    ),
    "bad digest": (
        {**GOOD_MODEL, "sha256": {"model.safetensors": "abc"}},
        "tenant-fra",
        ["spec: sha256['model.safetensors']: not a lowercase hex sha256 digest"],
    ),
    "unknown field": ({**GOOD_MODEL, "colour": "blue"}, "tenant-fra", ["spec.colour: unknown field"]),
    "code from the model's files": (
        {**GOOD_MODEL, "engineArgs": {"trust_remote_code": True, "speculative_config": {"model": "/x"}}},
        "tenant-fra",
        [
            "spec.engineArgs.speculative_config: refused: would load a second model nobody pinned",
            "spec.engineArgs.trust_remote_code: refused: would run Python code shipped with the model's "
            "files",
        ],
    ),
    "trust_remote_code false is still refused": (
        {**GOOD_MODEL, "engineArgs": {"trust_remote_code": False}},
        "tenant-fra",
        ["spec.engineArgs.trust_remote_code: refused: would run Python code shipped with the model's files"],
    ),
}


@pytest.mark.parametrize(("spec", "namespace", "expected"), MODEL_CASES.values(), ids=MODEL_CASES.keys())
def test_model_deployment_problems(spec: dict[str, Any], namespace: str, expected: list[str]) -> None:
    assert problems_with_model_deployment(spec, namespace, TENANTS) == expected


DATASET_CASES = {
    "the good dataset": (GOOD_DATASET, []),
    "above the clearance": (
        marked(GOOD_DATASET, classification="COSMIC TOP SECRET"),
        [
            "spec.markings.classification: COSMIC TOP SECRET exceeds the clearance of Tenant fra "
            "(NATO CONFIDENTIAL)"
        ],
    ),
    "released to a nation without a Tenant": (
        marked(GOOD_DATASET, releasableTo=["POL"]),
        ["spec.markings.releasableTo: POL has no Tenant"],
    ),
    "overlap not below size": (
        {**GOOD_DATASET, "embedding": {"modelDeployment": "e", "chunkSize": 100, "chunkOverlap": 100}},
        ["spec.embedding: chunkOverlap must be smaller than chunkSize"],
    ),
}


@pytest.mark.parametrize(("spec", "expected"), DATASET_CASES.values(), ids=DATASET_CASES.keys())
def test_dataset_problems(spec: dict[str, Any], expected: list[str]) -> None:
    assert problems_with_dataset(spec, "tenant-fra", TENANTS, ROOT) == expected


def outside(source: str, nation: str = "FRA") -> list[str]:
    return [f"spec.source: {source!r} is outside {nation}'s data root {ROOT}/{nation.lower()}"]


SOURCE_CASES = {
    "relative": ("reports", "FRA", []),
    "relative, nested": ("reports/2026/march.jsonl", "FRA", []),
    "absolute under the root": (f"{ROOT}/fra/reports", "FRA", []),
    "the nation's root itself": (f"{ROOT}/fra", "FRA", []),
    "dot segments that stay inside": ("reports/../notes/./x", "FRA", []),
    "trailing slash, doubled slashes": (f"{ROOT}//fra/reports/", "FRA", []),
    "another nation's corpus, absolute": (
        f"{ROOT}/est/field-reports",
        "FRA",
        outside(f"{ROOT}/est/field-reports"),
    ),
    "another nation's corpus, relative": ("../est/field-reports", "FRA", outside("../est/field-reports")),
    "escaping through a subdirectory": ("reports/../../est", "FRA", outside("reports/../../est")),
    "absolute, escaping with ..": (f"{ROOT}/fra/../est", "FRA", outside(f"{ROOT}/fra/../est")),
    "the platform root": (ROOT, "FRA", outside(ROOT)),
    "a sibling sharing the prefix": (f"{ROOT}/fra-old/reports", "FRA", outside(f"{ROOT}/fra-old/reports")),
    "the nation's code in upper case": (f"{ROOT}/FRA/reports", "FRA", outside(f"{ROOT}/FRA/reports")),
    "anywhere on the host": ("/etc", "FRA", outside("/etc")),
    "deep escape": ("../../../../etc/passwd", "DEU", outside("../../../../etc/passwd", "DEU")),
    "a NUL character": ("reports\x00/../../est", "FRA", ["spec.source: holds a NUL character"]),
}


@pytest.mark.parametrize(("source", "nation", "expected"), SOURCE_CASES.values(), ids=SOURCE_CASES.keys())
def test_a_dataset_source_stays_under_its_nations_data_root(
    source: str, nation: str, expected: list[str]
) -> None:
    assert problems_with_source(source, nation, ROOT) == expected


def test_the_dataset_webhook_names_the_source_it_refuses() -> None:
    spec = {**GOOD_DATASET, "source": "/var/lib/sovereign/sources/deu/notes"}
    assert problems_with_dataset(spec, "tenant-fra", TENANTS, ROOT) == outside(spec["source"])


FORBID = '@id("no-est") forbid (principal, action, resource) when { principal.nationality == "EST" };'
OWN_PERMIT = '@id("pol") permit (principal, action, resource) when { resource.owner == "FRA" };'
POLICY_CASES = {
    "a forbid": ("tenant-fra", FORBID, []),
    "a permit on its own resources": ("tenant-fra", OWN_PERMIT, []),
    "a permit on another nation's resources": (
        "tenant-deu",
        OWN_PERMIT,
        [
            "TenantPolicy tenant-deu/rules: spec.cedar: policy 'pol': a nation may only forbid, or permit on "
            'resources it owns: add `resource.owner == "DEU"` to its when clause'
        ],
    ),
    "outside a tenant namespace": (
        "tenant-pol",
        FORBID,
        [f"{NOT_IN_TENANT_NAMESPACE}; tenant-pol belongs to no Tenant"],
    ),
    "blank": ("tenant-fra", "  ", ["TenantPolicy tenant-fra/rules: spec.cedar: holds no policy"]),
}


@pytest.mark.parametrize(("namespace", "cedar", "expected"), POLICY_CASES.values(), ids=POLICY_CASES.keys())
def test_tenant_policy_problems(namespace: str, cedar: str, expected: list[str]) -> None:
    assert problems_with_tenant_policy("rules", namespace, cedar, TENANTS) == expected


def test_invalid_cedar_names_the_tenant_policy() -> None:
    [problem] = problems_with_tenant_policy("rules", "tenant-fra", "forbid (principal", TENANTS)
    assert problem.startswith("TenantPolicy tenant-fra/rules: spec.cedar: not valid Cedar")


def test_the_oldest_tenant_of_a_nation_owns_it() -> None:
    tenants = [
        {"metadata": {"name": "fra-again", "creationTimestamp": "2026-02-01T00:00:00Z"},
         "spec": {"nation": "FRA", "clearance": "COSMIC TOP SECRET"}},
        {"metadata": {"name": "fra", "creationTimestamp": "2026-01-01T00:00:00Z"},
         "spec": {"nation": "FRA", "clearance": "NATO SECRET"}},
    ]  # fmt: skip
    assert tenant_facts_by_nation(tenants) == {"FRA": TenantFacts("fra", "FRA", "NATO SECRET")}
    assert nation_of_namespace("tenant-fra", ["DEU", "FRA"]) == "FRA"
    assert nation_of_namespace("tenant-fra-2", ["FRA"]) is None
