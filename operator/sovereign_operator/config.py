"""The operator's configuration, read once from the environment at start (never from module globals later).

The same variables configure it on a real cluster (Helm sets them) and on the devstack (`sovereign up`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from sovereign.domain.platform_names import (
    NATION_VAULT_OPERATOR_ROLE,
    OPERATOR_SERVICE_ACCOUNT,
    PLATFORM_NAMESPACE,
)
from sovereign.serving_contract import platform_image_reference
from sovereign_operator.constants import SERVICE_ACCOUNT_TOKEN_FILE

# The nations' document sources on kuberay: on the data volume each nation's Ray head mounts at
# /var/lib/sovereign (builders/rayservice.py DATA_MOUNT_PATH), beside its index stores.
DEFAULT_DATASET_SOURCE_ROOT = "/var/lib/sovereign/sources"

# OTEL_* variables that may carry the collector's credentials or point at files only the operator has
# (OTel docs: "OTLP Exporter Configuration", headers and certificates): never copied into Serve configs or
# RayService specs, which other readers see.
_PRIVATE_TELEMETRY = ("HEADERS", "CERTIFICATE", "CLIENT_KEY")


def passed_on_telemetry_env(env: Mapping[str, str]) -> dict[str, str]:
    """The OTEL_* variables the nations' Ray processes get, without credentials or operator-local files."""
    return {
        name: value
        for name, value in env.items()
        if name.startswith("OTEL_") and not any(part in name for part in _PRIVATE_TELEMETRY)
    }


