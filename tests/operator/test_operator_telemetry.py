"""The operator's traces and metrics, from the real `python -m sovereign_operator` on the devstack.

One operator exports spans to a real OTLP/HTTP receiver and serves Prometheus metrics on a free port. A
Tenant becomes Ready: its reconcile span carries the nation and outcome success, and has CLIENT spans for its
Kubernetes and Vault calls in the same trace; no token of Vault reaches the receiver. A Tenant whose own
Vault (spec.vault) is down fails its reconcile, and the failure counter says so by the error's type.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sovereign_devstack.otlp_receiver import OtlpReceiver
from sovereign_devstack.processes import free_loopback_port

from tests.helpers import kubectl, wait_until
from tests.operator.harness import OperatorProcess, Platform
from tests.operator.tenants import apply_tenant, condition, delete_tenant, tenant, wait_ready

READY_NAME, READY_NATION = "telemetry-lva", "LVA"
FAILING_NAME, FAILING_NATION = "telemetry-hrv", "HRV"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_loopback_port()


@pytest.fixture(scope="module")
def operator_extra_env(
    receiver: OtlpReceiver, metrics_port: int, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    # Outside a pod there is no projected ServiceAccount token: a stand-in file makes the login to a
    # nation's Vault go straight to that Vault (which is down for FAILING_NATION).
    token_file = tmp_path_factory.mktemp("sa") / "token"
    token_file.write_text("not-a-real-jwt")
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "SOVEREIGN_METRICS_PORT": str(metrics_port),
        "SOVEREIGN_SERVICE_ACCOUNT_TOKEN_FILE": str(token_file),
    }


@pytest.fixture(scope="module")
def ready_tenant(platform: Platform, running_operator: OperatorProcess) -> Iterator[dict[str, Any]]:
    apply_tenant(platform.kube, READY_NAME, READY_NATION)
    try:
        yield wait_ready(platform.kube, READY_NAME, timeout=20)
    finally:
        delete_tenant(platform.kube, READY_NAME, timeout=30)


def _reconcile_spans(receiver: OtlpReceiver, nation: str, outcome: str) -> list[dict[str, Any]]:
    return [
        span
        for span in receiver.spans()
        if span["name"] == "reconcile Tenant"
        and span["attributes"].get("sovereign.tenant") == nation
        and span["attributes"].get("sovereign.outcome") == outcome
    ]


def _descendants(spans: list[dict[str, Any]], root: dict[str, Any]) -> list[dict[str, Any]]:
    in_trace = [span for span in spans if span["trace_id"] == root["trace_id"]]
    found, frontier = [], {root["span_id"]}
    while frontier:
        children = [span for span in in_trace if span["parent_span_id"] in frontier]
        found += children
        frontier = {span["span_id"] for span in children}
    return found


def _metric_samples(port: int, name: str) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith(name)
    ]


def test_a_tenant_reconcile_is_one_span_with_kubernetes_and_vault_calls_inside_and_no_token(
    platform: Platform, receiver: OtlpReceiver, ready_tenant: dict[str, Any]
) -> None:
    def reconciled_with_children() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        spans = receiver.spans()
        for root in _reconcile_spans(receiver, READY_NATION, "success"):
            children = _descendants(spans, root)
            names = {span["name"].split(" ")[0] for span in children}
            if {"k8s", "vault"} <= names:
                return root, children
        return None

    root, children = wait_until(reconciled_with_children, "a reconcile Tenant span with children", 10)
    assert root["service"] == "sovereign-operator"
    assert root["attributes"]["sovereign.kind"] == "Tenant"
    assert root["attributes"]["k8s.namespace.name"] == "tenant-lva"
    assert root["attributes"]["sovereign.object.name"] == READY_NAME
    assert all(child["kind"] == "SPAN_KIND_CLIENT" for child in children)
    vault_calls = [child for child in children if child["name"].startswith("vault ")]
    assert any(
        call["name"] == "vault POST /v1/transit/keys/{name}"
        and call["attributes"]["url.path"] == "/v1/transit/keys/tenant-lva"
        for call in vault_calls
    ), sorted({call["name"] for call in vault_calls})
    kube_calls = [child for child in children if child["name"].startswith("k8s ")]
    assert any(call["attributes"].get("k8s.namespace.name") == "tenant-lva" for call in kube_calls)
    assert all(isinstance(call["attributes"]["http.response.status_code"], int) for call in kube_calls)

    # Renewing the Lease every few seconds is housekeeping, not a trace an SRE should wade through.
    assert not any("leases" in span["name"] for span in receiver.spans()), "Lease renewals were traced"

    # Neither the operator's Vault token nor the root token ever leaves in a span.
    tokens = [platform.operator_token.encode(), platform.root_token.encode()]
    assert not any(token in body for body in receiver.raw_bodies() for token in tokens)
    assert not any(
        platform.operator_token in json.dumps(span) or platform.root_token in json.dumps(span)
        for span in receiver.spans()
    )


def test_metrics_show_reconcile_durations_and_count_a_failed_reconcile(
    platform: Platform, ready_tenant: dict[str, Any], metrics_port: int, receiver: OtlpReceiver
) -> None:
    durations = _metric_samples(metrics_port, "sovereign_reconcile_duration_seconds")
    assert any(
        name == "sovereign_reconcile_duration_seconds_count"
        and labels["kind"] == "Tenant"
        and labels["outcome"] == "success"
        and value >= 1
        for name, labels, value in durations
    ), durations

    # The nation's own Vault is down: its reconcile fails (and is retried) — a real, cheap failure.
    closed_port = free_loopback_port()
    nation_vault = {"address": f"http://127.0.0.1:{closed_port}"}
    apply_tenant(platform.kube, FAILING_NAME, FAILING_NATION, vault=nation_vault)
    try:

        def failures() -> list[tuple[str, dict[str, str], float]]:
            return [
                sample
                for sample in _metric_samples(metrics_port, "sovereign_reconcile_failures_total")
                if sample[1]["kind"] == "Tenant" and sample[2] >= 1
            ]

        [(_, labels, _)] = wait_until(failures, "a failed Tenant reconcile counted", timeout=10)
        assert labels["reason"] == "ConnectionError"
        assert condition(tenant(platform.kube, FAILING_NAME), "KeysReady")["reason"] == "VaultUnreachable"
        # Its span is exported in the next batch (OTEL_BSP_SCHEDULE_DELAY), not at once.
        wait_until(lambda: _reconcile_spans(receiver, FAILING_NATION, "retry"), "a retry span", timeout=10)
    finally:
        # Back to the platform's Vault, so that offboarding can complete.
        kubectl(
            platform.kube,
            "patch",
            "tenant",
            FAILING_NAME,
            "--type=json",
            "-p",
            '[{"op": "remove", "path": "/spec/vault"}]',
        )
        delete_tenant(platform.kube, FAILING_NAME, timeout=30)


def test_offboarding_is_a_reconcile_span_with_outcome_deleted(
    platform: Platform, receiver: OtlpReceiver, ready_tenant: dict[str, Any]
) -> None:
    delete_tenant(platform.kube, READY_NAME, timeout=30)
    wait_until(
        lambda: _reconcile_spans(receiver, READY_NATION, "deleted"), "a deleted reconcile span", timeout=10
    )
