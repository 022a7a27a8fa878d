"""The nation's gateway: a Ray Serve deployment whose replicas each serve the OpenAI API through one router.

Its parts, each a module: the routes and operations (`_routes.py`, mounted by `_router.py`, served by
`_handlers.py`); admission: the caller's token and quotas, the body read once, refusals audited
(`_admission.py`, `_access.py`, `_ratelimit.py` and `_quota_ledger.py`); decision: every model and dataset
decided, traced and audited (`_decisions.py`); model calls: handles, application states, streaming
(`_model_calls.py`); federation (`_federation.py`, `_signer.py`); datasets (`_grounding.py`,
`_retrieval.py`); telemetry (`_telemetry.py`).

Federation (one Ray cluster per nation, kuberay): another nation's model with a `federationUrl` is called
over HTTP at its owner's gateway, after this gateway's own decision, with an assertion this gateway signs as
its nation (the nation's gateway key in Vault), never the user's token; without a signer
(`GatewayConfig.federation`) nothing is forwarded (503 `federation_unavailable`). The owner serves such calls
on `/federation/v1/...`, the same paths, to a peer gateway's assertion only (a user's token there: 401), for
the route and body it was signed for, used once by any of its replicas, only for the models the owner owns,
decided by the owner's policy and charged to the caller's quotas there; the public routes refuse an
assertion (401). Both nations' records of the call carry its `federationLink`.

Telemetry: a SERVER span per request (a trace of its own, linked to the client's `traceparent`: the audit
record's trace id is never the client's), children for authentication, the policy decision and the model
call (GenAI CLIENT span, its context passed to the replica as `trace_context`); Ray metrics for token usage
and decisions. Names, codes and counts only, never content.

The config is the deployment's `user_config` (a GatewayConfig), applied by `reconfigure` on every
replica. Fail closed: a bad one is refused and, until a valid one arrives, every request is 503
`config_refused` (the previous config is not served: it may be what the refused one was to change); before
the first valid one every request is 503 `not_configured`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError
from ray import serve

from sovereign.serving_contract import GatewayConfig
from sovereign.telemetry import configure_tracing
from sovereign_serving.audit_writer import AuditClient
from sovereign_serving.loopback import keep_replica_server_on_loopback

from ._access import Access
from ._admission import Configured, Gate
from ._decisions import Decisions
from ._errors import unavailable
from ._federation import Federation
from ._handlers import Handlers
from ._model_calls import ModelCalls
from ._quota_ledger import quota_table
from ._ratelimit import QuotaClient
from ._retrieval import Retrieval
from ._router import gateway_app

logger = logging.getLogger("sovereign.gateway")


def _why(error: Exception) -> str:
    """Why a config was refused, without the values it held."""
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
            for e in error.errors(include_input=False, include_url=False)
        )
    return f"{type(error).__name__}: {error}"


class GatewayReplica:
    """One replica of a nation's OpenAI-compatible, policy-enforcing endpoint: its config and the parts that
    serve it."""

    def __init__(self) -> None:
        keep_replica_server_on_loopback()
        self._configured: Configured | None = None  # None: never configured, or the last config was refused
        self._nation: str | None = None  # the nation of the first valid config; it never changes
        self._refused = False  # the last config was refused: every request is 503 `config_refused`
        self._quota: QuotaClient | None = None
        self._audit: AuditClient | None = None  # None: the config turns audit off
        self._federation = Federation()
        self._calls = ModelCalls()
        self._handlers = Handlers(
            Gate(self.configured),
            Decisions(),
            self._calls,
            self._federation,
            Retrieval(self._calls, self._federation),
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        """The replica's app, the router over this replica's parts (Ray Serve calls it after `__init__`)."""
        return gateway_app(self._handlers)

    def configured(self) -> Configured:
        """What the current config gives a request, or the 503 of a gateway that has no valid config."""
        current = self._configured
        if current is not None:
            return current
        if self._refused:
            raise unavailable(
                "the gateway's configuration was refused, so nothing is served until a valid one arrives",
                code="config_refused",
            )
        raise unavailable("the gateway is not configured yet", code="not_configured")

    async def reconfigure(self, config: dict[str, Any]) -> None:
        try:
            parsed = GatewayConfig.model_validate(config)
            if self._nation is not None and parsed.nation != self._nation:
                raise ValueError(f"the gateway of {self._nation} cannot become {parsed.nation}'s")
            access = Access(parsed)
            quotas = quota_table(parsed)
        except Exception as error:  # noqa: BLE001 — any bad config is refused the same way
            # Fail closed: the previous config may be what the refused one was to change (a suspended
            # nation, a removed model), so nothing is served until a valid config arrives.
            self._configured, self._refused = None, True
            logger.error("gateway config refused, every request is denied until a valid one: %s", _why(error))
            return
        self._nation = access.nation
        if self._quota is None:
            self._quota = QuotaClient(access.nation)
            # Once per replica process, with the nation the first valid config names (it never changes).
            configure_tracing("sovereign-gateway", **{"sovereign.tenant": access.nation})
        try:
            await self._quota.configure(quotas)
        except Exception:  # noqa: BLE001 — requests find it unavailable and get 503
            logger.exception("the quota keeper of %s could not be configured", access.nation)
        await self._configure_audit(parsed)
        self._federation.configure(parsed.nation, parsed.federation)
        self._configured, self._refused = Configured(access, self._quota, self._audit), False
        self._calls.clear()
        logger.info(
            "gateway of %s configured: %d issuers, %d models, bundle %s",
            access.nation,
            len(access.issuers),
            len(access.models),
            access.engine.bundle.version,
        )

    async def _configure_audit(self, config: GatewayConfig) -> None:
        if config.audit is None:
            self._audit = None
            return
        if self._audit is None:
            self._audit = AuditClient(config.nation, config.audit)
        try:
            await self._audit.configure(config.audit)
        except Exception as error:  # noqa: BLE001 — requests then find the writer unavailable and get 503
            failure = type(error).__name__
            logger.error("the audit writer of %s could not be configured: %s", config.nation, failure)


# Ray Serve builds each replica's ASGI app from the replica itself (`__serve_build_asgi_app__`), so the
# routes are plain functions over its parts, not methods Serve rewrites. Not a class decorator: mypy would
# not see the deployment it makes.
Gateway: serve.Deployment = serve.deployment(name="Gateway")(serve.ingress()(GatewayReplica))


def build_app(args: dict[str, Any]) -> serve.Application:
    """The gateway application; `args` may hold `config` (a GatewayConfig dict, its first user_config).

    The operator normally sets the user_config in the Serve config's deployment options instead, which
    is also how it changes it later without restarting the gateway.
    """
    unknown = set(args) - {"config"}
    if unknown:
        raise ValueError(f"unknown gateway arguments: {sorted(unknown)}")
    config = args.get("config")
    deployment = Gateway if config is None else Gateway.options(user_config=config)
    return deployment.bind()