class OperatorConfig(BaseModel):
    vault_addr: str = Field(description="The platform's Vault (VAULT_ADDR).")
    vault_token: str | None = Field(
        None, description="A token with the sovereign-operator policy (VAULT_TOKEN)."
    )
    vault_cacert: str | None = Field(
        None,
        description="The PEM file of the CA that signed the platform Vault's certificate (VAULT_CACERT); "
        "None: the system's trust store. Passed on, as PEM, to the nations' processes that log in to it.",
    )
    vault_namespace: str = Field(
        "vault", description="Namespace of the platform's Vault (for NetworkPolicy)."
    )
    vault_port: int = 8200
    platform_namespace: str = PLATFORM_NAMESPACE
    nation_vault_role: str = Field(
        NATION_VAULT_OPERATOR_ROLE,
        description="Kubernetes auth role the operator logs in with at a nation's own Vault (spec.vault).",
    )
    operator_service_account: str = Field(
        OPERATOR_SERVICE_ACCOUNT,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$",
        description="`namespace/name` of the operator's ServiceAccount, for TokenRequest outside a pod.",
    )
    service_account_token_file: str = Field(
        SERVICE_ACCOUNT_TOKEN_FILE,
        description="The projected ServiceAccount token; used instead of TokenRequest when the file exists.",
    )
    reconcile_interval_seconds: float = Field(30.0, description="How often drift is checked and repaired.")
    lease_name: str = "sovereign-operator"
    lease_duration_seconds: float = Field(
        15.0, description="How long a leader's Lease holds without renewal."
    )
    liveness_port: int | None = Field(
        None, description="Serve kopf's liveness probe on 127.0.0.1:<port>/healthz while leading."
    )
    health_port: int | None = Field(
        None,
        description="Serve /healthz and /readyz on 0.0.0.0:<port> from start, leader or standby (the "
        "Deployment's probes; kopf's liveness endpoint answers only while leading).",
    )
    pod_name: str | None = Field(
        None, description="This pod (downward API): labelled sovereign.ai/leader=true while it leads."
    )
    pod_namespace: str | None = Field(None, description="The namespace of pod_name.")
    webhook_host: str | None = Field(
        None, description="Serve the validating webhook here (devstack: 127.0.0.1)."
    )
    webhook_port: int = 9443
    webhook_service: str | None = Field(
        None, description="In a cluster: the Service in front of the webhook (`name` or `namespace/name`)."
    )
    webhook_cert_file: str | None = Field(
        None, description="The webhook's TLS certificate (PEM); absent: kopf makes a self-signed one."
    )
    webhook_key_file: str | None = Field(None, description="The private key of webhook_cert_file (PEM).")
    webhook_managed: bool = Field(
        True,
        description="kopf creates and patches the ValidatingWebhookConfiguration; false when something else "
        "owns it (the Helm chart), so that the two never fight over it.",
    )
    runtime: Literal["kuberay", "local-ray", "none"] = Field(
        "kuberay",
        description="Where models run: a RayService per nation (KubeRay), one local Ray cluster's dashboard "
        "(the devstack), or nowhere (ModelDeployments are admitted but not served).",
    )
    ray_dashboard_url: str | None = Field(None, description="local-ray: the Ray dashboard (Serve REST API).")
    serve_http_port: int | None = Field(None, description="local-ray: Ray Serve's HTTP port.")
    ray_token: str | None = Field(None, repr=False, description="local-ray: the Ray cluster's auth token.")
    gateway_url: str | None = Field(
        None, description="Base URL clients use; a nation's endpoint is <gateway_url>/<nation>/v1."
    )
    serving_interval_seconds: float = Field(
        5.0, gt=0, description="How often the Serve config and the models' status are brought up to date."
    )
    serving_cpu_scale: float = Field(
        1.0, gt=0, le=1, description="Share of a replica's CPU request that Ray reserves (devstack: small)."
    )
    serving_memory_scale: float = Field(1.0, gt=0, le=1, description="The same for memory.")
    serving_image: str = Field(
        default_factory=platform_image_reference,
        description="kuberay: the image of the nations' Ray clusters (default: the platform image, which "
        "holds Ray of the pinned version and the serving code).",
    )
    serving_gpu_node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="kuberay: nodeSelector of the Ray worker pods that request GPUs (JSON in the env).",
    )
    serving_gpu_tolerations: list[dict[str, Any]] = Field(
        default_factory=list,
        description="kuberay: tolerations added to those pods, besides the nvidia.com/gpu one (JSON list).",
    )
    metrics_port: int | None = Field(
        None, description="Serve the operator's Prometheus metrics on 0.0.0.0:<port>/metrics."
    )
    audit_dir: str | None = Field(
        None,
        description="Root of the nations' audit logs (`<dir>/<nation>/admin/` is written by the operator, "
        "`decisions/` by the gateways on local-ray); unset: nothing is audited.",
    )
    service_account_token_dir: str | None = Field(
        None,
        description="local-ray: where each nation's serving ServiceAccount token is kept for its Ray "
        "processes (`<dir>/<nation>/token`, refreshed outside the operator, as a kubelet projects a pod's "
        "token); its audit writer, ingest jobs and retriever log in to Vault with it. The operator only "
        "passes the path; it never requests a nation's token.",
    )
    dataset_dir: str | None = Field(
        None,
        description="local-ray: root of the nations' encrypted dataset indexes (`<dir>/<nation>/<name>/`), "
        "written by the ingest jobs and read by the retrievers; unset: DataSets are not ingested. kuberay: "
        "the volume path in the nation's Ray pods is used instead.",
    )
    dataset_source_root: str = Field(
        DEFAULT_DATASET_SOURCE_ROOT,
        pattern=r"^/",
        description="Root of the nations' document sources: a nation's DataSets may name a `source` only "
        "under `<root>/<nation lowercase>/` (relative to it, or absolute), refused at admission otherwise, "
        "and its ingest job refuses a real path (symlinks followed) outside it. kuberay: the default, on the "
        "nation's data volume mounted in its Ray head; local-ray: a directory on this host (the devstack: "
        "`<state dir>/sources`).",
    )
    dataset_resync_seconds: float = Field(
        300.0,
        gt=0,
        description="How often an ingested DataSet's job runs again (it skips an unchanged source).",
    )
    dataset_poll_seconds: float = Field(
        5.0, gt=0, description="How often a DataSet's running ingest job is polled (its timer's interval)."
    )
    telemetry_env: dict[str, str] = Field(
        default_factory=dict,
        description="The OTEL_* variables of the operator's environment, passed on to the nations' Ray "
        "Serve applications so that their spans go to the same OTLP endpoint.",
    )

    @field_validator("serving_gpu_node_selector", "serving_gpu_tolerations", mode="before")
    @classmethod
    def _parse_json(cls, value: object) -> object:
        # The environment carries these as JSON text (the chart writes them with toJson).
        return json.loads(value) if isinstance(value, str) else value

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> OperatorConfig:
        env = os.environ if environ is None else environ
        mapping = {
            "vault_addr": "VAULT_ADDR",
            "vault_token": "VAULT_TOKEN",
            "vault_cacert": "VAULT_CACERT",
            "vault_namespace": "SOVEREIGN_VAULT_NAMESPACE",
            "vault_port": "SOVEREIGN_VAULT_PORT",
            "platform_namespace": "SOVEREIGN_PLATFORM_NAMESPACE",
            "nation_vault_role": "SOVEREIGN_NATION_VAULT_ROLE",
            "operator_service_account": "SOVEREIGN_OPERATOR_SERVICE_ACCOUNT",
            "service_account_token_file": "SOVEREIGN_SERVICE_ACCOUNT_TOKEN_FILE",
            "reconcile_interval_seconds": "SOVEREIGN_RECONCILE_INTERVAL_SECONDS",
            "lease_name": "SOVEREIGN_LEASE_NAME",
            "lease_duration_seconds": "SOVEREIGN_LEASE_DURATION_SECONDS",
            "liveness_port": "SOVEREIGN_LIVENESS_PORT",
            "health_port": "SOVEREIGN_HEALTH_PORT",
            "pod_name": "SOVEREIGN_POD_NAME",
            "pod_namespace": "SOVEREIGN_POD_NAMESPACE",
            "webhook_host": "SOVEREIGN_WEBHOOK_HOST",
            "webhook_port": "SOVEREIGN_WEBHOOK_PORT",
            "webhook_service": "SOVEREIGN_WEBHOOK_SERVICE",
            "webhook_cert_file": "SOVEREIGN_WEBHOOK_CERT_FILE",
            "webhook_key_file": "SOVEREIGN_WEBHOOK_KEY_FILE",
            "webhook_managed": "SOVEREIGN_WEBHOOK_MANAGED",
            "runtime": "SOVEREIGN_RUNTIME",
            "ray_dashboard_url": "SOVEREIGN_RAY_DASHBOARD_URL",
            "serve_http_port": "SOVEREIGN_SERVE_HTTP_PORT",
            "ray_token": "SOVEREIGN_RAY_TOKEN",
            "gateway_url": "SOVEREIGN_GATEWAY_URL",
            "serving_interval_seconds": "SOVEREIGN_SERVING_INTERVAL_SECONDS",
            "serving_cpu_scale": "SOVEREIGN_SERVING_CPU_SCALE",
            "serving_memory_scale": "SOVEREIGN_SERVING_MEMORY_SCALE",
            "serving_image": "SOVEREIGN_SERVING_IMAGE",
            "serving_gpu_node_selector": "SOVEREIGN_SERVING_GPU_NODE_SELECTOR",
            "serving_gpu_tolerations": "SOVEREIGN_SERVING_GPU_TOLERATIONS",
            "metrics_port": "SOVEREIGN_METRICS_PORT",
            "audit_dir": "SOVEREIGN_AUDIT_DIR",
            "service_account_token_dir": "SOVEREIGN_SERVICE_ACCOUNT_TOKEN_DIR",
            "dataset_dir": "SOVEREIGN_DATASET_DIR",
            "dataset_source_root": "SOVEREIGN_DATASET_SOURCE_ROOT",
            "dataset_resync_seconds": "SOVEREIGN_DATASET_RESYNC_SECONDS",
            "dataset_poll_seconds": "SOVEREIGN_DATASET_POLL_SECONDS",
        }
        values: dict[str, object] = {field: env[var] for field, var in mapping.items() if env.get(var)}
        values["telemetry_env"] = passed_on_telemetry_env(env)
        if "vault_addr" not in values:
            raise ValueError("VAULT_ADDR is not set: the operator cannot reach Vault")
        config = cls.model_validate(values)
        if config.runtime == "local-ray" and not (config.ray_dashboard_url and config.serve_http_port):
            raise ValueError(
                "SOVEREIGN_RUNTIME=local-ray needs SOVEREIGN_RAY_DASHBOARD_URL and SOVEREIGN_SERVE_HTTP_PORT"
            )
        return config
