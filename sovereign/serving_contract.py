"""What the operator hands to Ray Serve: one config object per application, the only contract between them.

It lives in the shared package so that the operator, the serving package, the CLI and the devstack all
import it from below them; the per-nation names it refers to come from `sovereign.domain.nations`.

`ModelServerConfig` is the `args` of a model application (one per ModelDeployment); `GatewayConfig` is the
`user_config` of a nation's gateway deployment, so the operator can change it (a model added, a bundle
published) without restarting the gateway (Ray Serve docs: "Configure Ray Serve deployments",
`user_config` and `reconfigure`).
"""

from __future__ import annotations

import importlib.metadata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sovereign.domain.markings import Markings
from sovereign.specs.model_deployment import ModelLimits

RAY_VERSION = "2.60.0"  # pinned: pyproject, the RayService's rayVersion and the image agree
# The one image of the operator and the serving workloads (Dockerfile; the chart's default image.registry and
# image.repository); its tag is the platform's version.
PLATFORM_IMAGE = "ghcr.io/sovereign-ai/sovereign"
PLATFORM_UID = 10001  # the image's user (Dockerfile), as the chart and the nations' Ray pods run it


def platform_image_reference() -> str:
    """The platform image of this version: what the nations' Ray pods run unless told otherwise."""
    return f"{PLATFORM_IMAGE}:{importlib.metadata.version('sovereign-ai-platform')}"


# Every Ray process and Serve runtime environment carries these: nothing may reach a hub or report usage.
# With usage stats disabled, Ray 2.60's dashboard still posts a "usage stats disabled" report to
# usage-stats.ray.io (ray-project/ray#43538); its report URL is pointed at a closed loopback port, so
# nothing leaves the machine. The air-gap test (tests/airgap) refuses and records any such attempt.
AIR_GAP_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_USAGE_STATS_REPORT_URL": "http://127.0.0.1:9/",
}

# The entry points the operator names (Ray imports them from the platform image, where sovereign_serving is
# installed): the Serve applications' import paths, the ingest job's module, and the Serve proxy's callback
# (`sovereign_serving.serve_proxy`: `/-/routes` answers 404), which every Ray node's environment carries.
# A test imports each of them.
GATEWAY_IMPORT_PATH = "sovereign_serving.gateway:build_app"
MODEL_SERVER_IMPORT_PATH = "sovereign_serving.model_server:build_app"
RETRIEVER_IMPORT_PATH = "sovereign_serving.retriever:build_app"
INGEST_MODULE = "sovereign_serving.ingest"  # run as `python -m`
PROXY_CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
PROXY_ENV = {PROXY_CALLBACK_ENV: "sovereign_serving.serve_proxy:proxy_middlewares"}

# Ray's dashboard probes cloud metadata services (169.254.169.254, metadata.google.internal) to guess its
# provider unless this file exists in the head's home directory (Ray: usage_lib, "ray_bootstrap_config").
RAY_BOOTSTRAP_CONFIG = "ray_bootstrap_config.yaml"


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")


class ModelServerConfig(_Config):
    """The args of one model application."""

    name: str = Field(description="Served name, `<nation>/<model>`.")
    nation: str = Field(description="Owner nation.")
    source: str = Field(description="Directory of the model files.")
    sha256: dict[str, str] = Field(description="Digest of every file, by path relative to source.")
    task: Literal["generate", "embed"]
    engine: Literal["vllm", "transformers"]
    engine_args: dict[str, Any] = Field(default_factory=dict, alias="engineArgs")
    max_tokens: int = Field(alias="maxTokens")


class GatewayModel(_Config):
    """A model the gateway may route to (any nation's; policy decides per request)."""

    name: str = Field(description="Served name, `<nation>/<model>`.")
    application: str = Field(description="Ray Serve application name of the model.")
    task: Literal["generate", "embed"]
    max_tokens: int = Field(alias="maxTokens")
    limits: ModelLimits = Field(
        default_factory=ModelLimits, description="What one request may ask of the model (its spec's)."
    )
    markings: Markings
    federation_url: str | None = Field(
        default=None,
        alias="federationUrl",
        description="Another nation's model only, on a runtime where it runs in that nation's own Ray "
        "cluster (kuberay): the owner's gateway base (`http://<host>:8000/<owner lowercase>`), whose "
        "`/federation/v1/...` routes the gateway calls over HTTP instead of a Serve handle.",
    )


class VaultSink(_Config):
    """How a nation's processes on Ray (audit writer, ingest job, retriever) log in to Vault as the nation:
    its Kubernetes auth role with a ServiceAccount token file. AuditSink adds where the audit log goes."""

    vault_addr: str = Field(alias="vaultAddr", description="The Vault holding the nation's transit key.")
    auth_mount: str = Field(
        "kubernetes", alias="authMount", description="Kubernetes auth mount in that Vault."
    )
    role: str = Field(description="Kubernetes auth role of the nation: `tenant-<nation lowercase>`.")
    token_file: str = Field(
        alias="tokenFile",
        description="The nation's ServiceAccount token (JWT), re-read at each login: the projected token in "
        "a pod; on local-ray a file kept fresh outside the operator, as a kubelet keeps it. While it is "
        "absent every login fails (closed) and the next one reads it again.",
    )
    transit_mount: str = Field("transit", alias="transitMount", description="Transit mount in that Vault.")
    ca_cert: str | None = Field(
        None,
        alias="caCert",
        description="PEM of the CA that signed that Vault's TLS certificate (the platform's VAULT_CACERT, or "
        "the nation's caBundle); the certificate is always verified, against the system's trust store when "
        "None.",
    )


