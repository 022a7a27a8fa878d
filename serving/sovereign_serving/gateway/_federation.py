"""Another nation's model through its owner's gateway, over HTTP (one Ray cluster per nation: no handle).

Gateway to gateway only: the user's bearer token never leaves its nation. After its own decision (recorded
in its own audit log with a `federationLink` id), the caller's gateway signs an assertion as its nation
(`_signer.py`: the nation's gateway key in Vault transit; `sovereign.identity.federation_assertions`)
naming the user, the calling nation, the owner as audience, the route and the sha256 of the exact body
bytes it sends, valid at most 60 s, with a unique `jti` and the link id. It posts those bytes to the owner's
`/federation/v1/<route>` with the assertion as its bearer and the trace's W3C `traceparent`; the owner
verifies the assertion against the calling nation's published gateway key set, accepts it once, decides
with its own policy (the user's clearance capped by the calling nation's Tenant), charges its own quotas,
records the decision with the same `federationLink`, calls its model and continues the trace. A gateway
without a signer (`GatewayConfig.federation`) refuses to forward: 503 `federation_unavailable`.

The owner's answer comes back as it is: JSON or SSE bytes with the owner's marking headers, and the owner's
errors with their status and OpenAI-shaped body (a 403 of the owner stays 403, its 429 stays 429 with
Retry-After). An owner that cannot be reached is 503 `model_unavailable`.

Datasets: another nation's dataset is searched at its owner's `/federation/v1/sovereign/search` the same
way; the owner decides the dataset again and retrieves in its own cluster; it answers the chunks with their
markings, so this gateway can mark its answer (a refusal of the owner is this gateway's 403).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextvars import ContextVar
from typing import Any, Protocol

import httpx
from starlette.responses import JSONResponse, Response, StreamingResponse

from sovereign.domain.markings import Principal
from sovereign.identity.federation_assertions import assertion_claims, new_link
from sovereign.serving_contract import GatewayDataset, VaultSink
from sovereign.telemetry import carrier
from sovereign_serving.nation_vault import vault_outage

from . import _openai as openai_api
from ._decision_types import Permitted
from ._errors import GatewayError, dataset_not_available, model_failed, unavailable, vault_unavailable
from ._grounding import Retrieved, chunks_of
from ._routes import FEDERATION_PREFIX, PATHS, Operation
from ._signer import GatewaySigner

logger = logging.getLogger("sovereign.gateway")

# Generation can take long; connecting to a gateway in the cluster cannot.
TIMEOUT = httpx.Timeout(connect=5.0, read=300.0, write=30.0, pool=10.0)
MARKING_HEADERS = ("X-Sovereign-Classification", "X-Sovereign-Releasable-To")
OWNER_ERROR_HEADERS = ("Retry-After", "WWW-Authenticate")

# The request's link id: set when the request is admitted (the assertion's `link` on a federation route, a
# new one on a public route), carried by this nation's audit records of a cross-nation call and by the
# assertions it sends, so that both nations' records of one call name the same id.
FEDERATION_LINK: ContextVar[str | None] = ContextVar("sovereign_federation_link", default=None)


def set_link(link: str | None) -> None:
    """The request's link id (None: a new one when first needed)."""
    FEDERATION_LINK.set(link)


def received_link() -> str | None:
    return FEDERATION_LINK.get()


def current_link() -> str:
    link = FEDERATION_LINK.get()
    if link is None:
        link = new_link()
        FEDERATION_LINK.set(link)
    return link


def federation_url(permitted: Permitted, operation: Operation) -> str:
    base = permitted.model.federation_url
    if not base:
        raise ValueError(f"{permitted.model.name} has no federation URL")
    return f"{base.rstrip('/')}{FEDERATION_PREFIX}/{PATHS[operation]}"


def search_url(dataset: GatewayDataset) -> str:
    if not dataset.federation_url:
        raise ValueError(f"{dataset.name} has no federation URL")
    return f"{dataset.federation_url.rstrip('/')}{FEDERATION_PREFIX}/{Operation.SEARCH.path}"


def dataset_unavailable() -> GatewayError:
    return unavailable("the dataset cannot be searched right now", code="dataset_unavailable")


