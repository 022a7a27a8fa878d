"""The ModelDeployment: one model a nation serves, in its tenant namespace. Addressed as `<nation>/<model>`.

Its markings are checked at admission and its models appear in the access matrix; the operator serves it on
Ray Serve (reconcile/serving.py).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from sovereign.domain.markings import ResourceMarkings
from sovereign.specs.resource import CustomResourceDefinitionInfo, PrinterColumn, SpecModel
from sovereign.specs.tenant import QUANTITY_PATTERN

SERVED_NAME_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"

# engineArgs that would load code or files nobody pinned; refused at admission (spec.engineArgs.<key>) and
# again by the model server before it loads anything. Which files load is the spec's `source`, verified by
# digest.
REFUSED_ENGINE_ARGS: dict[str, str] = {
    "trust_remote_code": "would run Python code shipped with the model's files",
    "model": "the model's files are its verified `source`",
    "tokenizer": "the tokenizer's files are the verified `source`",
    "revision": "the model's files are its verified `source`",
    "tokenizer_revision": "the tokenizer's files are the verified `source`",
    "code_revision": "would run Python code shipped with the model's files",
    "download_dir": "the model's files are its verified `source`, never downloaded",
    "served_model_name": "the served name is `model`",
    "hf_config_path": "would read a configuration outside the verified `source`",
    "hf_token": "the model's files are its verified `source`, never downloaded",
    "load_format": "the verified files are loaded by the engine's default loader",
    "model_loader_extra_config": "the verified files are loaded by the engine's default loader",
    "qlora_adapter_name_or_path": "would load weights outside the verified `source`",
    "speculative_config": "would load a second model nobody pinned",
    "generation_config": "would read a configuration outside the verified `source`",
    "allowed_local_media_path": "would let requests read files of the replica's machine",
    "worker_cls": "would import code named by the spec",
    "worker_extension_cls": "would import code named by the spec",
    "logits_processors": "would import code named by the spec",
    "kv_transfer_config": "would import code named by the spec",
}


def refused_engine_args(engine_args: object) -> dict[str, str]:
    """The keys of `engine_args` that no ModelDeployment may set, each with the reason."""
    if not isinstance(engine_args, dict):
        return {}
    return {key: REFUSED_ENGINE_ARGS[key] for key in sorted(engine_args) if key in REFUSED_ENGINE_ARGS}


class ModelResources(SpecModel):
    """What one replica of the model needs."""

    gpus: int = Field(0, ge=0, description="GPUs (nvidia.com/gpu) per replica; 0 serves on CPU.")
    cpu: str = Field("1", pattern=QUANTITY_PATTERN, description="CPU cores per replica.")
    memory: str = Field("4Gi", pattern=QUANTITY_PATTERN, description="Memory per replica.")


class Autoscaling(SpecModel):
    """Ray Serve autoscaling of the model's replicas."""

    min_replicas: int = Field(1, ge=0, description="Fewest replicas.")
    max_replicas: int = Field(ge=1, description="Most replicas.")
    target_ongoing_requests: float = Field(
        2.0, gt=0, description="Ongoing requests per replica that Ray Serve scales to."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        return self


# Defaults of a model's input limits (README, "Limits"): what one request may ask of it at the gateway.
DEFAULT_MAX_MESSAGES = 256
DEFAULT_MAX_CHARACTERS = 100_000
DEFAULT_MAX_INPUTS = 64


class ModelLimits(SpecModel):
    """What one request may ask of the model; the gateway refuses more with 400 naming the parameter, before
    the model is called. Prompt tokens are bounded by the model's own context (its positions), checked by
    the model server before it generates: 400 `context_length_exceeded`."""

    max_messages: int = Field(
        DEFAULT_MAX_MESSAGES, ge=1, le=100_000, description="Most chat messages in one request."
    )
    max_characters: int = Field(
        DEFAULT_MAX_CHARACTERS,
        ge=1,
        le=10_000_000,
        description="Most characters of text in one request: every message's content, the prompt, or every "
        "embedding input, summed.",
    )
    max_inputs: int = Field(
        DEFAULT_MAX_INPUTS, ge=1, le=2048, description="Most texts in one embeddings request (`input`)."
    )


class ModelDeploymentSpec(SpecModel):
    """A model served to the nation's users and to the nations it is released to."""

    model: str = Field(
        pattern=SERVED_NAME_PATTERN,
        description="Served name; clients address it as `<nation lowercase>/<model>`, e.g. fra/analyst.",
    )
    source: str = Field(min_length=1, description="Local or volume path of the model files; never a hub id.")
    sha256: dict[str, str] = Field(
        min_length=1,
        description="sha256 of every file under `source` (weights, config, tokenizer, code, hidden "
        "files: the model server refuses a file that is not listed), by path relative to `source`.",
        json_schema_extra={"additionalProperties": {"type": "string", "pattern": SHA256_PATTERN}},
    )
    task: Literal["generate", "embed"] = Field("generate", description="What the model does.")
    engine: Literal["vllm", "transformers"] = Field(
        "transformers", description="vLLM on GPUs, transformers on CPUs."
    )
    engine_args: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed through to the engine. Refused: any argument that loads code or files other than "
        "the pinned `source` (`trust_remote_code`, `model`, `tokenizer`, `revision`, `download_dir`, "
        "`speculative_config`, `load_format`, ...: REFUSED_ENGINE_ARGS).",
    )
    resources: ModelResources = Field(
        default_factory=ModelResources, description="Per replica.", json_schema_extra={"default": {}}
    )
    replicas: int | None = Field(None, ge=0, description="Fixed replica count (or set autoscaling).")
    autoscaling: Autoscaling | None = Field(None, description="Autoscaling (or set replicas).")
    max_tokens: int = Field(1024, ge=1, description="Cap on tokens generated per request.")
    limits: ModelLimits = Field(
        default_factory=ModelLimits,
        description="What one request may ask of the model (defaults: 256 messages, 100,000 characters, "
        "64 embedding inputs).",
        json_schema_extra={"default": {}},
    )
    markings: ResourceMarkings = Field(description="The model's classification, releasability, compartments.")

    @model_validator(mode="after")
    def _one_scaling(self) -> ModelDeploymentSpec:
        if self.replicas is not None and self.autoscaling is not None:
            raise ValueError("set replicas or autoscaling, not both")
        for path, digest in self.sha256.items():
            if not path or path.startswith("/") or ".." in path.split("/"):
                raise ValueError(f"sha256: {path!r} must be a path relative to source")
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"sha256[{path!r}]: not a lowercase hex sha256 digest")
        return self


MODEL_DEPLOYMENT_CRD = CustomResourceDefinitionInfo(
    kind="ModelDeployment",
    plural="modeldeployments",
    singular="modeldeployment",
    scope="Namespaced",
    spec_model=ModelDeploymentSpec,
    description="A model a nation serves on Ray Serve, with its markings.",
    short_names=("md",),
    printer_columns=(
        PrinterColumn("Model", ".spec.model"),
        PrinterColumn("Engine", ".spec.engine"),
        PrinterColumn("Classification", ".spec.markings.classification"),
        PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status'),
        PrinterColumn("Endpoint", ".status.endpoint"),
    ),
)
