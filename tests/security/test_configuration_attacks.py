"""A Tenant claiming another nation's token issuer, tried with kubectl as a platform engineer would.

A gateway trusts every Tenant's issuer; two Tenants naming one issuer is a configuration it refuses as a
whole, and then it serves nothing (503 `config_refused`, tests/serving/gateway/test_gateway_on_ray.py). So
such a Tenant must never reach a gateway's configuration:
- admitted anyway (here before the webhook is registered, as when it is down or two Tenants are created at
  once), the operator keeps the older Tenant: the newer one is Ready=False `IssuerConflict` naming the
  other, is left out of every gateway's configuration (tests/operator/test_tenant_validation.py), and LUX
  stays Ready; the same for an existing Tenant whose issuer is changed to LUX's;
- with the validating webhook, `kubectl apply` is refused naming the field and the other Tenant.
The first test runs before the module's webhook is registered (pytest keeps the file's order).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sovereign_devstack.operator_identity import WEBHOOK_CONFIGURATION

from tests.helpers import kubectl, wait_until
from tests.operator.admission import DENIED
from tests.operator.harness import Platform
from tests.operator.tenants import apply_tenant, condition, delete_tenant, tenant, tenant_manifest, wait_ready

LUX_ISSUER = "https://identity.sovereign.local/lux"  # LUX's dev issuer, published in its status
NLD_ADMINS = [{"kind": "Group", "name": "nld-admins"}]  # as the package fixture applies NLD


def claiming_lux(audience: str = "sovereign-lux") -> dict[str, Any]:
    return {"issuer": LUX_ISSUER, "audience": audience, "jwksUri": "https://keys.example.invalid/jwks"}


def ready_reason(kube: Any, name: str) -> tuple[str, str, str] | None:
    found = condition(tenant(kube, name), "Ready")
    return (found["status"], found["reason"], found["message"]) if found else None


@pytest.fixture
def twin(nations: Platform) -> Iterator[str]:
    yield "bel"
    delete_tenant(nations.kube, "bel")


def test_a_tenant_admitted_with_another_nations_issuer_is_kept_out(nations: Platform, twin: str) -> None:
    kube = nations.kube
    registered = kubectl(kube, "get", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION, check=False)
    assert registered.returncode != 0, "this attack needs the webhook not yet registered"
    assert tenant(kube, "lux")["status"]["identity"]["issuer"] == LUX_ISSUER

    apply_tenant(kube, twin, "BEL", identity=claiming_lux())  # a new Tenant with LUX's issuer
    status, reason, message = wait_until(
        lambda: (found := ready_reason(kube, twin)) and found[1] == "IssuerConflict" and found,
        "the twin Ready=False IssuerConflict",
    )
    assert status == "False" and "Tenant lux" in message and LUX_ISSUER in message
    assert ready_reason(kube, "lux")[:2] == ("True", "Provisioned")  # type: ignore[index]

    # An existing, newer Tenant changed to LUX's issuer: left out too, LUX keeps its issuer.
    apply_tenant(kube, "nld", "NLD", admins=NLD_ADMINS, identity=claiming_lux("sovereign-nld"))
    try:
        wait_until(
            lambda: (found := ready_reason(kube, "nld")) and found[1] == "IssuerConflict",
            "NLD Ready=False IssuerConflict",
        )
        assert ready_reason(kube, "lux")[:2] == ("True", "Provisioned")  # type: ignore[index]
    finally:
        apply_tenant(kube, "nld", "NLD", admins=NLD_ADMINS)  # its own dev issuer again
        wait_ready(kube, "nld")


def test_a_tenant_claiming_another_nations_issuer_is_refused_at_admission(
    nations: Platform,
    admission_webhook: None,
) -> None:
    kube = nations.kube
    refused = kubectl(
        kube, "apply", "-f", "-", input=tenant_manifest("bel", "BEL", identity=claiming_lux()), check=False
    )
    assert refused.returncode != 0
    assert (
        DENIED + f"spec.identity.issuer: '{LUX_ISSUER}' is already the token issuer of Tenant 'lux' (LUX)"
    ) in refused.stderr
    assert kubectl(kube, "get", "tenant", "bel", check=False).returncode != 0  # nothing was made

    changed = tenant_manifest("nld", "NLD", admins=NLD_ADMINS, identity=claiming_lux("sovereign-nld"))
    refused = kubectl(kube, "apply", "-f", "-", input=changed, check=False)
    assert refused.returncode != 0 and "spec.identity.issuer" in refused.stderr and "'lux'" in refused.stderr
    assert "identity" not in tenant(kube, "nld")["spec"]


# -- every CRD fuzzed through the admission webhook ---------------------------------------------------------

CRD_FUZZ_EXAMPLES = 100  # per kind (derandomized: the same cases each run)
FUZZ_NAME = "fuzzed"
VALID: dict[str, tuple[str, dict[str, Any]]] = {  # kind → (plural, a spec admitted as it is)
    "Tenant": (
        "tenants",
        {
            "nation": "MCO",
            "displayName": "Monaco",
            "clearance": "NATO SECRET",
            "quotas": {"cpu": "2", "memory": "4Gi", "gpus": 0, "requestsPerMinute": 60},
            "admins": [{"kind": "Group", "name": "mco-admins"}],
            "keyRotation": {"period": "720h"},
        },
    ),
    "ModelDeployment": (
        "modeldeployments",
        {
            "model": "analyst",
            "source": "/models/tiny-llama",
            "sha256": {"model.safetensors": "0" * 64},
            "task": "generate",
            "engine": "transformers",
            "resources": {"cpu": "1", "memory": "2Gi"},
            "replicas": 1,
            "maxTokens": 64,
            "markings": {"classification": "NATO RESTRICTED", "releasableTo": ["NLD"]},
        },
    ),
    "DataSet": (
        "datasets",
        {
            "source": "field-reports",
            "markings": {"classification": "NATO RESTRICTED", "releasableTo": ["NLD"]},
            "embedding": {"modelDeployment": "lux-embedder", "chunkSize": 800, "chunkOverlap": 100},
        },
    ),
    "TenantPolicy": (
        "tenantpolicies",
        {
            "description": "NLD liaison officers may use LUX's models.",
            "cedar": '@id("nld-liaison")\npermit (principal, action, resource)\n'
            'when { resource.owner == "LUX" && principal.nationality == "NLD" };\n',
        },
    ),
}


def _paths(spec: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of `spec` (objects only, lists as a whole)."""
    found = []
    for key, value in spec.items():
        found.append((*prefix, key))
        if isinstance(value, dict):
            found += _paths(value, (*prefix, key))
    return found