class AuditSink(VaultSink):
    """Where and as whom the nation's gateway side appends its decision records (its AuditWriter actor)."""

    directory: str = Field(
        description="The audit root; the writer appends to `<directory>/<nation lowercase>/decisions/`."
    )
    tenant_uid: str | None = Field(
        None,
        alias="tenantUid",
        description="The uid of the nation's Tenant. A nation offboarded (its key shredded) and onboarded "
        "again is a new Tenant with a new key: the writer, seeing a new uid, drops the old log and its "
        "cached data key.",
    )
    ray_resource: str | None = Field(
        None,
        alias="rayResource",
        description="A custom Ray resource that only the node holding the nation's data volume offers "
        "(kuberay: the head); the writer actor is placed there. None: anywhere (one host).",
    )


class GatewayDataset(_Config):
    """A dataset the gateway may ground answers in (any nation's; policy decides per request)."""

    name: str = Field(description="Addressed name, `<owner nation lowercase>/<name>` (`dataset_name`).")
    markings: Markings = Field(description="The dataset's markings with its owner.")
    federation_url: str | None = Field(
        default=None,
        alias="federationUrl",
        description="Another nation's dataset only, on kuberay (its retriever runs in the owner's Ray "
        "cluster): the owner's gateway base, whose `/federation/v1/sovereign/search` the gateway calls.",
    )


class GatewayConfig(_Config):
    """The user_config of a nation's gateway."""

    nation: str = Field(description="The nation whose endpoint this is; only its users are served.")
    tenants: list[dict[str, Any]] = Field(
        description="Every Tenant as the API returns it, reduced to spec, status.identity and (with "
        "federation) status.federation: issuers, gateway key sets, clearances, suspension and quotas."
    )
    models: list[GatewayModel] = Field(description="Every served model of the platform, with its markings.")
    bundle: dict[str, str] = Field(description="The published policy bundle (ConfigMap data).")
    audit: AuditSink | None = Field(
        None,
        description="Where the gateway records every policy decision; None: audit is off (no audit dir set).",
    )
    datasets: list[GatewayDataset] = Field(
        default_factory=list,
        description="Every Ready dataset of the platform, with its markings (decided per request).",
    )
    federation: VaultSink | None = Field(
        None,
        description="How the gateway signs its federation assertions (kuberay, where other nations' "
        "models and datasets carry a `federationUrl`): it logs in to Vault as its nation and signs with its "
        "gateway key (`tenant-<nation>-gateway`, transit, never exported). None: no call is forwarded to "
        "another nation's gateway (503 `federation_unavailable`); the user's token is never sent instead.",
    )


# -- the data plane: a nation's datasets, ingested by a Ray job, served by its retriever ----------


class IngestConfig(_Config):
    """The `--config` of one ingest job (`python -m sovereign_serving.ingest`), run on the nation's Ray."""

    dataset: str = Field(description="The DataSet's name (its metadata.name, in the nation's namespace).")
    nation: str = Field(description="Owner nation, ISO 3166-1 alpha-3.")
    source: str = Field(
        description="Directory (or file) of the documents (txt, md, jsonl), as the Ray workers see it; under "
        "the nation's data root."
    )
    data_root: str = Field(
        alias="dataRoot",
        description="The platform's data root: the job reads only under `<dataRoot>/<nation lowercase>`, "
        "real paths (symlinks followed) included.",
    )
    markings: Markings = Field(
        description="The dataset's markings with its owner; documents may be stricter."
    )
    chunk_size: int = Field(alias="chunkSize", ge=16, description="Characters per chunk.")
    chunk_overlap: int = Field(alias="chunkOverlap", ge=0, description="Characters shared by neighbours.")
    embedding_application: str = Field(
        alias="embeddingApplication",
        description="Ray Serve application of the embedding model (`model_application_name`).",
    )
    embedding_model: str = Field(
        alias="embeddingModel", description="Served name of the embedding model (`<nation>/<model>`)."
    )
    store_root: str = Field(alias="storeRoot", description="Root of the nations' dataset stores.")
    vault: VaultSink = Field(description="How the job logs in to Vault as the nation.")
    batch_size: int = Field(64, alias="batchSize", ge=1, description="Chunks per embedding call.")
    force: bool = Field(
        False,
        description="Ingest even when the source is unchanged: the spec changed (chunking, embedding model).",
    )


class RetrieverDataset(_Config):
    """One dataset a nation's retriever serves."""

    name: str = Field(description="The DataSet's name; addressed as `<nation lowercase>/<name>`.")
    markings: Markings = Field(description="The dataset's markings with its owner.")
    embedding_application: str = Field(
        alias="embeddingApplication", description="Ray Serve application that embeds its queries."
    )


class RetrieverConfig(_Config):
    """The user_config of a nation's retriever (its `Retriever` deployment)."""

    nation: str = Field(description="Owner nation of every dataset served here.")
    datasets: list[RetrieverDataset] = Field(description="The nation's Ready datasets.")
    store_root: str = Field(alias="storeRoot", description="Root of the nations' dataset stores.")
    vault: VaultSink = Field(description="How the retriever logs in to Vault as the nation (to decrypt).")
    bundle: dict[str, str] = Field(description="The published policy bundle (ConfigMap data).")
