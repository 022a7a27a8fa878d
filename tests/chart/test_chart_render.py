"""The chart as Helm renders it: lint-clean, every object valid for Kubernetes, the operator hardened, the
values reaching the operator's environment, the webhook equal to what the operator serves."""

from __future__ import annotations

import base64
import json
from typing import Any

import helm_python
import kubernetes_validate
import pytest
from cryptography import x509

from sovereign.chart_files import chart_file_sources
from tests.chart.rendering import (
    CHART_DIR,
    KUBERNETES_VERSION,
    NAMESPACE,
    REQUIRED_VALUES,
    chart_defaults,
    crd_objects,
    one,
    render_manifests,
    render_objects,
)

DIGEST = "sha256:" + "ab" * 32
CERT_MANAGER_KINDS = {("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "Certificate")}
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "cert-manager": {"webhook": {"certManager": {"enabled": True}}},
    "everything-off": {"webhook": {"enabled": False}, "metrics": {"port": 0}, "audit": {"enabled": False}},
    "gpu-mirror-otel": {
        "image": {"registry": "mirror.internal", "digest": DIGEST},
        "imagePullSecrets": [{"name": "mirror-pull"}],
        "serving": {
            "gpu": {"nodeSelector": {"pool": "gpu"}, "tolerations": [{"key": "gpu", "operator": "Exists"}]}
        },
        "otel": {"endpoint": "http://otel.observability:4318"},
        "audit": {"existingClaim": "audit"},
    },
}


def _operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(objects, "Deployment", "-operator")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _env(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _operator_container(objects)["env"]}


def test_lint_finds_no_errors_or_warnings() -> None:
    report = helm_python.lint(CHART_DIR, REQUIRED_VALUES, strict=True, kube_version=f"v{KUBERNETES_VERSION}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_rendered_object_is_valid_kubernetes(variant: str) -> None:
    objects = render_objects(VARIANTS[variant]) + crd_objects()
    checked = 0
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CERT_MANAGER_KINDS:
            continue  # instances of cert-manager's custom kinds: Kubernetes has no schema for them
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked >= 10


def test_the_operator_runs_hardened_with_two_replicas() -> None:
    objects = render_objects()
    deployment = one(objects, "Deployment", "-operator")
    pod = deployment["spec"]["template"]["spec"]
    container = _operator_container(objects)
    assert deployment["spec"]["replicas"] == 2
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert pod["serviceAccountName"] == "sov-sovereign-operator"
    assert _env(objects)["SOVEREIGN_HEALTH_PORT"] == "8081"


def test_the_webhook_service_selects_the_leader_only() -> None:
    objects = render_objects()
    selector = one(objects, "Service", "-webhook")["spec"]["selector"]
    pod_labels = one(objects, "Deployment", "-operator")["spec"]["template"]["metadata"]["labels"]
    assert selector.pop("sovereign.ai/leader") == "true"
    assert selector.items() <= pod_labels.items()
    env = _env(objects)
    assert env["SOVEREIGN_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["SOVEREIGN_WEBHOOK_MANAGED"] == "false"
    assert env["SOVEREIGN_WEBHOOK_SERVICE"] == f"{NAMESPACE}/sov-sovereign-webhook"


def test_values_reach_the_operator_environment() -> None:
    objects = render_objects(VARIANTS["gpu-mirror-otel"])
    env, container = _env(objects), _operator_container(objects)
    assert container["image"] == f"mirror.internal/sovereign-ai/sovereign@{DIGEST}"
    # One image for the operator and the serving workloads: the nations' Ray pods run the platform image.
    assert env["SOVEREIGN_SERVING_IMAGE"] == container["image"]
    assert json.loads(env["SOVEREIGN_SERVING_GPU_NODE_SELECTOR"]) == {"pool": "gpu"}
    assert json.loads(env["SOVEREIGN_SERVING_GPU_TOLERATIONS"]) == [{"key": "gpu", "operator": "Exists"}]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel.observability:4318"
    assert env["VAULT_ADDR"] == "https://vault.vault.svc:8200"
    assert env["VAULT_TOKEN"] == {"secretKeyRef": {"name": "vault-token", "key": "token"}}
    assert env["SOVEREIGN_RUNTIME"] == "kuberay"
    assert env["SOVEREIGN_AUDIT_DIR"] == "/var/lib/sovereign/audit"
    pod = one(objects, "Deployment", "-operator")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "mirror-pull"}]
    audit = next(v for v in pod["volumes"] if v["name"] == "audit")
    assert audit["persistentVolumeClaim"] == {"claimName": "audit"}
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]


def test_the_tag_defaults_to_the_app_version() -> None:
    assert _operator_container(render_objects())["image"] == "ghcr.io/sovereign-ai/sovereign:0.1.0"


def test_a_serving_image_of_its_own_keeps_the_mirror() -> None:
    values = {"image": {"registry": "mirror.internal"}, "serving": {"image": {"repository": "site/serving"}}}
    assert _env(render_objects(values))["SOVEREIGN_SERVING_IMAGE"] == "mirror.internal/site/serving:0.1.0"


