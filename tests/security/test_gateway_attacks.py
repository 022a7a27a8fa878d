"""Attacks on a nation's endpoint through real HTTP to a real gateway (Ray Serve, in-process), as an attacker
tries them: another nation's caller sends junk to drain the owner's quota, one user starves their colleagues,
a stream cut after its first event dodges the token quota, refusals leave no trace in the audit log, and
inputs beyond every bound (body size, messages, characters, embedding inputs, unsupported parameters, a
huge model name) are refused with the documented status, naming the parameter, each in the audit log. (A
prompt beyond the model's context: tests/serving/gateway/test_gateway_on_ray.py, where token quotas are large
enough to reach the model.)

One Ray and one Serve for the module: the fake model and FRA's gateway (its audit log under FRA's key in a
real OpenBao of the module's own). FRA's quotas: 12 requests a minute for the nation, 3 per user, 60 tokens
per user; FRA caps DEU's users together at 3 requests a minute. Another nation's caller on FRA's federation
routes is a peer gateway's assertion (signed here with DEU's gateway key, as a misbehaving DEU gateway would).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import ray
from ray import serve
from sovereign_devstack.pki import CertificateAuthority
from sovereign_devstack.processes import free_loopback_port
from sovereign_serving.gateway import QUOTA_NAMESPACE, build_app
from sovereign_serving.gateway._openai import MAX_BODY_BYTES
from sovereign_serving.gateway._quota_ledger import QuotaTable, Rate, quota_table

from sovereign.audit import DECISIONS_STREAM, AuditRecord, read, stream_directory
from sovereign.domain.markings import Classification, Principal
from sovereign.domain.nations import gateway_route_prefix, quota_actor_name
from sovereign.identity.federation_assertions import assertion_claims
from sovereign.serving_contract import GatewayConfig
from tests.helpers import wait_until
from tests.servers import KubeAPI, VaultServer, running_vault
from tests.serving.gateway.nation_vault import audit_sink_in
from tests.serving.gateway.nations import FAKE_APP, ISSUERS, gateway_config, gateway_signer
from tests.serving.local_serve import local_serve

FRA_QUOTAS = {
    "requestsPerMinute": 12,
    "userRequestsPerMinute": 3,
    "userTokensPerMinute": 60,
    "peers": {"DEU": {"requestsPerMinute": 3}},
}
PROMPT = "x" * 100  # 25 tokens reserved, and the model's maxTokens (16): 41 of a user's 60


@dataclass(frozen=True)
class Serving:
    url: str  # FRA's gateway
    metrics_url: str  # the Ray node's Prometheus metrics (the replicas' too)
    audit_dir: Path
    vault: VaultServer


def fra_config(audit: dict[str, Any] | None = None) -> dict[str, Any]:
    config = gateway_config("FRA", quotas=FRA_QUOTAS)
    return config if audit is None else {**config, "audit": audit}


@pytest.fixture(scope="module")
def serving(
    kube_api: KubeAPI, devstack_ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Serving]:
    home = tmp_path_factory.mktemp("quota-attacks")
    metrics_port = free_loopback_port()
    with (
        running_vault(home / "vault", devstack_ca) as vault,
        audit_sink_in(vault, kube_api, "FRA", home) as sink,
        local_serve(
            {"RAY_metrics_report_interval_ms": "1000"},  # 401s counted within 1 s
            _node_ip_address="127.0.0.1",
            _metrics_export_port=metrics_port,
        ) as port,
    ):
        from tests.serving.gateway.fake_model import app as fake_model

        serve.run(fake_model, name=FAKE_APP, route_prefix=None)
        serve.run(
            build_app({"config": fra_config(sink)}),
            name="fra-gateway",
            route_prefix=gateway_route_prefix("FRA"),
        )
        yield Serving(
            f"http://127.0.0.1:{port}/fra",
            f"http://127.0.0.1:{metrics_port}/metrics",
            Path(sink["directory"]),
            vault,
        )


@pytest.fixture
def fra(serving: Serving) -> Serving:
    """FRA's gateway with every bucket full: its QuotaKeeper resized to huge quotas, then back to FRA's (a
    resize keeps the level, capped at the new capacity). No wait between: at these rates the microseconds
    the keeper's clock moves between two calls refill every bucket past FRA's capacities."""
    table = quota_table(GatewayConfig.model_validate(fra_config()))
    huge = Rate(10**15, 10**18)
    keeper = ray.get_actor(quota_actor_name("FRA"), namespace=QUOTA_NAMESPACE)
    ray.get(
        keeper.configure.remote(QuotaTable("FRA", {n: (huge, huge) for n in table.nations}, {"DEU": huge}))
    )
    ray.get(keeper.configure.remote(table))
    return serving


def fra_user(subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {ISSUERS['FRA'].token(subject=subject)}"}


def ask_body() -> dict[str, Any]:
    return {"model": "fra/analyst", "messages": [{"role": "user", "content": PROMPT}]}


def ask(fra: Serving, headers: dict[str, str], body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(
        f"{fra.url}/v1/chat/completions",
        headers=headers,
        json=ask_body() if body is None else body,
        timeout=60,
    )


def deu_gateway_sends(fra: Serving, subject: str, body: bytes) -> httpx.Response:
    """What a DEU gateway sends FRA's federation route for its user `subject`: an assertion it signed for
    exactly this route and body."""
    principal = Principal(
        sub=subject, nationality="DEU", clearance=Classification.NATO_SECRET, issuerNation="DEU"
    )
    claims = assertion_claims("DEU", "FRA", principal, "chat/completions", body, link=uuid.uuid4().hex)
    return httpx.post(
        f"{fra.url}/federation/v1/chat/completions",
        headers={"Authorization": f"Bearer {gateway_signer('DEU').sign(claims)}"},
        content=body,
        timeout=60,
    )


def refusals(fra: Serving, subject: str) -> list[AuditRecord]:
    directory = stream_directory(fra.audit_dir, "FRA", DECISIONS_STREAM)
    return [
        record
        for record in read(directory, fra.vault.client(), "FRA")
        if record.kind == "refusal" and record.actor.sub == subject
    ]


def code(response: httpx.Response) -> tuple[int, str | None]:
    return response.status_code, None if response.is_success else response.json()["error"]["code"]


def test_another_nations_junk_spends_its_own_quota_never_the_owners(fra: Serving) -> None:
    sent = [code(deu_gateway_sends(fra, "junk-sender", b"not json")) for _ in range(20)]
    assert sent[:3] == [(400, "invalid_json")] * 3  # within FRA's cap on DEU
    assert set(sent[3:]) == {(429, "rate_limit_exceeded")}
    limited = deu_gateway_sends(fra, "junk-sender", b"not json")
    assert limited.json()["error"]["message"].startswith("FRA's cap on your nation's requests per minute")
    assert int(limited.headers["Retry-After"]) >= 1
    # FRA's own analysts are served: the junk spent DEU's quotas and FRA's cap on DEU, nothing of FRA's.
    for analyst in ("analyst-1", "analyst-2", "analyst-3", "analyst-4"):
        assert code(ask(fra, fra_user(analyst))) == (200, None)
    recorded = refusals(fra, "junk-sender")  # every refusal, in FRA's log, as DEU's caller's
    assert len(recorded) == 21 and {r.actor.nation for r in recorded} == {"DEU"}
    assert {(r.details["status"], r.details["code"], r.details["federated"]) for r in recorded} == {
        (400, "invalid_json", True),
        (429, "rate_limit_exceeded", True),
    }


def test_one_user_exhausting_their_quota_leaves_their_colleagues_served(fra: Serving) -> None:
    greedy = fra_user("greedy")
    assert [code(ask(fra, greedy)) for _ in range(3)] == [(200, None)] * 3
    refused = ask(fra, greedy)
    assert code(refused) == (429, "rate_limit_exceeded")
    assert refused.json()["error"]["message"].startswith("your requests per minute quota is used up")
    assert code(ask(fra, fra_user("colleague"))) == (200, None)


def test_a_stream_cut_after_its_first_event_pays_its_reservation(fra: Serving) -> None:
    # Read to its end, a stream is settled with what it used (6 of the 41 reserved): the next request fits.
    finished = fra_user("reads-to-the-end")
    streamed = ask(fra, finished, {**ask_body(), "stream": True})
    assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
    assert code(ask(fra, finished)) == (200, None)
    # Cut after its first event, it pays all 41: the same request no longer fits the user's 60 tokens.
    cutter = fra_user("cuts-streams")
    body = {**ask_body(), "stream": True, "user": "stall"}
    with httpx.stream(
        "POST", f"{fra.url}/v1/chat/completions", headers=cutter, json=body, timeout=60
    ) as response:
        assert response.status_code == 200
        assert next(response.iter_lines()).startswith("data: ")
    refused = ask(fra, cutter)
    assert code(refused) == (429, "rate_limit_exceeded")
    assert refused.json()["error"]["message"].startswith("your tokens per minute quota is used up")


def test_every_refusal_after_authentication_is_audited_and_a_401_only_counted(fra: Serving) -> None:
    auditor = fra_user("audited")
    assert code(ask(fra, auditor, {"messages": []})) == (400, "invalid_request")  # no model
    too_large = b"{" + b" " * (2 * 1024 * 1024)
    assert code(post_raw(fra, auditor, too_large)) == (413, "request_too_large")
    assert code(ask(fra, auditor, {**ask_body(), "model": "fra/absent"})) == (403, "model_not_available")
    assert code(ask(fra, auditor)) == (429, "rate_limit_exceeded")  # the user's 3 requests are spent
    before = unauthenticated_count(fra)
    for header in ({"Authorization": "Bearer not-a-token"}, {}):
        assert ask(fra, header).status_code == 401
    recorded = [(r.details["status"], r.details["code"]) for r in refusals(fra, "audited")]
    # The 403 is in the log once, as the policy's denial (a `decision` record), not again as a refusal.
    assert recorded == [(400, "invalid_request"), (413, "request_too_large"), (429, "rate_limit_exceeded")]
    directory = stream_directory(fra.audit_dir, "FRA", DECISIONS_STREAM)
    everything = read(directory, fra.vault.client(), "FRA")
    denied = [r for r in everything if r.kind == "decision" and r.actor.sub == "audited"]
    assert [(r.resources, r.decision and r.decision.outcome) for r in denied] == [(["fra/absent"], "denied")]
    assert not [r for r in everything if r.kind == "refusal" and r.details.get("status") == 401]
    wait_until(
        lambda: unauthenticated_count(fra) >= before + 2,
        "the 401s counted in ray_sovereign_unauthenticated_requests_total",
        timeout=60,
        interval=1,
    )


def post_raw(fra: Serving, headers: dict[str, str], content: bytes) -> httpx.Response:
    return httpx.post(
        f"{fra.url}/v1/chat/completions",
        headers={**headers, "Content-Type": "application/json"},
        content=content,
        timeout=60,
    )


def unauthenticated_count(fra: Serving) -> float:
    try:
        text = httpx.get(fra.metrics_url, timeout=10).text
    except httpx.HTTPError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ray_sovereign_unauthenticated_requests_total{") and 'tenant="FRA"' in line
    )


# SECTION input bounds (README, "Limits"): refused before the model works, naming the parameter, audited


def openai_client(fra: Serving, subject: str) -> openai.OpenAI:
    token = ISSUERS["FRA"].token(subject=subject)
    return openai.OpenAI(base_url=f"{fra.url}/v1", api_key=token, max_retries=0)


def refused_with(call: Any) -> tuple[int, str, str | None]:
    with pytest.raises(openai.APIStatusError) as excinfo:
        call()
    error = excinfo.value.response.json()["error"]
    return excinfo.value.status_code, error["code"], error["param"]


def test_a_body_beyond_the_cap_is_413_by_its_length_or_as_it_streams(fra: Serving) -> None:
    declared = post_raw(fra, fra_user("sends-64-mib"), b" " * (MAX_BODY_BYTES + 1))
    assert declared.status_code == 413, declared.text
    assert declared.json()["error"] == {
        "message": f"the request body is larger than {MAX_BODY_BYTES} bytes",
        "type": "invalid_request_error",
        "param": None,
        "code": "request_too_large",
    }

    def chunked() -> Iterator[bytes]:  # no Content-Length: refused once the bytes read pass the cap
        yield from (b" " * 65536 for _ in range(MAX_BODY_BYTES // 65536 + 1))

    streamed = httpx.post(
        f"{fra.url}/v1/chat/completions", content=chunked(), headers=fra_user("streams-64-mib"), timeout=60
    )
    assert code(streamed) == (413, "request_too_large")
    assert [r.details["code"] for r in refusals(fra, "streams-64-mib")] == ["request_too_large"]


def test_inputs_beyond_the_models_limits_are_400_naming_the_parameter(fra: Serving) -> None:
    one = [{"role": "user", "content": "x"}]
    chat = openai_client(fra, "floods-messages").chat.completions
    assert refused_with(lambda: chat.create(model="fra/analyst", messages=one * 257)) == (
        400,
        "too_many_messages",
        "messages",
    )
    long = [{"role": "user", "content": "x" * 100_001}]
    assert refused_with(lambda: chat.create(model="fra/analyst", messages=long)) == (
        400,
        "too_many_characters",
        "messages",
    )
    embeddings = openai_client(fra, "floods-inputs").embeddings
    assert refused_with(lambda: embeddings.create(model="fra/embed", input=["x"] * 65)) == (
        400,
        "too_many_inputs",
        "input",
    )
    assert [r.details["code"] for r in refusals(fra, "floods-messages")] == [
        "too_many_messages",
        "too_many_characters",
    ]
    assert [(r.details["code"], r.details["param"]) for r in refusals(fra, "floods-inputs")] == [
        ("too_many_inputs", "input")
    ]


def test_unsupported_parameters_and_a_huge_model_name(fra: Serving) -> None:
    client = openai_client(fra, "asks-for-five")
    one = [{"role": "user", "content": "x"}]
    assert refused_with(lambda: client.chat.completions.create(model="fra/analyst", messages=one, n=5)) == (
        400,
        "unsupported_parameter",
        "n",
    )
    assert refused_with(lambda: client.completions.create(model="fra/analyst", prompt="x", best_of=3)) == (
        400,
        "unsupported_parameter",
        "best_of",
    )
    huge = ask(fra, fra_user("huge-name"), {**ask_body(), "model": "m" * 200_000})
    assert code(huge) == (403, "model_not_available") and len(huge.content) < 1_000


FUZZ_EXAMPLES = 25  # per operation and generation mode (valid bodies, then invalid ones): 9 × 2 × 25 at most


def fuzz(operation: Any, mode: Any, url: str, headers: dict[str, str], failures: list[str]) -> int:
    """Schemathesis's cases of `operation` in `mode` sent to `url`; the failures (a 5xx other than a
    documented 503, an error of the call) appended; returns how many were sent."""
    from hypothesis import HealthCheck, given, settings

    from tests.security.gateway_schema import DOCUMENTED_503_CODES

    sent = 0
    label = f"{operation.label} ({mode.value})"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def one(case: Any) -> None:
        nonlocal sent
        sent += 1
        response = case.call(base_url=url, headers=headers, timeout=30)  # no hang: bounded
        if response.status_code < 500:
            return
        typed = "json" in response.headers.get("content-type", "")
        code = ((response.json() if typed else {}).get("error") or {}).get("code")
        if response.status_code == 503 and code in DOCUMENTED_503_CODES:
            return
        failures.append(f"{label}: {response.status_code} {response.text[:200]!r} for {case.body!r}")

    one()
    return sent


def test_fuzzed_requests_get_no_server_error_but_the_documented_503s(fra: Serving) -> None:
    """Hostile inputs, generated: schemathesis draws requests from the gateway's own API (its OpenAPI
    document built from its app, `gateway_schema.py`), valid and invalid, against FRA's real gateway with a
    valid token and quotas large enough that no request stops at the rate limit. Every answer comes within
    its timeout, with a status below 500 or a documented 503 (OpenAI-shaped, with its code)."""
    import schemathesis
    from schemathesis import GenerationMode

    from tests.security.gateway_schema import gateway_openapi

    schema = schemathesis.openapi.from_dict(gateway_openapi(["fra/analyst", "fra/embed", "deu/analyst"]))
    keeper = ray.get_actor(quota_actor_name("FRA"), namespace=QUOTA_NAMESPACE)
    table = quota_table(GatewayConfig.model_validate(fra_config()))
    huge = Rate(10**15, 10**18)
    ray.get(
        keeper.configure.remote(QuotaTable("FRA", {n: (huge, huge) for n in table.nations}, {"DEU": huge}))
    )
    failures: list[str] = []
    sent = 0
    started = time.monotonic()
    try:
        for result in schema.get_all_operations():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                sent += fuzz(result.ok(), mode, fra.url, fra_user("fuzzer"), failures)
    finally:
        ray.get(keeper.configure.remote(table))
    elapsed = time.monotonic() - started
    print(f"\nfuzzed FRA's gateway: {sent} requests in {elapsed:.1f} s, {len(failures)} server errors")
    assert not failures, "\n".join(failures[:10])
