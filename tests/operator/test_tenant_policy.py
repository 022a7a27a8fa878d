"""A nation's own rules and its resources' markings, driven with kubectl against the real operator.

One operator (serving its webhooks) and Tenant fra (clearance NATO CONFIDENTIAL), with deu and est so that
France's example model may be released to them, are shared by the module. A TenantPolicy that is applied
joins the bundle in ConfigMap `sovereign-system/sovereign-policy-bundle`; one the nation may not add is
refused at apply time and leaves the bundle as it was; deleting one takes its rules out again.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sovereign_operator.admission_server import ADMISSION_CONFIGURATION
from sovereign_operator.config import DEFAULT_DATASET_SOURCE_ROOT

from sovereign.policy.bundle import BUNDLE_CONFIGMAP, PolicyBundle
from tests.helpers import kubectl, wait_until
from tests.operator.harness import OperatorProcess, Platform
from tests.operator.tenants import (
    apply_tenant,
    condition,
    delete_tenant,
    get_json,
    tenant_policy_manifest,
    wait_ready,
)

EXAMPLES = Path(__file__).parents[2] / "examples"
LIAISON = EXAMPLES / "policies" / "fra-liaison.yaml"
ANALYST = EXAMPLES / "models" / "fra-analyst.yaml"
INTEL = EXAMPLES / "datasets" / "fra-intel-summaries.yaml"
NAMESPACE = "tenant-fra"


def denied(kind: str) -> str:
    return f'admission webhook "validate-{kind}.{ADMISSION_CONFIGURATION}" denied the request: '


def tenant_policy(name: str, cedar: str, namespace: str = NAMESPACE) -> str:
    return tenant_policy_manifest(name, cedar, namespace)


def _apply(platform: Platform, manifest: str) -> subprocess.CompletedProcess[str]:
    return kubectl(platform.kube, "apply", "-f", "-", input=manifest, check=False)


def published(platform: Platform) -> dict[str, str]:
    configmap = get_json(platform.kube, "configmap", BUNDLE_CONFIGMAP, "-n", "sovereign-system")
    return dict((configmap or {}).get("data") or {})


@pytest.fixture(scope="module")
def nations(platform: Platform, running_operator_with_webhook: OperatorProcess) -> Iterator[None]:
    apply_tenant(platform.kube, "fra", "FRA", clearance="NATO CONFIDENTIAL")
    apply_tenant(platform.kube, "deu", "DEU")
    apply_tenant(platform.kube, "est", "EST")
    wait_ready(platform.kube, "fra", timeout=60)  # its namespace exists
    probe = tenant_policy("probe", '@id("x") forbid (principal, action, resource);', namespace="default")
    wait_until(
        lambda: denied("tenant-policy") in _apply(platform, probe).stderr,
        "the webhook refuses a TenantPolicy outside a tenant namespace",
        timeout=30,
    )
    try:
        yield
    finally:
        for name in ("fra", "deu", "est"):
            kubectl(platform.kube, "delete", "tenant", name, "--ignore-not-found", "--wait=false")
        for name in ("fra", "deu", "est"):
            delete_tenant(platform.kube, name)


def test_applied_policy_is_published_and_deleting_it_withdraws_its_rules(
    platform: Platform, nations: None
) -> None:
    kube = platform.kube
    before = wait_until(lambda: published(platform).get("version"), "the base bundle is published")

    kubectl(kube, "apply", "-f", str(LIAISON))

    def published_status() -> dict[str, Any] | None:
        body = get_json(kube, "tenantpolicy", "fra-liaison", "-n", NAMESPACE) or {}
        status = body.get("status") or {}
        data = published(platform)
        ready = condition(body, "Ready").get("status") == "True"
        return status if ready and status.get("bundleVersion") == data.get("version") != before else None

    status = wait_until(published_status, "fra-liaison Ready in the published bundle", timeout=30)
    assert status["policies"] == 2
    assert condition({"status": status}, "Accepted")["status"] == "True"
    data = published(platform)
    assert PolicyBundle.from_configmap_data(data).version == data["version"]  # consistent, not torn
    assert '@id("fra/fra-liaison/est-liaison")' in data["nation-fra.cedar"]
    assert '@id("fra/fra-liaison/limit-contractors-datasets")' in data["nation-fra.cedar"]
    table = kubectl(kube, "get", "tenantpolicies", "-A").stdout
    row = next(line.split() for line in table.splitlines() if "fra-liaison" in line)
    assert row[:5] == [NAMESPACE, "fra-liaison", "2", data["version"], "True"], table
    events = (get_json(kube, "events", "-n", NAMESPACE) or {}).get("items") or []
    assert any(e["reason"] == "PolicyBundlePublished" and data["version"] in e["message"] for e in events)

    kubectl(kube, "delete", "-f", str(LIAISON))
    wait_until(
        lambda: "nation-fra.cedar" not in published(platform) and published(platform)["version"] == before,
        "France's rules withdrawn from the bundle",
        timeout=30,
    )


REFUSED = {
    "a permit on another nation's resources": (
        tenant_policy(
            "grab-deu",
            '@id("take") permit (principal, action, resource) when { resource.owner == "DEU" };',
        ),
        "TenantPolicy tenant-fra/grab-deu: spec.cedar: policy 'take': a nation may only forbid, or permit on "
        'resources it owns: add `resource.owner == "FRA"` to its when clause',
    ),
    "invalid Cedar": (
        tenant_policy("broken", "forbid (principal, action"),
        "TenantPolicy tenant-fra/broken: spec.cedar: not valid Cedar",
    ),
    "an attribute the schema does not have": (
        tenant_policy("rank", '@id("x") forbid (principal, action, resource) when { principal.rank > 2 };'),
        "TenantPolicy tenant-fra/rank: spec.cedar: does not validate against the schema: policy 'x'",
    ),
    "outside a tenant namespace": (
        tenant_policy("stray", '@id("x") forbid (principal, action, resource);', namespace="default"),
        "TenantPolicy must be in a tenant namespace (tenant-<nation>); default belongs to no Tenant",
    ),
}


@pytest.mark.parametrize(("manifest", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_policy_the_nation_may_not_add_is_refused_and_the_bundle_stays(
    platform: Platform, nations: None, manifest: str, message: str
) -> None:
    before = published(platform)["version"]
    refused = _apply(platform, manifest)
    assert refused.returncode != 0
    assert denied("tenant-policy") + message in refused.stderr, refused.stderr
    name, namespace = yaml.safe_load(manifest)["metadata"].values()
    assert get_json(platform.kube, "tenantpolicy", name, "-n", namespace) is None
    assert published(platform)["version"] == before


def marked_model(name: str, **markings: Any) -> str:
    body = yaml.safe_load(ANALYST.read_text())
    body["metadata"]["name"] = name
    body["spec"]["markings"] = {**body["spec"]["markings"], **markings}
    return yaml.safe_dump(body)


def model_with_engine_args(name: str, **engine_args: Any) -> str:
    body = yaml.safe_load(ANALYST.read_text())
    body["metadata"]["name"] = name
    body["spec"]["engineArgs"] = engine_args
    return yaml.safe_dump(body)


MODELS_REFUSED = {
    "code shipped with the model's files": (
        model_with_engine_args("fra-remote-code", trust_remote_code=True),
        "spec.engineArgs.trust_remote_code: refused: would run Python code shipped with the model's files",
    ),
    "above the Tenant's clearance": (
        marked_model("fra-secret", classification="NATO SECRET"),
        "spec.markings.classification: NATO SECRET exceeds the clearance of Tenant fra (NATO CONFIDENTIAL)",
    ),
    "released to a nation without a Tenant": (
        marked_model("fra-to-pol", releasableTo=["DEU", "POL"]),
        "spec.markings.releasableTo: POL has no Tenant",
    ),
}


@pytest.mark.parametrize(("manifest", "message"), MODELS_REFUSED.values(), ids=MODELS_REFUSED.keys())
def test_model_with_markings_its_tenant_may_not_give_is_refused(
    platform: Platform, nations: None, manifest: str, message: str
) -> None:
    refused = _apply(platform, manifest)
    assert refused.returncode != 0
    assert denied("model-deployment") + message in refused.stderr, refused.stderr
    assert (
        get_json(
            platform.kube, "modeldeployment", yaml.safe_load(manifest)["metadata"]["name"], "-n", NAMESPACE
        )
        is None
    )


def test_example_model_is_admitted(platform: Platform, nations: None) -> None:
    admitted = kubectl(platform.kube, "apply", "-f", str(ANALYST), check=False)
    assert admitted.returncode == 0, admitted.stderr
    labelled = kubectl(
        platform.kube, "label", "-n", NAMESPACE, "modeldeployment", "fra-analyst", "x=y", check=False
    )
    assert labelled.returncode == 0, labelled.stderr  # metadata-only updates are never refused
    kubectl(platform.kube, "delete", "-f", str(ANALYST))


def test_a_nations_admin_cannot_point_a_dataset_at_another_nations_documents(
    platform: Platform, nations: None
) -> None:
    """FRA's example DataSet (a source relative to FRA's data root) is admitted; the same DataSet naming
    Estonia's corpus, absolutely or with `..`, is refused naming spec.source, and is never created."""
    admitted = kubectl(platform.kube, "apply", "-f", str(INTEL), check=False)
    assert admitted.returncode == 0, admitted.stderr
    kubectl(platform.kube, "delete", "-f", str(INTEL))
    root = DEFAULT_DATASET_SOURCE_ROOT  # the operator's setting, unset here
    for source in (f"{root}/est/field-reports", "../est/field-reports", "/etc"):
        manifest = yaml.safe_load(INTEL.read_text())
        manifest["metadata"] = {"name": "est-reports", "namespace": NAMESPACE}
        manifest["spec"]["source"] = source
        refused = _apply(platform, yaml.safe_dump(manifest))
        assert refused.returncode != 0
        expected = f"spec.source: {source!r} is outside FRA's data root {root}/fra"
        assert denied("dataset") + expected in refused.stderr, refused.stderr
        assert get_json(platform.kube, "dataset", "est-reports", "-n", NAMESPACE) is None
