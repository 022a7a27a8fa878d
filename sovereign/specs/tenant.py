"""The Tenant: one member nation, cluster-scoped. The operator makes it an isolated namespace and keys."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from sovereign.domain.markings import Classification
from sovereign.domain.nations import ISO_3166_ALPHA3, is_nation_code
from sovereign.specs.resource import CustomResourceDefinitionInfo, PrinterColumn, SpecModel

# Kubernetes resource.Quantity, as its regular expression in the API docs (a number with an optional suffix).
QUANTITY_PATTERN = r"^([+]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"


USER_SHARE_DIVISOR = 2  # a user's default quota: half the nation's (rounded up)


def _user_default(nation_amount: int) -> int:
    return -(-nation_amount // USER_SHARE_DIVISOR)


class PeerQuota(SpecModel):
    """What another nation's users together may use of this nation's models (its federation routes), on
    top of their own nation's and user's quotas; absent: no cap of this kind."""

    requests_per_minute: int | None = Field(
        None,
        ge=0,
        description="Requests per minute the peer nation's users may send together; absent: no cap.",
    )
    tokens_per_minute: int | None = Field(
        None,
        ge=0,
        description="Tokens per minute (prompt and completion) the peer nation's users may use together; "
        "absent: no cap.",
    )


class Quotas(SpecModel):
    """What the nation may consume; becomes its namespace's ResourceQuota and the gateway's rate limits.

    Traffic quotas are charged to the caller after authentication: to the caller's nation, to the caller
    (per user) and, on another nation's gateway, to that nation's cap on the caller's nation (its `peers`).
    Tokens are reserved at admission (the prompt's characters / 4 plus `max_tokens` as the model caps it)
    and settled with the model's real usage once the answer is complete.
    """

    cpu: str = Field("8", pattern=QUANTITY_PATTERN, description="CPU cores for all the nation's workloads.")
    memory: str = Field(
        "32Gi", pattern=QUANTITY_PATTERN, description="Memory for all the nation's workloads."
    )
    gpus: int = Field(0, ge=0, description="GPUs (nvidia.com/gpu) for all the nation's workloads.")
    max_models: int = Field(10, ge=0, description="Most ModelDeployments the nation may run.")
    requests_per_minute: int = Field(
        600, ge=0, description="Requests per minute across the nation's endpoint."
    )
    tokens_per_minute: int = Field(
        100_000, ge=0, description="Tokens per minute across the nation's endpoint."
    )
    user_requests_per_minute: int | None = Field(
        None,
        ge=0,
        description="Requests per minute one user of the nation may send; absent: half of "
        "`requestsPerMinute`, rounded up.",
    )
    user_tokens_per_minute: int | None = Field(
        None,
        ge=0,
        description="Tokens per minute one user of the nation may use; absent: half of "
        "`tokensPerMinute`, rounded up.",
    )
    peers: dict[str, PeerQuota] = Field(
        default_factory=dict,
        description="Caps on what each other nation's users (by ISO 3166-1 alpha-3 code) may use of this "
        "nation's models through its federation routes, e.g. `{EST: {requestsPerMinute: 60}}`; a nation "
        "not listed is capped only by its own and its users' quotas.",
    )

    @field_validator("peers")
    @classmethod
    def _peer_nations(cls, peers: dict[str, PeerQuota]) -> dict[str, PeerQuota]:
        for code in peers:
            if not is_nation_code(code):
                raise ValueError(f"peers: {code!r} is not an ISO 3166-1 alpha-3 country code")
        return peers

    @property
    def per_user(self) -> tuple[int, int]:
        """(requests, tokens) per minute of one user: the set values, else half the nation's."""
        requests = self.user_requests_per_minute
        tokens = self.user_tokens_per_minute
        return (
            _user_default(self.requests_per_minute) if requests is None else requests,
            _user_default(self.tokens_per_minute) if tokens is None else tokens,
        )


class AdminSubject(SpecModel):
    """An RBAC subject bound to the nation's namespace-admin role."""

    kind: Literal["User", "Group", "ServiceAccount"] = Field(description="RBAC subject kind.")
    name: str = Field(min_length=1, description="User, group or ServiceAccount name.")
    namespace: str | None = Field(None, description="Namespace of a ServiceAccount subject.")


class Identity(SpecModel):
    """The nation's token issuer. Absent on the devstack: the operator creates a dev issuer."""

    issuer: str = Field(
        min_length=1,
        description=(
            "Expected `iss` claim of the nation's tokens; the nation's own: an issuer another Tenant names "
            "(or another nation's dev issuer) is refused, the older Tenant keeping it."
        ),
    )
    audience: str = Field(min_length=1, description="Expected `aud` claim of the nation's tokens.")
    jwks: dict[str, object] | None = Field(None, description="The issuer's JSON Web Key Set, inline.")
    jwks_uri: str | None = Field(
        None, description="Where the issuer's JSON Web Key Set is served (in-network)."
    )


class SecretKeyReference(SpecModel):
    name: str = Field(min_length=1, description="Secret name.")
    namespace: str = Field(min_length=1, description="Secret namespace.")
    key: str = Field("ca.crt", description="Key in the Secret's data.")


class VaultConnection(SpecModel):
    """A nation's own Vault (bring-your-own). Default: the platform's Vault."""

    address: str = Field(min_length=1, description="Vault address, e.g. https://vault.fra.example:8200.")
    auth_mount: str = Field("kubernetes", description="Mount path of the Kubernetes auth method.")
    transit_mount: str = Field("transit", description="Mount path of the transit secrets engine.")
    kv_mount: str = Field("secret", description="Mount path of the KV version 2 secrets engine.")
    ca_bundle_secret_ref: SecretKeyReference | None = Field(None, description="CA bundle to trust for TLS.")


class KeyRotation(SpecModel):
    period: str = Field("720h", pattern=DURATION_PATTERN, description="How often the nation's key rotates.")


class TenantSpec(SpecModel):
    """A member nation of the alliance."""

    nation: str = Field(
        description="ISO 3166-1 alpha-3 code of the nation; one Tenant per nation.",
        json_schema_extra={"enum": list(ISO_3166_ALPHA3)},
    )
    display_name: str = Field(min_length=1, description="Human-readable name shown to operators.")
    clearance: Classification = Field(description="Highest classification the nation's users may hold.")
    quotas: Quotas = Field(
        default_factory=Quotas, description="Resource and traffic quotas.", json_schema_extra={"default": {}}
    )
    admins: list[AdminSubject] = Field(default_factory=list, description="Who administers the namespace.")
    identity: Identity | None = Field(None, description="The nation's token issuer.")
    vault: VaultConnection | None = Field(None, description="The nation's own Vault, if it brings one.")
    key_rotation: KeyRotation = Field(
        default_factory=KeyRotation, description="Key rotation policy.", json_schema_extra={"default": {}}
    )
    suspended: bool = Field(False, description="A suspended nation's requests are all denied.")

    @field_validator("nation")
    @classmethod
    def _known_nation(cls, code: str) -> str:
        if not is_nation_code(code):
            raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-3 country code")
        return code


TENANT_CRD = CustomResourceDefinitionInfo(
    kind="Tenant",
    plural="tenants",
    singular="tenant",
    scope="Cluster",
    spec_model=TenantSpec,
    description="A member nation: its namespace, quotas, identity issuer and keys.",
    short_names=("tn",),
    printer_columns=(
        PrinterColumn("Nation", ".spec.nation"),
        PrinterColumn("Clearance", ".spec.clearance"),
        PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status'),
        PrinterColumn("Key Version", ".status.keyVersion", type="integer"),
        PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        # `kubectl get tenants -o wide`: why a Tenant is not Ready (VaultSealed, VaultUnreachable, ...).
        PrinterColumn(
            "Reason",
            '.status.conditions[?(@.type=="Ready")].reason',
            description="Why the Tenant is (not) Ready: the reason of its Ready condition.",
            priority=1,
        ),
    ),
)
