"""Bad Tenants are refused at `kubectl apply` time, with a message naming the field, and nothing is made.

The CRD's schema refuses what it can express (enum nation and clearance, quantity pattern, minimums,
unknown fields); the validating webhook refuses the rest (malformed quantities, rotation period, subjects,
one Tenant per nation, immutable nation). Both answer before the object exists, so the operator (running
beside, as `running_operator`) never sees a refused Tenant: no namespace, no Vault key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import hvac
import pytest

from tests.helpers import kubectl, wait_until
from tests.operator.admission import DENIED, apply_manifest, tenant_yaml
from tests.operator.harness import OperatorProcess, Platform


def _transit_key_exists(platform: Platform, nation: str) -> bool:
    try:
        platform.root_vault().secrets.transit.read_key(name=f"tenant-{nation.lower()}", mount_point="transit")
    except hvac.exceptions.InvalidPath:
        return False
    return True


def _exists(platform: Platform, *what: str) -> bool:
    return kubectl(platform.kube, "get", *what, check=False).returncode == 0


REFUSED = {
    "invalid nation code": (tenant_yaml("bad-nation", "XXA"), 'spec.nation: Unsupported value: "XXA"'),
    "alpha-2 nation code": (tenant_yaml("bad-nation-2", "AD"), 'spec.nation: Unsupported value: "AD"'),
    "unknown clearance": (
        tenant_yaml("and", "AND", clearance="ULTRA SECRET"),
        'spec.clearance: Unsupported value: "ULTRA SECRET"',
    ),
    "negative cpu": (
        tenant_yaml("lie", "LIE", '  quotas: {cpu: "-1"}\n'),
        'spec.quotas.cpu: Invalid value: "-1"',
    ),
    "negative gpus": (
        tenant_yaml("vat", "VAT", "  quotas: {gpus: -2}\n"),
        "spec.quotas.gpus: Invalid value: -2",
    ),
    "malformed cpu": (
        tenant_yaml("syc", "SYC", '  quotas: {cpu: "1.2.3"}\n'),
        DENIED + 'spec.quotas.cpu: "1.2.3" is not a Kubernetes quantity',
    ),
    "malformed memory": (
        tenant_yaml("mdv", "MDV", '  quotas: {memory: "5iM"}\n'),
        DENIED + 'spec.quotas.memory: "5iM" is not a Kubernetes quantity',
    ),
    "rotation below a second": (
        tenant_yaml("brb", "BRB", "  keyRotation: {period: 500ms}\n"),
        DENIED + 'spec.keyRotation.period: "500ms" is shorter than 1s',
    ),
    "service account admin without namespace": (
        tenant_yaml("grd", "GRD", "  admins: [{kind: ServiceAccount, name: ci}]\n"),
        DENIED + "spec.admins[0].namespace: a ServiceAccount subject needs its namespace",
    ),
    "identity without keys": (
        tenant_yaml("kna", "KNA", "  identity: {issuer: https://id.kna, audience: sovereign}\n"),
        DENIED + "spec.identity: needs jwks or jwksUri",
    ),
    "unknown field": (tenant_yaml("lca", "LCA", "  colour: blue\n"), 'unknown field "spec.colour"'),
}


@pytest.mark.parametrize(("manifest", "expected"), REFUSED.values(), ids=REFUSED.keys())
def test_bad_tenant_is_refused_naming_the_field(
    platform: Platform,
    admission_webhook: None,
    running_operator: OperatorProcess,
    manifest: str,
    expected: str,
) -> None:
    refused = apply_manifest(platform, manifest)
    assert refused.returncode != 0
    assert expected in refused.stderr
    name = manifest.split("name: ")[1].split("}")[0]
    nation = manifest.split("nation: ")[1].split("\n")[0]
    assert not _exists(platform, "tenant", name)
    assert not _exists(platform, "namespace", f"tenant-{nation.lower()}")
    assert not _transit_key_exists(platform, nation)


def _ready(platform: Platform, name: str) -> bool:
    result = kubectl(platform.kube, "get", "tenant", name, "-o", "json", check=False)
    if result.returncode != 0:
        return False
    conditions = json.loads(result.stdout).get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@pytest.fixture
def ready_tenant(platform: Platform, running_operator: OperatorProcess) -> Iterator[str]:
    """Tenant `smr` (nation SMR), Ready; offboarded again after the test."""
    kubectl(platform.kube, "apply", "-f", "-", input=tenant_yaml("smr", "SMR"))
    wait_until(lambda: _ready(platform, "smr"), "Tenant smr Ready", timeout=60)
    try:
        yield "smr"
    finally:
        kubectl(platform.kube, "delete", "tenant", "smr", "--ignore-not-found", "--wait=false")
        wait_until(lambda: not _exists(platform, "tenant", "smr"), "Tenant smr offboarded", timeout=60)


def test_second_tenant_for_a_nation_is_refused(
    platform: Platform, admission_webhook: None, ready_tenant: str
) -> None:
    refused = apply_manifest(platform, tenant_yaml("san-marino-again", "SMR"))
    assert refused.returncode != 0
    assert DENIED + "spec.nation: 'SMR' already belongs to Tenant 'smr'" in refused.stderr
    assert not _exists(platform, "tenant", "san-marino-again")


def test_nation_cannot_change(platform: Platform, admission_webhook: None, ready_tenant: str) -> None:
    refused = apply_manifest(platform, tenant_yaml(ready_tenant, "AIA"))
    assert refused.returncode != 0
    assert DENIED + "spec.nation: is immutable (was 'SMR', now 'AIA')" in refused.stderr
    live = json.loads(kubectl(platform.kube, "get", "tenant", ready_tenant, "-o", "json").stdout)
    assert live["spec"]["nation"] == "SMR"
    assert not _exists(platform, "namespace", "tenant-aia")


def test_valid_changes_are_admitted(platform: Platform, admission_webhook: None, ready_tenant: str) -> None:
    admitted = apply_manifest(
        platform, tenant_yaml(ready_tenant, "SMR", '  quotas: {cpu: "500m", memory: 1Gi}\n')
    )
    assert admitted.returncode == 0, admitted.stderr
    note = "example.test/note=kept"
    annotated = kubectl(platform.kube, "annotate", "tenant", ready_tenant, note, check=False)
    assert annotated.returncode == 0, annotated.stderr  # metadata-only updates are never refused
