"""Who is asking and what they may use: one `Access` per valid GatewayConfig, rebuilt on reconfigure.

A request's bearer token is validated against every Tenant's issuer (so that a valid token of another nation
is recognised as such and refused with its own message), must come from the gateway's own nation, and
becomes the policy's Principal; each model is decided with `PolicyEngine.decide(principal, "invoke",
[name])`, as a `ModelDecision` (`decide_model`) that the gateway traces whether allowed or not, then turned
into the model or the one 403 (`permitted`). Validated tokens are cached until they expire (the cache dies
with the config that filled it).

Datasets (issue 8): each dataset a request names is decided with `read` on the dataset and its markings
(`decide_dataset`, a `DatasetDecision`), traced and audited like the model's; unknown and forbidden datasets
get one 403. The chunks the retriever returns are checked again (`chunk_readable`): the retriever filters
by each chunk's own markings, and the gateway never puts a chunk it would refuse into a prompt.

Federation (`any_nation=True`, `owned_only=True`): another nation's gateway forwards its user's token to
the owner of a model or dataset; the owner accepts a token of any Tenant's issuer, validated the same way,
but only for the models and datasets it owns, and decides with its own policy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sovereign.domain.markings import AnswerMarking, Markings, Principal, Resource, ResourceKind
from sovereign.identity.principal import principal_for
from sovereign.identity.tokens import (
    LEEWAY_SECONDS,
    REASON_CODES,
    IssuerUnavailable,
    TokenRejected,
    TrustedIssuer,
    issuers_by_url,
    trusted_issuer_from_tenant,
    validate_token,
)
from sovereign.policy.bundle import PolicyBundle
from sovereign.policy.engine import PolicyEngine
from sovereign.specs.tenant import Quotas
from sovereign_serving.config import GatewayConfig, GatewayDataset, GatewayModel

from ._errors import GatewayError, dataset_not_available, echoed, not_available, unauthenticated

logger = logging.getLogger("sovereign.gateway")

INVOKE = "invoke"
READ = "read"
TOKEN_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Permitted:
    """A model the principal may invoke, with the marking its answers carry."""

    model: GatewayModel
    marking: AnswerMarking

    def headers(self) -> dict[str, str]:
        return marking_headers(self.marking)


def marking_headers(marking: AnswerMarking) -> dict[str, str]:
    return {
        "X-Sovereign-Classification": str(marking.classification),
        "X-Sovereign-Releasable-To": ",".join(marking.releasable_to),
    }


@dataclass(frozen=True)
class ModelDecision:
    """The gateway's decision on one request's model, allowed or denied (for its span, metric and audit).

    Names, codes and ids only, never content. `reason_codes`: `permitted`, `unknown-model`, `not-owned`
    (a federation route asked for a model the nation does not own), `forbidden` (a forbid policy decided),
    `not-permitted` (no policy permits it) or `no-marking`; `reasons` are the engine's own explanations.
    """

    model: str
    owner: str | None  # the owner nation, when the model is in the gateway's config
    allowed: bool
    reason_codes: tuple[str, ...]
    reasons: tuple[str, ...]
    deciding_policy_ids: tuple[str, ...]
    bundle_version: str
    marking: AnswerMarking | None  # the answer's marking, when allowed

    @property
    def decision(self) -> str:
        return "allow" if self.allowed else "deny"

    @property
    def resource(self) -> str:
        return self.model


@dataclass(frozen=True)
class DatasetDecision:
    """The gateway's decision on one dataset a request names (`read`), allowed or denied, as a ModelDecision.

    `reason_codes`: `permitted`, `unknown-dataset`, `not-owned`, `forbidden`, `not-permitted`, `no-marking`.
    """

    dataset: str
    owner: str | None
    allowed: bool
    reason_codes: tuple[str, ...]
    reasons: tuple[str, ...]
    deciding_policy_ids: tuple[str, ...]
    bundle_version: str
    markings: Markings | None  # the dataset's, when allowed (the answer's marking adds its chunks')

    @property
    def decision(self) -> str:
        return "allow" if self.allowed else "deny"

    @property
    def resource(self) -> str:
        return self.dataset


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int
    tokens_per_minute: int


class Access:
    """Authentication and authorisation for one nation's endpoint under one GatewayConfig."""

    def __init__(self, config: GatewayConfig) -> None:
        self.nation = config.nation
        self.tenants: dict[str, Mapping[str, Any]] = {}
        issuers: list[TrustedIssuer] = []
        for tenant in config.tenants:
            try:
                issuer = trusted_issuer_from_tenant(tenant)
            except IssuerUnavailable as error:
                logger.warning("tenant skipped, its users cannot be authenticated yet: %s", error)
                continue
            issuers.append(issuer)
            self.tenants[issuer.nation] = tenant
        self.issuers = issuers_by_url(issuers)
        self.models = {model.name: model for model in config.models}
        self.datasets = {dataset.name: dataset for dataset in config.datasets}
        catalogue = {
            model.name: Resource(kind=ResourceKind.model, name=model.name, markings=model.markings)
            for model in config.models
        }
        self.engine = PolicyEngine(PolicyBundle.from_configmap_data(config.bundle), catalogue=catalogue)
        self.limits = self._limits(config)
        self._tokens: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def _limits(self, config: GatewayConfig) -> Limits:
        own = next((t for t in config.tenants if (t.get("spec") or {}).get("nation") == config.nation), None)
        if own is None:
            raise ValueError(f"the config has no Tenant of {config.nation}, the gateway's own nation")
        quotas = Quotas.model_validate((own.get("spec") or {}).get("quotas") or {})
        return Limits(quotas.requests_per_minute, quotas.tokens_per_minute)

    async def authenticate(self, authorization: str | None, *, any_nation: bool = False) -> Principal:
        """The Principal of the request's bearer token, or a 401 GatewayError (never echoing the token).

        Only the gateway's own nation's users unless `any_nation` (the federation routes, where another
        nation's gateway forwards its user's token; what they may use is `permit(..., owned_only=True)`).
        A token not seen before is validated in a worker thread: its issuer's keys may have to be fetched
        from a `jwksUri`, which must not block the replica's event loop.
        """
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthenticated("missing-token", "a bearer token is required (Authorization: Bearer …)")
        now = time.time()
        cached = self._tokens.get(token)
        if cached is not None and now <= cached[1] + LEEWAY_SECONDS:
            self._tokens.move_to_end(token)
            return self._of_nation(cached[0], any_nation)
        try:
            verified = await asyncio.to_thread(validate_token, token, self.issuers, now)
        except TokenRejected as rejected:
            self._tokens.pop(token, None)
            raise unauthenticated(
                rejected.reason_code, f"invalid token: {REASON_CODES[rejected.reason_code]}"
            ) from None
        if verified.tenant_nation != self.nation and not any_nation:
            raise self._wrong_nation()
        principal = principal_for(verified, self.tenants[verified.tenant_nation])
        self._tokens[token] = (principal, float(verified.expires_at))
        if len(self._tokens) > TOKEN_CACHE_SIZE:
            self._tokens.popitem(last=False)
        return principal

    def _of_nation(self, principal: Principal, any_nation: bool) -> Principal:
        # The cache holds other nations' users too (from the federation routes): checked on every hit.
        if principal.issuer_nation != self.nation and not any_nation:
            raise self._wrong_nation()
        return principal

    def _wrong_nation(self) -> GatewayError:
        return unauthenticated("wrong-nation", f"this endpoint serves {self.nation} users only")

    def decide_model(self, principal: Principal, model: str, *, owned_only: bool = False) -> ModelDecision:
        """The policy's decision on invoking `model`, allowed or not, as traces and audit records show it.

        `owned_only` (the federation routes): another nation's model is refused as if it were unknown.
        """
        decision = self.engine.decide(principal, INVOKE, [model])
        found = self.models.get(model)
        owner = found.markings.owner if found is not None else None
        if found is None:
            codes: tuple[str, ...] = ("unknown-model",)
        elif owned_only and owner != self.nation:
            codes = ("not-owned",)
        elif decision.allowed and decision.marking is not None:
            codes = ("permitted",)
        elif decision.allowed:
            codes = ("no-marking",)
        else:
            codes = ("forbidden",) if decision.deciding_policy_ids else ("not-permitted",)
        return ModelDecision(
            model=model,
            owner=owner,
            allowed=codes == ("permitted",),
            reason_codes=codes,
            reasons=tuple(decision.reasons),
            deciding_policy_ids=tuple(decision.deciding_policy_ids),
            bundle_version=self.engine.bundle.version,
            marking=decision.marking if codes == ("permitted",) else None,
        )

    def permitted(self, principal: Principal, decision: ModelDecision) -> Permitted:
        """The model of an allowing decision; one 403 for unknown and forbidden models alike."""
        found = self.models.get(decision.model)
        if not decision.allowed or found is None or decision.marking is None:
            logger.info(
                "denied: %s of %s may not invoke the requested model (%s)",
                principal.sub,
                principal.nationality,
                "; ".join(decision.reasons),
            )
            raise not_available(decision.model)
        return Permitted(found, decision.marking)

    def permit(self, principal: Principal, model: str, *, owned_only: bool = False) -> Permitted:
        """`decide_model` then `permitted`: the model if the principal may invoke it, else the one 403."""
        return self.permitted(principal, self.decide_model(principal, model, owned_only=owned_only))

    def decide_dataset(
        self, principal: Principal, dataset: str, *, owned_only: bool = False
    ) -> DatasetDecision:
        """The policy's decision on reading `dataset` (its own markings; chunks are decided by the retriever).

        `owned_only` (the federation route): another nation's dataset is refused as if it were unknown.
        """
        found = self.datasets.get(dataset)
        reasons: tuple[str, ...] = ("unknown dataset",)
        policy_ids: tuple[str, ...] = ()
        if found is None:
            codes: tuple[str, ...] = ("unknown-dataset",)
        else:
            resource = Resource(kind=ResourceKind.dataset, name=dataset, markings=found.markings)
            decision = self.engine.decide(principal, READ, [resource])
            reasons, policy_ids = tuple(decision.reasons), tuple(decision.deciding_policy_ids)
            if owned_only and found.markings.owner != self.nation:
                codes = ("not-owned",)
            elif decision.allowed and decision.marking is not None:
                codes = ("permitted",)
            elif decision.allowed:
                codes = ("no-marking",)
            else:
                codes = ("forbidden",) if policy_ids else ("not-permitted",)
        allowed = codes == ("permitted",)
        return DatasetDecision(
            dataset=dataset,
            owner=found.markings.owner if found is not None else None,
            allowed=allowed,
            reason_codes=codes,
            reasons=reasons,
            deciding_policy_ids=policy_ids,
            bundle_version=self.engine.bundle.version,
            markings=found.markings if allowed and found is not None else None,
        )

    def permitted_dataset(self, principal: Principal, decision: DatasetDecision) -> GatewayDataset:
        """The dataset of an allowing decision; one 403 for unknown and forbidden datasets alike."""
        found = self.datasets.get(decision.dataset)
        if not decision.allowed or found is None:
            logger.info(
                "denied: %s of %s may not read a requested dataset (%s)",
                principal.sub,
                principal.nationality,
                "; ".join(decision.reasons),
            )
            raise dataset_not_available(decision.dataset)
        return found

    def chunk_readable(self, principal: Principal, dataset: str, markings: Markings) -> bool:
        """Whether the policy lets the principal read a chunk with these markings (the retriever decided
        already; this is the gateway's own check before anything reaches a prompt or an answer)."""
        resource = Resource(kind=ResourceKind.dataset, name=dataset, markings=markings)
        return self.engine.decide(principal, READ, [resource]).allowed

    def visible_models(self, principal: Principal) -> list[GatewayModel]:
        return [
            model
            for name, model in self.models.items()
            if self.engine.decide(principal, INVOKE, [name]).allowed
        ]


def check_task(permitted: Permitted, task: str, model: str) -> None:
    if permitted.model.task != task:
        kind = "an embedding model" if permitted.model.task == "embed" else "a generation model"
        raise GatewayError(
            400, f"model {echoed(model)!r} is {kind}: use its endpoint", param="model", code="wrong_task"
        )
