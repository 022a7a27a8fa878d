"""Who is asking and what they may use: one `Access` per valid GatewayConfig, rebuilt on reconfigure.

A request's bearer token is validated against every Tenant's issuer (so that a valid token of another nation
is recognised as such and refused with its own message), must come from the gateway's own nation, and
becomes the policy's Principal; each model is decided with `PolicyEngine.decide(principal, "invoke",
[name])`, as a `ModelDecision` (`decide_model`) that the gateway traces whether allowed or not, then turned
into the model or the one 403 (`permitted`). Validated tokens are cached until they expire (the cache dies
with the config that filled it).

Datasets: each dataset a request names is decided with `read` on the dataset and its markings
(`decide_dataset`, a `DatasetDecision`), traced and audited like the model's; unknown and forbidden datasets
get one 403. The chunks the retriever returns are checked again (`chunk_readable`): the retriever filters
by each chunk's own markings, and the gateway never puts a chunk it would refuse into a prompt.

Federation (`authenticate_gateway`, `owned_only=True`): the federation routes take only a peer nation's
gateway assertion (`sovereign.identity.federation_assertions`), never a user's token (401
`not-an-assertion`): signed by the calling nation's gateway key as its Tenant publishes it
(`status.federation.jwks`), for this nation, for that route and body, unexpired and not seen before by this
replica. Its user becomes the Principal, clearance capped by the calling nation's Tenant; the owner serves
only the models and datasets it owns and decides with its own policy. The public routes refuse an assertion
(its issuer is no user issuer: 401 `unknown-issuer`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from sovereign.domain.markings import (
    AnswerMarking,
    ExcludesRecipient,
    Markings,
    Principal,
    Resource,
    ResourceKind,
    answer_marking,
)
from sovereign.identity.federation_assertions import (
    REASON_CODES as ASSERTION_REASON_CODES,
)
from sovereign.identity.federation_assertions import (
    AssertionRejected,
    PeerGateway,
    ReplayCache,
    VerifiedAssertion,
    peer_gateway_from_tenant,
    verify_assertion,
)
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
from sovereign.serving_contract import GatewayConfig, GatewayDataset, GatewayModel

from ._decision_types import DatasetDecision, ModelDecision, Permitted, permitted_codes
from ._errors import (
    GatewayError,
    dataset_not_available,
    not_available,
    unauthenticated,
    unavailable,
)

logger = logging.getLogger("sovereign.gateway")

INVOKE = "invoke"
READ = "read"
TOKEN_CACHE_SIZE = 10_000


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
        # Peer nations whose gateways may call this one's federation routes (their published gateway keys).
        self.peers: dict[str, PeerGateway] = {
            peer.nation: peer
            for peer in map(peer_gateway_from_tenant, config.tenants)
            if peer is not None and peer.nation != config.nation
        }
        self.models = {model.name: model for model in config.models}
        self.datasets = {dataset.name: dataset for dataset in config.datasets}
        catalogue = {
            model.name: Resource(kind=ResourceKind.model, name=model.name, markings=model.markings)
            for model in config.models
        }
        self.engine = PolicyEngine(PolicyBundle.from_configmap_data(config.bundle), catalogue=catalogue)
        self._tokens: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    async def authenticate(self, authorization: str | None) -> Principal:
        """The Principal of the request's bearer token, or a 401 GatewayError (never echoing the token).

        The gateway's own nation's users only (a valid token of another nation: 401 `wrong-nation`; a peer
        gateway's assertion: 401 `unknown-issuer`). A token not seen before is validated in a worker thread:
        its issuer's keys may have to be fetched from a `jwksUri`, which must not block the event loop.
        """
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthenticated("missing-token", "a bearer token is required (Authorization: Bearer …)")
        now = time.time()
        cached = self._tokens.get(token)
        if cached is not None and now <= cached[1] + LEEWAY_SECONDS:
            self._tokens.move_to_end(token)
            return cached[0]
        try:
            verified = await asyncio.to_thread(validate_token, token, self.issuers, now)
        except TokenRejected as rejected:
            self._tokens.pop(token, None)
            raise unauthenticated(
                rejected.reason_code, f"invalid token: {REASON_CODES[rejected.reason_code]}"
            ) from None
        if verified.tenant_nation != self.nation:
            raise unauthenticated("wrong-nation", f"this endpoint serves {self.nation} users only")
        principal = principal_for(verified, self.tenants[verified.tenant_nation])
        self._tokens[token] = (principal, float(verified.expires_at))
        if len(self._tokens) > TOKEN_CACHE_SIZE:
            self._tokens.popitem(last=False)
        return principal

    def authenticate_gateway(
        self, authorization: str | None, route: str, body: bytes, replay: ReplayCache
    ) -> VerifiedAssertion:
        """A peer nation's gateway assertion for `route` with exactly `body`, or a 401 GatewayError with its
        reason code (503 when the replica's replay cache is full of live assertions: closed, not open)."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthenticated(
                "missing-token", "a peer gateway's assertion is required (Authorization: Bearer)"
            )
        try:
            return verify_assertion(
                token, self.peers, owner=self.nation, route=route, body=body, replay=replay
            )
        except AssertionRejected as rejected:
            if rejected.reason_code == "replay-cache-full":
                raise unavailable(
                    "too many federated calls at once; retry shortly", code="replay_cache_full"
                ) from None
            why = ASSERTION_REASON_CODES[rejected.reason_code]
            raise unauthenticated(rejected.reason_code, f"invalid federation assertion: {why}") from None

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
            codes = permitted_codes(decision)
        elif decision.allowed:
            codes = ("no-marking",)
        else:
            codes = ("forbidden",) if decision.deciding_policy_ids else ("not-permitted",)
        allowed = codes[0] == "permitted"
        return ModelDecision(
            model=model,
            owner=owner,
            allowed=allowed,
            reason_codes=codes,
            reasons=tuple(decision.reasons),
            deciding_policy_ids=tuple(decision.deciding_policy_ids),
            bundle_version=self.engine.bundle.version,
            marking=decision.marking if allowed else None,
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
                codes = permitted_codes(decision)
            elif decision.allowed:
                codes = ("no-marking",)
            else:
                codes = ("forbidden",) if policy_ids else ("not-permitted",)
        allowed = codes[0] == "permitted"
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

    def answer_marking(
        self, principal: Principal, model: GatewayModel | None, chunks: Sequence[tuple[str, Markings]]
    ) -> AnswerMarking:
        """The marking of an answer built from `model` (None: a search) and `chunks` ((dataset, markings) of
        each chunk, or of each dataset when none matched), delivered to the principal's nation: the recipient
        rule of `answer_marking`, with the owners whose own rules disclosed a resource to that nation, as
        the engine decided (its decisions are cached: the request's own were made already). A resource that
        excludes the recipient without such a disclosure refuses the answer (403): never delivered."""
        markings: list[Markings] = []
        disclosed: set[str] = set()
        decided = [(model.markings, self.engine.decide(principal, INVOKE, [model.name]))] if model else []
        for dataset, found in chunks:
            resource = Resource(kind=ResourceKind.dataset, name=dataset, markings=found)
            decided.append((found, self.engine.decide(principal, READ, [resource])))
        for found, decision in decided:
            markings.append(found)
            if decision.allowed and decision.disclosed_by_owner:
                disclosed.add(found.owner)
        try:
            return answer_marking(
                markings, recipient=principal.nationality, disclosed_by=frozenset(disclosed)
            )
        except ExcludesRecipient as error:
            logger.warning("answer refused, its marking would exclude its recipient: %s", error)
            raise GatewayError(
                403,
                "the answer cannot be marked releasable to your nation, so it is not delivered",
                type="permission_error",
                code="marking_excludes_recipient",
            ) from None

    def visible_models(self, principal: Principal) -> list[GatewayModel]:
        return [
            model
            for name, model in self.models.items()
            if self.engine.decide(principal, INVOKE, [name]).allowed
        ]
