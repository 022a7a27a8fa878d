"""The gateway's pure parts, without Ray: access decisions, token cache, quotas, request checks."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sovereign_devstack.processes import free_loopback_port
from sovereign_serving.gateway import NOT_AVAILABLE, GatewayError, build_app
from sovereign_serving.gateway._access import Access
from sovereign_serving.gateway._errors import MAX_ECHOED, not_available
from sovereign_serving.gateway._federation import Federation, federation_url
from sovereign_serving.gateway._openai import (
    capped,
    check_limits,
    check_supported,
    for_streaming,
    parse_body,
    tokens_used,
)
from sovereign_serving.gateway._quota_ledger import quota_table

from sovereign.domain.markings import Classification, Principal
from sovereign.identity.federation_assertions import ReplayCache, assertion_claims
from sovereign.serving_contract import GatewayConfig
from tests.serving.gateway.nations import ISSUERS, bundle_keeping_deu_out, gateway_config, gateway_signer


def access(nation: str, **options: Any) -> Access:
    return Access(GatewayConfig.model_validate(gateway_config(nation, **options)))


def bearer(nation: str, **claims: Any) -> str:
    return f"Bearer {ISSUERS[nation].token(**claims)}"


def refusal(call: Any) -> GatewayError:
    with pytest.raises(GatewayError) as refused:
        result = call()
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    return refused.value


def authenticate(gateway: Access, header: str) -> Any:
    return asyncio.run(gateway.authenticate(header))


def test_own_users_are_authenticated_and_cached() -> None:
    deu = access("DEU")
    header = bearer("DEU", subject="ada")
    first = authenticate(deu, header)
    assert (first.sub, first.nationality, first.issuer_nation) == ("ada", "DEU", "DEU")
    assert authenticate(deu, header) is first  # cached until the token expires


@pytest.mark.parametrize(
    ("header", "status", "code"),
    [
        (None, 401, "missing-token"),
        ("Basic abc", 401, "missing-token"),
        ("Bearer not-a-jwt", 401, "malformed"),
    ],
)
def test_bad_credentials(header: str | None, status: int, code: str) -> None:
    error = refusal(lambda: access("DEU").authenticate(header))
    assert (error.status, error.code, error.headers["WWW-Authenticate"]) == (status, code, "Bearer")


def test_expired_and_foreign_tokens() -> None:
    deu = access("DEU")
    expired = bearer("DEU", now=time.time() - 7200, ttl_seconds=60)
    error = refusal(lambda: deu.authenticate(expired))
    assert error.code == "expired" and expired.split()[1] not in error.message
    foreign = refusal(lambda: authenticate(deu, bearer("FRA")))
    assert (foreign.status, foreign.message) == (401, "this endpoint serves DEU users only")


def visitor_assertion(route: str = "chat/completions", body: bytes = b"{}", subject: str = "visitor") -> str:
    """A DEU gateway's assertion for FRA, signed with DEU's in-memory gateway key."""
    principal = Principal(
        sub=subject, nationality="DEU", clearance=Classification.NATO_SECRET, issuerNation="DEU"
    )
    claims = assertion_claims("DEU", "FRA", principal, route, body, link="link-1")
    return f"Bearer {gateway_signer('DEU').sign(claims)}"


def test_federation_takes_peer_gateways_assertions_for_own_models_only() -> None:
    fra, replay = access("FRA"), ReplayCache()
    visitor = fra.authenticate_gateway(visitor_assertion(), "chat/completions", b"{}", replay).principal
    assert (visitor.sub, visitor.nationality, visitor.issuer_nation) == ("visitor", "DEU", "DEU")
    assert fra.permit(visitor, "fra/analyst", owned_only=True).model.name == "fra/analyst"
    # Another nation's model (even one the visitor's own gateway could serve) and an unknown one, alike.
    for model in ("deu/ghost", "pol/scribe", "fra/absent"):
        error = refusal(lambda m=model: fra.permit(visitor, m, owned_only=True))
        assert (error.status, error.message) == (403, NOT_AVAILABLE.format(name=model))
    # A user's own token is no assertion; an assertion is no user's token.
    user_token = refusal(lambda: fra.authenticate_gateway(bearer("DEU"), "chat/completions", b"{}", replay))
    assert (user_token.status, user_token.code) == (401, "not-an-assertion")
    public = refusal(lambda: fra.authenticate(visitor_assertion()))
    assert (public.status, public.code) == (401, "unknown-issuer")


def test_an_owner_without_a_signer_forwards_nothing() -> None:
    deu = access("DEU", federation_urls={"FRA": "http://127.0.0.1:9/fra"})
    permitted = deu.permit(authenticate(deu, bearer("DEU")), "fra/analyst")
    body = {"model": "fra/analyst", "messages": []}
    error = refusal(lambda: Federation().answer(permitted, "chat", permitted_principal(deu), body))
    assert (error.status, error.code) == (503, "federation_unavailable")


def permitted_principal(gateway: Access) -> Principal:
    return authenticate(gateway, bearer(gateway.nation))


def test_an_unreachable_owner_is_503_model_unavailable() -> None:
    base = f"http://127.0.0.1:{free_loopback_port()}/fra"  # nothing listens there
    config = gateway_config("DEU", federation_urls={"FRA": base})
    deu = Access(GatewayConfig.model_validate(config))
    principal = authenticate(deu, bearer("DEU"))
    permitted = deu.permit(principal, "fra/analyst")
    signing = Federation("DEU", gateway_signer("DEU"))
    assert federation_url(permitted, "chat") == f"{base}/federation/v1/chat/completions"
    body = {"model": "fra/analyst", "messages": [{"role": "user", "content": "x"}]}
    for call in (
        lambda: signing.answer(permitted, "chat", principal, body),
        lambda: signing.stream(permitted, "chat", principal, body, lambda _: None),
    ):
        error = refusal(call)
        assert (error.status, error.code) == (503, "model_unavailable")


def test_unknown_and_forbidden_models_are_refused_alike() -> None:
    pol = access("POL")
    user = authenticate(pol, bearer("POL"))
    answers = [refusal(lambda m=m: pol.permit(user, m)) for m in ("fra/analyst", "fra/absent")]
    assert [(e.status, e.message) for e in answers] == [
        (403, NOT_AVAILABLE.format(name="fra/analyst")),
        (403, NOT_AVAILABLE.format(name="fra/absent")),
    ]


def test_permitted_model_carries_its_marking_and_listing_follows_policy() -> None:
    deu = access("DEU")
    user = authenticate(deu, bearer("DEU"))
    assert deu.permit(user, "fra/analyst").headers() == {
        "X-Sovereign-Classification": "NATO RESTRICTED",
        "X-Sovereign-Releasable-To": "DEU,FRA",
    }
    assert [m.name for m in deu.visible_models(user)] == ["fra/analyst", "fra/embed", "deu/ghost"]
    low = authenticate(deu, bearer("DEU", clearance=Classification.NATO_UNCLASSIFIED))
    assert [m.name for m in deu.visible_models(low)] == ["fra/embed"]
    ruled = access("DEU", bundle=bundle_keeping_deu_out())
    assert [m.name for m in ruled.visible_models(authenticate(ruled, bearer("DEU")))] == ["deu/ghost"]


def test_config_needs_the_own_tenant_and_an_intact_bundle() -> None:
    config = gateway_config("DEU")
    with pytest.raises(ValueError, match="no Tenant of LVA"):  # whose quotas would its users spend?
        quota_table(GatewayConfig.model_validate({**config, "nation": "LVA"}))
    torn = {**config["bundle"], "version": "0000"}
    with pytest.raises(ValueError, match="torn"):
        Access(GatewayConfig.model_validate({**config, "bundle": torn}))


def test_max_tokens_capped_at_the_model() -> None:
    model = access("DEU").models["fra/analyst"]
    assert capped({"model": "m"}, model, "chat")["max_tokens"] == 16
    assert capped({"max_tokens": 500}, model, "completion")["max_tokens"] == 16
    assert capped({"max_completion_tokens": 8}, model, "chat") == {"max_completion_tokens": 8}
    for bad in (0, -1, "10", True):
        assert refusal(lambda b=bad: capped({"max_tokens": b}, model, "chat")).status == 400


def test_bodies_and_usage() -> None:
    assert refusal(lambda: parse_body(b"[1]")).code == "invalid_json"
    assert refusal(lambda: parse_body(b"{")).status == 400
    body, include = for_streaming({"stream": True})
    assert body["stream_options"] == {"include_usage": True} and include is False
    assert tokens_used({"usage": {"prompt_tokens": 2, "completion_tokens": 3}}) == 5
    assert tokens_used({"choices": []}) == 0


def test_input_limits_come_from_the_model_and_name_the_parameter() -> None:
    model = access("DEU").models["fra/analyst"]  # the defaults: 256 messages, 100,000 characters, 64 inputs
    one = {"role": "user", "content": "x"}
    check_limits({"messages": [one] * 256}, model, "chat")
    assert (refusal(lambda: check_limits({"messages": [one] * 257}, model, "chat")).param) == "messages"
    parts = {"role": "user", "content": [{"type": "text", "text": "x" * 60_000}] * 2}
    too_long = refusal(lambda: check_limits({"messages": [parts]}, model, "chat"))
    assert (too_long.code, too_long.param) == ("too_many_characters", "messages")
    assert refusal(lambda: check_limits({"prompt": ["y" * 100_001]}, model, "completion")).param == "prompt"
    assert refusal(lambda: check_limits({"input": ["z"] * 65}, model, "embed")).code == "too_many_inputs"
    small = model.model_copy(update={"limits": model.limits.model_copy(update={"max_inputs": 2})})
    assert refusal(lambda: check_limits({"input": ["a", "b", "c"]}, small, "embed")).param == "input"


@pytest.mark.parametrize(
    ("kind", "body", "param"),
    [
        ("chat", {"n": 5}, "n"),
        ("chat", {"n": True}, "n"),
        ("chat", {"logprobs": True}, "logprobs"),
        ("chat", {"tools": [{"type": "function"}]}, "tools"),
        ("completion", {"best_of": 3}, "best_of"),
        ("completion", {"echo": True}, "echo"),
    ],
)
def test_unsupported_parameters_are_400_naming_them(kind: str, body: dict[str, Any], param: str) -> None:
    refused = refusal(lambda: check_supported(body, kind))
    assert (refused.status, refused.code, refused.param) == (400, "unsupported_parameter", param)


def test_harmless_values_of_unsupported_parameters_pass_and_echoes_are_bounded() -> None:
    check_supported({"n": 1, "logprobs": False, "tools": [], "stream": True}, "chat")
    check_supported({"n": None, "best_of": 1, "echo": False}, "completion")
    assert len(not_available("m" * 200_000).message) < MAX_ECHOED + 40


def test_build_app_refuses_unknown_arguments() -> None:
    with pytest.raises(ValueError, match="unknown gateway arguments"):
        build_app({"conf": {}})