def _unreachable(permitted: Permitted, error: Exception) -> GatewayError:
    logger.warning("the gateway of %s's model is unreachable: %s", permitted.model.name, type(error).__name__)
    return unavailable("the model is not available right now", code="model_unavailable")


def _marking(response: httpx.Response, permitted: Permitted) -> dict[str, str]:
    """The owner's marking of its answer (ours, from the same markings, only if it sent none)."""
    owner = {name: response.headers[name] for name in MARKING_HEADERS if name in response.headers}
    return owner if len(owner) == len(MARKING_HEADERS) else permitted.headers()


def _owner_error(response: httpx.Response) -> Response:
    """The owner's refusal or failure as it answered it, when it is OpenAI-shaped; a generic one if not."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        body = None
    if not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
        logger.warning("the owner's gateway answered %d without an OpenAI error", response.status_code)
        if response.status_code >= 500:
            return model_failed().response()
        return GatewayError(
            response.status_code, "the request cannot be served", code="invalid_request"
        ).response()
    headers = {name: response.headers[name] for name in OWNER_ERROR_HEADERS if name in response.headers}
    return JSONResponse(body, status_code=response.status_code, headers=headers)


class AssertionSigner(Protocol):
    def sign(self, claims: Mapping[str, Any]) -> str: ...


class Federation:
    """A replica's HTTP client to other nations' gateways (one connection pool, made in the replica), and
    its nation's assertion signer (None: no federation signer configured, nothing is forwarded). A gateway
    signs in Vault (`configure`: `GatewaySigner`); `signer` is for a key held elsewhere (tests)."""

    def __init__(self, nation: str | None = None, signer: AssertionSigner | None = None) -> None:
        self._client: httpx.AsyncClient | None = None
        self._nation = nation
        self._signer = signer

    def configure(self, nation: str, sink: VaultSink | None) -> None:
        """The signer of `nation`'s gateway from the config's `federation` sink (kept while unchanged)."""
        self._nation = nation
        if sink is None:
            self._signer = None
        elif not (isinstance(self._signer, GatewaySigner) and self._signer.sink == sink):
            self._signer = GatewaySigner(nation, sink)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # trust_env=False: no proxy from the environment; the owner's gateway is in the cluster.
            self._client = httpx.AsyncClient(timeout=TIMEOUT, trust_env=False, follow_redirects=False)
        return self._client

    async def _signed(
        self, owner: str, route: str, principal: Principal, body: dict[str, Any]
    ) -> tuple[bytes, dict[str, str]]:
        """The exact body bytes to send and the headers: this gateway's assertion for them (never the user's
        token) and the current span's W3C `traceparent`, so the owner continues the trace."""
        signer, nation = self._signer, self._nation
        if signer is None or nation is None:
            logger.error("a call to %s's gateway is refused: this gateway has no federation signer", owner)
            raise unavailable(
                "this gateway cannot reach other nations' gateways (no federation signer is configured)",
                code="federation_unavailable",
            )
        content = json.dumps(body, separators=(",", ":")).encode()
        claims = assertion_claims(nation, owner, principal, route, content, link=current_link())
        try:
            signed = await asyncio.to_thread(signer.sign, claims)
        except Exception as error:  # noqa: BLE001 — no assertion, no call: fail closed with a code
            outage = vault_outage(error)
            if outage is not None:
                raise vault_unavailable(outage) from None
            logger.error("the federation assertion could not be signed: %s", type(error).__name__)
            raise unavailable(
                "this gateway cannot sign its call to the owner's gateway right now",
                code="federation_unavailable",
            ) from None
        headers = {
            "Authorization": f"Bearer {signed}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            **carrier(),
        }
        return content, headers

    async def answer(
        self, permitted: Permitted, operation: Operation, principal: Principal, body: dict[str, Any]
    ) -> tuple[Response, int]:
        """The owner's non-streaming answer (or error) and the tokens it used."""
        owner, route = permitted.model.markings.owner, PATHS[operation]
        content, headers = await self._signed(owner, route, principal, body)
        try:
            response = await self._http().post(
                federation_url(permitted, operation), content=content, headers=headers
            )
        except httpx.HTTPError as error:
            raise _unreachable(permitted, error) from None
        if response.status_code >= 400:
            return _owner_error(response), 0
        try:
            answer = response.json()
        except (ValueError, UnicodeDecodeError):
            logger.warning("the gateway of %s's model answered no JSON", permitted.model.name)
            raise model_failed() from None
        return JSONResponse(answer, headers=_marking(response, permitted)), openai_api.tokens_used(answer)

    async def search(
        self, dataset: GatewayDataset, principal: Principal, query: str, top_k: int
    ) -> list[Retrieved]:
        """The chunks of another nation's dataset its owner lets the user read (the owner decides again)."""
        body = {"datasets": [dataset.name], "query": query, "top_k": top_k}
        content, headers = await self._signed(dataset.markings.owner, Operation.SEARCH.path, principal, body)
        try:
            response = await self._http().post(search_url(dataset), content=content, headers=headers)
        except httpx.HTTPError as error:
            logger.warning("the gateway of dataset %s is unreachable: %s", dataset.name, type(error).__name__)
            raise dataset_unavailable() from None
        if response.status_code in (401, 403):  # the owner's refusal is ours: one 403 for every denial
            raise dataset_not_available(dataset.name)
        if response.status_code == 429:
            retry = {name: response.headers[name] for name in ("Retry-After",) if name in response.headers}
            raise GatewayError(
                429,
                "the dataset owner's quota is used up",
                type="rate_limit_error",
                code="rate_limit_exceeded",
                headers=retry,
            )
        try:
            if response.status_code >= 400:
                raise ValueError(response.status_code)
            return chunks_of(dataset.name, response.json()["results"])
        except Exception as error:  # noqa: BLE001 — anything else from the owner: the retrieval failed
            logger.warning(
                "the gateway of dataset %s failed the search: %s", dataset.name, type(error).__name__
            )
            raise dataset_unavailable() from None

    async def stream(
        self,
        permitted: Permitted,
        operation: Operation,
        principal: Principal,
        body: dict[str, Any],
        charge: Callable[[int | None], None],
    ) -> Response:
        """The owner's SSE stream passed through (the usage chunk only if the client asked for it)."""
        body, include_usage = openai_api.for_streaming(body)
        owner = permitted.model.markings.owner
        content, headers = await self._signed(owner, PATHS[operation], principal, body)
        client = self._http()
        request = client.build_request(
            "POST", federation_url(permitted, operation), content=content, headers=headers
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as error:
            raise _unreachable(permitted, error) from None
        if response.status_code >= 400:
            try:
                await response.aread()
            except httpx.HTTPError as error:
                raise _unreachable(permitted, error) from None
            finally:
                await response.aclose()
            return _owner_error(response)
        return StreamingResponse(
            self._events(permitted, response, include_usage, charge),
            media_type="text/event-stream",
            headers={**_marking(response, permitted), "Cache-Control": "no-cache"},
        )

    async def _events(
        self,
        permitted: Permitted,
        response: httpx.Response,
        include_usage: bool,
        charge: Callable[[int | None], None],
    ) -> AsyncIterator[bytes]:
        used, counted, done = 0, 0, False
        pending = b""
        try:
            async for data in response.aiter_bytes():
                pending += data
                while b"\n\n" in pending:
                    event, pending = pending.split(b"\n\n", 1)
                    if event.strip() == openai_api.DONE.strip():
                        done = True
                    else:
                        chunk = _chunk_of(event)
                        if openai_api.is_usage_chunk(chunk):
                            used = openai_api.tokens_used(chunk)
                            if not include_usage:
                                continue
                        elif isinstance(chunk, dict) and "error" not in chunk:
                            counted += 1
                            used = openai_api.tokens_used(chunk) or used
                    yield event + b"\n\n"
        except httpx.HTTPError as error:  # mid-stream: an error event, then the end
            yield openai_api.sse(_unreachable(permitted, error).body())
            done = False
        finally:
            await response.aclose()
            charge((used or counted) if done else None)  # None: cut short, pays its reservation
        if not done:
            yield openai_api.DONE


def _chunk_of(event: bytes) -> Any:
    """The JSON of one `data: …` event, None for anything else."""
    if not event.startswith(b"data:"):
        return None
    try:
        return json.loads(event[len(b"data:") :])
    except (ValueError, UnicodeDecodeError):
        return None