def test_metrics_get_a_service_port() -> None:
    objects = render_objects()
    service = one(objects, "Service", "-metrics")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics"}]
    assert _env(objects)["SOVEREIGN_METRICS_PORT"] == "9090"


def test_the_webhook_configuration_is_what_the_operator_serves() -> None:
    """Names, paths and rules equal those kopf would register for the operator's validation handlers."""
    import kopf
    import sovereign_operator.admission_server  # noqa: F401  (registers the handlers)
    from kopf._cogs.structs import references
    from kopf._core.engines.admission import build_webhooks

    resources = [
        references.Resource("sovereign.ai", "v1alpha1", plural)
        for plural in ("tenants", "tenantpolicies", "modeldeployments", "datasets")
    ]
    client_config = {"service": {"namespace": NAMESPACE, "name": "sov-sovereign-webhook", "port": 443}}
    expected = build_webhooks(
        kopf.get_default_registry()._webhooks.get_all_handlers(),
        resources=resources,
        name_suffix="sovereign.ai",
        client_config=client_config,  # type: ignore[arg-type]
    )
    rendered = one(render_objects(), "ValidatingWebhookConfiguration")["webhooks"]
    for webhook in rendered:
        webhook["clientConfig"].pop("caBundle")
    for webhook in expected:
        webhook.pop("objectSelector")  # None: kopf's handlers have no label filter
    key = lambda w: w["name"]  # noqa: E731
    assert sorted(rendered, key=key) == sorted(expected, key=key)


def test_the_generated_certificate_serves_the_service_and_matches_the_ca_bundle() -> None:
    objects = render_objects()
    secret = one(objects, "Secret", "-webhook-tls")
    ca_bundle = one(objects, "ValidatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["caBundle"]
    assert ca_bundle == secret["data"]["ca.crt"]
    certificate = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"sov-sovereign-webhook.{NAMESPACE}.svc" in names.get_values_for_type(x509.DNSName)
    ca = x509.load_pem_x509_certificate(base64.b64decode(ca_bundle))
    certificate.verify_directly_issued_by(ca)
    deployment = one(objects, "Deployment", "-operator")
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "webhook-tls", "secret": {"secretName": secret["metadata"]["name"]}} in volumes


def test_with_cert_manager_the_certificate_is_injected_not_generated() -> None:
    objects = render_objects(VARIANTS["cert-manager"])
    assert not [o for o in objects if o["kind"] == "Secret"]
    certificate = one(objects, "Certificate", "-webhook")
    assert certificate["spec"]["secretName"] == "sov-sovereign-webhook-tls"
    # A CA between the self-signed Issuer and the serving certificate: the caBundle survives renewals.
    ca_issuer = one(objects, "Issuer", "-webhook-ca")
    assert certificate["spec"]["issuerRef"] == {"kind": "Issuer", "name": ca_issuer["metadata"]["name"]}
    ca = one(objects, "Certificate", "-webhook-ca")
    assert ca["spec"]["isCA"] is True
    assert ca["spec"]["secretName"] == ca_issuer["spec"]["ca"]["secretName"]
    self_signed = one(objects, "Issuer", "-selfsigned")
    assert ca["spec"]["issuerRef"] == {"kind": "Issuer", "name": self_signed["metadata"]["name"]}
    configuration = one(objects, "ValidatingWebhookConfiguration")
    annotation = configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert annotation == f"{NAMESPACE}/{certificate['metadata']['name']}"
    assert all("caBundle" not in w["clientConfig"] for w in configuration["webhooks"])


def test_the_policies_configmap_ships_the_repository_policies() -> None:
    data = one(render_objects(), "ConfigMap", "-policies")["data"]
    sources = chart_file_sources()
    assert set(data) == {source.name for source in sources.values()}
    for source in sources.values():
        assert data[source.name] == source.read_text()


def test_notes_say_what_was_installed() -> None:
    notes = render_manifests()["sovereign/templates/NOTES.txt"]
    assert "sov-sovereign-operator" in notes and "vault policy write" in notes


def test_the_chart_readme_lists_every_value() -> None:
    readme = (CHART_DIR / "README.md").read_text()

    def undocumented(node: dict[str, Any], prefix: str) -> list[str]:
        missing = []
        for key, value in node.items():
            path = f"{prefix}{key}"
            if f"| `{path}` |" in readme:
                continue  # a row of its own (a map such as operator.resources is one row)
            if isinstance(value, dict) and value:
                missing += undocumented(value, f"{path}.")
            else:
                missing.append(path)
        return missing

    assert undocumented(chart_defaults(), "") == []


def test_token_review_rights_only_when_asked_for() -> None:
    """system:auth-delegator lets a token review any other token: bound only with vault.authDelegator."""

    def delegations(values: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            o
            for o in render_objects(values)
            if o["kind"] == "ClusterRoleBinding" and o["roleRef"]["name"] == "system:auth-delegator"
        ]

    assert delegations({}) == []
    [binding] = delegations({"vault": {"authDelegator": True}})
    [subject] = binding["subjects"]
    assert subject["kind"] == "ServiceAccount" and subject["namespace"] == NAMESPACE
    assert subject["name"].endswith("-operator")