def _mutated(spec: dict[str, Any], changes: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    """`spec` with each change: a path set to a value, or removed (the value `REMOVE`)."""
    result = copy.deepcopy(spec)
    for path, value in changes:
        parent = result
        for key in path[:-1]:
            if not isinstance(parent.get(key), dict):
                parent[key] = {}
            parent = parent[key]
        if value is REMOVE:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = value
    return result


REMOVE = object()


def hostile_values() -> Any:
    from hypothesis import strategies as st

    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=80),
        st.sampled_from(
            [
                "",
                "-1",
                "1.2.3",
                "5iM",
                "500ms",
                "0s",
                "NATO SECRET",
                "COSMIC TOP SECRET",
                "NATO",
                "FRA",
                "XXA",
            ]
            + [
                "../../etc/passwd",
                "/etc/passwd",
                "x" * 5000,
                "é" * 300,
                "permit(principal, action, resource);",
            ]
        ),
    )
    return st.one_of(
        st.just(REMOVE),
        scalars,
        st.lists(scalars, max_size=4),
        st.dictionaries(st.text(max_size=12), scalars, max_size=3),
    )


def fuzz_kind(api: Any, kind: str, counts: dict[str, int], failures: list[str]) -> None:
    """CRD_FUZZ_EXAMPLES mutations of the valid `kind` created with dry run; each outcome counted in
    `counts`, each unclear one appended to `failures`."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from kubernetes.client.exceptions import ApiException

    plural, spec = VALID[kind]

    @given(
        changes=st.lists(st.tuples(st.sampled_from(_paths(spec)), hostile_values()), min_size=1, max_size=3)
    )
    @settings(
        max_examples=CRD_FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def one(changes: list[tuple[tuple[str, ...], Any]]) -> None:
        body = {
            "apiVersion": "sovereign.ai/v1alpha1",
            "kind": kind,
            "metadata": {"name": FUZZ_NAME},
            "spec": _mutated(spec, changes),
        }
        where = () if kind == "Tenant" else ("tenant-lux",)
        create = api.create_cluster_custom_object if kind == "Tenant" else api.create_namespaced_custom_object
        try:
            create("sovereign.ai", "v1alpha1", *where, plural, body, dry_run="All", _request_timeout=30)
            counts["admitted"] += 1
        except ApiException as error:
            message = str((json.loads(error.body or "{}") or {}).get("message") or "")
            counts["refused"] += 1
            if error.status >= 500 or not message.strip() or "Traceback" in message:
                failures.append(f"{kind} {error.status} {message[:300]!r} for {body['spec']!r}")

    one()


def test_fuzzed_custom_resources_are_admitted_or_refused_clearly(
    nations: Platform, admission_webhook: None
) -> None:
    """Hostile inputs, generated (hypothesis): each CRD's valid spec with one to three fields replaced by
    anything JSON holds (or removed), sent through the API server's schema and the product's admission
    webhook (a server-side dry run, as `kubectl apply --dry-run=server`). Every object is admitted or refused
    with a message (never a server error, never a Python traceback, within the client's timeout), and
    nothing is made."""
    from kubernetes.client import CustomObjectsApi

    from sovereign.clients.kubernetes import load_api_client

    api = CustomObjectsApi(load_api_client(str(nations.kube.kubeconfig)))
    counts = {kind: {"admitted": 0, "refused": 0} for kind in VALID}
    failures: list[str] = []
    started = time.monotonic()
    for kind in VALID:
        fuzz_kind(api, kind, counts[kind], failures)
    elapsed = time.monotonic() - started
    total = sum(sum(tally.values()) for tally in counts.values())
    print(f"\nfuzzed the CRDs through the webhook: {total} objects in {elapsed:.1f} s: {counts}")
    assert not failures, "\n".join(failures[:10])
    for kind, (plural, _) in VALID.items():  # dry runs: nothing was made
        where = [] if kind == "Tenant" else ["-n", "tenant-lux"]
        assert kubectl(nations.kube, "get", plural, FUZZ_NAME, *where, check=False).returncode != 0
