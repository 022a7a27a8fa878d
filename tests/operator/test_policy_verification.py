"""A bundle that breaks an invariant is never published: the real operator, run first as shipped, then with
a base policy set that lost its clearance limit (a bad upgrade: the package `sovereign_policies` shadowed on
PYTHONPATH), then as shipped again.

While the broken operator runs, the published ConfigMap keeps its version, the TenantPolicy says why it is
not Ready (with the counterexample: a user below the model's classification), a Warning Event says so too,
an edit of the TenantPolicy is held back, and the refusal is retried now and then without being verified or
logged again; the shipped operator publishes that edit on its own at start.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sovereign.policy.bundle import BUNDLE_CONFIGMAP
from tests.helpers import kubectl, wait_until
from tests.operator.broken_policies import shadowed_policies
from tests.operator.harness import Platform, started_operator
from tests.operator.tenants import (
    apply_tenant,
    condition,
    delete_tenant,
    get_json,
    model_deployment,
    tenant_policy_manifest,
    wait_ready,
)

NAMESPACE = "tenant-fra"
ANALYST = model_deployment("fra", "analyst", {"classification": "NATO SECRET"})


def tenant_policy(cedar: str) -> str:
    return tenant_policy_manifest("no-est", cedar, NAMESPACE)


FORBID_EST = '@id("no-est") forbid (principal, action, resource) when { principal.nationality == "EST" };'
FORBID_POL = '@id("no-pol") forbid (principal, action, resource) when { principal.nationality == "POL" };'


def published_version(platform: Platform) -> str | None:
    configmap = get_json(platform.kube, "configmap", BUNDLE_CONFIGMAP, "-n", "sovereign-system") or {}
    return (configmap.get("data") or {}).get("version")


def policy(platform: Platform) -> dict[str, Any]:
    return get_json(platform.kube, "tenantpolicy", "no-est", "-n", NAMESPACE) or {}


def ready_in(platform: Platform, version: str | None) -> dict[str, Any] | None:
    body = policy(platform)
    ready = condition(body, "Ready").get("status") == "True"
    return body if ready and version and (body.get("status") or {}).get("bundleVersion") == version else None


@pytest.fixture
def france(platform: Platform, tmp_path: Path) -> Iterator[None]:
    """Tenant fra Ready with a NATO SECRET model and one TenantPolicy published, by the shipped operator."""
    try:
        with started_operator(platform, tmp_path / "shipped", {}):
            apply_tenant(platform.kube, "fra", "FRA", clearance="NATO SECRET")
            wait_ready(platform.kube, "fra", timeout=60)
            kubectl(platform.kube, "apply", "-f", "-", input=yaml.safe_dump(ANALYST))
            kubectl(platform.kube, "apply", "-f", "-", input=tenant_policy(FORBID_EST))
            wait_until(
                lambda: ready_in(platform, published_version(platform)), "no-est published", timeout=30
            )
        yield
    finally:
        with started_operator(platform, tmp_path / "cleanup", {}):
            kubectl(platform.kube, "delete", "-f", "-", "--ignore-not-found", input=tenant_policy(""))
            delete_tenant(platform.kube, "fra")


def test_a_broken_base_is_refused_and_the_shipped_one_publishes_again(
    platform: Platform, france: None, tmp_path: Path
) -> None:
    kube = platform.kube
    good = published_version(platform)
    shadow = shadowed_policies(tmp_path / "shadow")
    broken_env = {"PYTHONPATH": os.pathsep.join(p for p in (str(shadow), os.environ.get("PYTHONPATH")) if p)}

    with started_operator(platform, tmp_path / "broken", broken_env) as broken:

        def refused() -> dict[str, Any] | None:
            ready = condition(policy(platform), "Ready")
            return ready if ready.get("reason") == "BreaksInvariant" else None

        ready = wait_until(refused, "no-est not Ready: the new bundle breaks an invariant", timeout=30)
        assert ready["status"] == "False"
        assert (
            f"the new policy bundle was refused (bundle {good} stays): breaks no-read-up: "
            in ready["message"]
        )
        assert "FRA user at NATO UNCLASSIFIED" in ready["message"]
        assert "allowed at NATO UNCLASSIFIED to a resource marked NATO SECRET" in ready["message"]
        body = policy(platform)
        assert condition(body, "Accepted")["status"] == "True"  # the base broke, not France's forbid
        assert body["status"]["bundleVersion"] == good
        assert published_version(platform) == good

        kubectl(kube, "apply", "-f", "-", input=tenant_policy(FORBID_POL))  # a real change: held back too

        def refusal_events() -> list[dict[str, Any]] | None:
            events = (get_json(kube, "events", "-n", NAMESPACE) or {}).get("items") or []
            found = [e for e in events if e["reason"] == "PolicyBundleRefused"]
            return found if len(found) >= 2 else None  # at start (resume) and for the edit

        events = wait_until(refusal_events, "Warning Events PolicyBundleRefused", timeout=30)
        assert all(e["type"] == "Warning" and "breaks no-read-up" in e["message"] for e in events)
        assert published_version(platform) == good
        retried = "retry_refused_bundle' succeeded"  # the timer of a refused TenantPolicy (2 s here)
        wait_until(lambda: retried in broken.log_text(), "the refused bundle retried", timeout=10)
        log = broken.log_text()
        # logged once per bundle (the base alone, then with the edit), not at every retry
        assert log.count(f"refused, bundle {good} stays published") == 2
        assert "markings/permit-cleared-releasable-compartmented" in log and "fra/analyst" not in log

    def republished() -> dict[str, Any] | None:
        version = published_version(platform)
        return ready_in(platform, version) if version != good else None

    with started_operator(platform, tmp_path / "shipped-again", {}):
        body = wait_until(republished, "the edited no-est published by the shipped operator", timeout=30)
        assert condition(body, "Ready")["reason"] == "Published"
        configmap = get_json(kube, "configmap", BUNDLE_CONFIGMAP, "-n", "sovereign-system") or {}
        assert '@id("fra/no-est/no-pol")' in configmap["data"]["nation-fra.cedar"]
