"""The gateway on a real (in-process) Ray Serve, driven by the official `openai` client.

One Ray and one Serve per module, deployed declaratively as the operator does: a fake model application, the
gateways of DEU and POL (one replica each), of FRA (two replicas, a small request quota) and of EST (never
configured). Everything is addressed as a client would: `http://127.0.0.1:<port>/<nation>/v1`.

Federation (kuberay, one Ray cluster per nation) on the same Ray: a second DEU gateway, at `/deu-federated`,
whose config gives FRA's models a `federationUrl` pointing at FRA's gateway over HTTP (`/fra`), so it must
go through FRA's `/federation/v1/...` routes although a handle would exist here, with assertions it signs with
DEU's gateway key in a real OpenBao of the module's own (FRA's config publishes that key set for DEU).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import ray
from ray import serve
from ray.serve.context import _get_global_client
from ray.serve.schema import ServeDeploySchema
from sovereign_devstack.processes import free_loopback_port
from sovereign_serving.audit_writer import AUDIT_NAMESPACE
from sovereign_serving.gateway import NOT_AVAILABLE, QUOTA_NAMESPACE, _ratelimit
from sovereign_serving.gateway._quota_ledger import QuotaTable, Rate, quota_table

from sovereign.audit import DECISIONS_STREAM, stream_directory, verify
from sovereign.domain.markings import Classification
from sovereign.domain.nations import (
    audit_writer_name,
    gateway_application_name,
    gateway_route_prefix,
    quota_actor_name,
)
from sovereign.serving_contract import GATEWAY_IMPORT_PATH, GatewayConfig
from tests.helpers import wait_until
from tests.servers import KubeAPI, VaultServer
from tests.serving.gateway.nation_vault import audit_sink_in, chat
from tests.serving.gateway.nations import (
    FAKE_APP,
    ISSUERS,
    bundle_keeping_deu_out,
    gateway_config,
)
from tests.serving.local_serve import local_serve

FRA_REQUESTS_PER_MINUTE = 4
# FRA's users may each use all 4; FRA caps DEU's users together at 4 a minute on its federation routes.
FRA_QUOTAS = {
    "userRequestsPerMinute": FRA_REQUESTS_PER_MINUTE,
    "peers": {"DEU": {"requestsPerMinute": FRA_REQUESTS_PER_MINUTE}},
}
FEDERATED_DEU = "/deu-federated"  # DEU's gateway as on kuberay: FRA's models through FRA's gateway
FAKE_IMPORT_PATH = "tests.serving.gateway.fake_model:app"


def gateway_app(
    nation: str, config: dict[str, Any] | None, replicas: int = 1, *, prefix: str | None = None
) -> dict[str, Any]:
    """A gateway application as the operator writes it into the nation's Serve config (`prefix`: a second
    gateway of the nation, at another route, under an application name of its own)."""
    deployment: dict[str, Any] = {
        "name": "Gateway",
        "num_replicas": replicas,
        "ray_actor_options": {"num_cpus": 0},
    }
    if config is not None:
        deployment["user_config"] = config
    return {
        "name": gateway_application_name(nation) + (prefix.replace("/", "-") if prefix else ""),
        "route_prefix": prefix or gateway_route_prefix(nation),
        "import_path": GATEWAY_IMPORT_PATH,
        "args": {},
        "deployments": [deployment],
    }


class ServeConfig:
    """The whole cluster's Serve config, applied declaratively (what `PUT /api/serve/applications/` does),
    so a changed user_config reaches the running replicas through `reconfigure`, without restarting them."""

    def __init__(self, port: int, applications: list[dict[str, Any]]) -> None:
        self.port = port
        self.applications = {app["name"]: app for app in applications}

    def apply(self, timeout: float = 120.0) -> None:
        before = {name: self._deployed_at(name) for name in self.applications}
        schema = ServeDeploySchema.model_validate(
            {
                "http_options": {"host": "127.0.0.1", "port": self.port},
                "applications": list(self.applications.values()),
            }
        )
        _get_global_client().deploy_apps(schema)

        def redeployed() -> bool:
            status = serve.status().applications
            return all(
                name in status
                and status[name].status == "RUNNING"
                and status[name].last_deployed_time_s != before[name]
                for name in self.applications
            )

        wait_until(redeployed, f"Serve applications {sorted(self.applications)} running", timeout=timeout)

    @staticmethod
    def _deployed_at(name: str) -> float | None:
        found = serve.status().applications.get(name)
        return found.last_deployed_time_s if found else None

    def set_gateway_config(self, nation: str, config: dict[str, Any]) -> None:
        app = self.applications[gateway_application_name(nation)]
        app["deployments"][0]["user_config"] = config
        self.apply()


@pytest.fixture(scope="module")
def platform(deu_signing: tuple[dict[str, Any], dict[str, Any]]) -> Iterator[tuple[str, ServeConfig]]:
    started = time.monotonic()
    deu_signer, deu_keys = deu_signing
    with local_serve() as port:
        config = ServeConfig(
            port,
            [
                {
                    "name": FAKE_APP,
                    "route_prefix": None,
                    "import_path": "tests.serving.gateway.fake_model:app",
                },
                gateway_app("DEU", gateway_config("DEU")),
                gateway_app("POL", gateway_config("POL")),
                gateway_app(
                    "FRA",
                    gateway_config(
                        "FRA",
                        requests_per_minute=FRA_REQUESTS_PER_MINUTE,
                        quotas=FRA_QUOTAS,
                        gateway_keys={"DEU": deu_keys},
                    ),
                    replicas=2,
                ),
                gateway_app("EST", None),  # never configured
                gateway_app(
                    "DEU",
                    {
                        **gateway_config("DEU", federation_urls={"FRA": f"http://127.0.0.1:{port}/fra"}),
                        "federation": deu_signer,
                    },
                    prefix=FEDERATED_DEU,
                ),
            ],
        )
        config.apply()
        print(f"\nRay, Serve and the applications up in {time.monotonic() - started:.1f} s")
        yield f"http://127.0.0.1:{port}", config
    print(f"\nmodule fixture total {time.monotonic() - started:.1f} s")


@pytest.fixture
def base_url(platform: tuple[str, ServeConfig]) -> str:
    return platform[0]


def client(base_url: str, nation: str, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/{nation.lower()}/v1", api_key=token, max_retries=0)


def user(nation: str, **claims: object) -> str:
    return ISSUERS[nation].token(**claims)  # type: ignore[arg-type]


# SECTION allowed calls


def test_chat_across_nations_with_marking_headers(base_url: str) -> None:
    deu = client(base_url, "DEU", user("DEU"))
    raw = deu.chat.completions.with_raw_response.create(
        model="fra/analyst", messages=[{"role": "user", "content": "hello"}], max_tokens=500
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == "messages=1 max_tokens=16"  # capped at maxTokens
    assert raw.headers["X-Sovereign-Classification"] == "NATO RESTRICTED"
    assert raw.headers["X-Sovereign-Releasable-To"] == "DEU,FRA"
    assert answer.usage is not None and answer.usage.total_tokens == 5


def test_chat_streaming(base_url: str) -> None:
    deu = client(base_url, "DEU", user("DEU"))
    with deu.chat.completions.with_streaming_response.create(
        model="fra/analyst", messages=[{"role": "user", "content": "hi"}], stream=True
    ) as raw:
        assert raw.headers["X-Sovereign-Classification"] == "NATO RESTRICTED"
        assert raw.headers["X-Sovereign-Releasable-To"] == "DEU,FRA"
        assert raw.headers["content-type"].startswith("text/event-stream")
        chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "sovereign answer here "
    assert chunks[-1].choices[0].finish_reason == "stop"  # no usage chunk: the client did not ask


def test_chat_streaming_with_usage_and_the_done_event(base_url: str) -> None:
    body = {
        "model": "fra/analyst",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = httpx.post(
        f"{base_url}/deu/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {user('DEU')}"},
        timeout=30,
    )
    assert response.status_code == 200
    events = [line for line in response.text.split("\n\n") if line]
    assert all(event.startswith("data: ") for event in events)
    assert events[-1] == "data: [DONE]"
    assert '"usage":{"prompt_tokens":3' in events[-2]


def test_completions_plain_and_streaming(base_url: str) -> None:
    deu = client(base_url, "DEU", user("DEU"))
    answer = deu.completions.create(model="fra/analyst", prompt="once upon", max_tokens=4)
    assert answer.choices[0].text == "max_tokens=4"
    streamed = "".join(
        c.choices[0].text
        for c in deu.completions.create(model="fra/analyst", prompt="once upon", stream=True)
    )
    assert streamed == "sovereignanswerhere"


def test_embeddings(base_url: str) -> None:
    deu = client(base_url, "DEU", user("DEU"))
    raw = deu.embeddings.with_raw_response.create(model="fra/embed", input=["a", "b"])
    answer = raw.parse()
    assert [d.embedding for d in answer.data] == [[0.25, -0.5, 0.0], [0.25, -0.5, 1.0]]
    assert raw.headers["X-Sovereign-Classification"] == "NATO UNCLASSIFIED"


def test_models_listed_per_nation(base_url: str) -> None:
    deu = [m.id for m in client(base_url, "DEU", user("DEU")).models.list()]
    pol = [m.id for m in client(base_url, "POL", user("POL")).models.list()]
    assert deu == ["fra/analyst", "fra/embed", "deu/ghost"]
    assert pol == ["pol/scribe", "fra/liaison"]  # FRA's own model, disclosed to POL by FRA's rule


def test_an_answer_an_owner_disclosed_is_marked_releasable_to_its_recipient(base_url: str) -> None:
    """`fra/liaison` is released to no one, but FRA's own rule lets POL's users invoke it: the answer a POL
    user gets is marked REL TO FRA,POL, never a marking that excludes POL (policies/cedar/README.md)."""
    pol = client(base_url, "POL", user("POL"))
    raw = pol.chat.completions.with_raw_response.create(
        model="fra/liaison", messages=[{"role": "user", "content": "x"}]
    )
    assert raw.parse().choices
    assert raw.headers["X-Sovereign-Releasable-To"] == "FRA,POL"
    with pytest.raises(openai.PermissionDeniedError):  # FRA disclosed nothing else to POL
        pol.chat.completions.create(model="fra/analyst", messages=[{"role": "user", "content": "x"}])


# SECTION denials and errors


def error_of(excinfo: pytest.ExceptionInfo[openai.APIStatusError]) -> dict:
    body = excinfo.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}, body
    return body


@pytest.mark.parametrize("model", ["fra/analyst", "fra/nothing-here"])
def test_forbidden_and_unknown_models_get_one_answer(base_url: str, model: str) -> None:
    pol = client(base_url, "POL", user("POL"))
    with pytest.raises(openai.PermissionDeniedError) as denied:
        pol.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert error_of(denied)["message"] == NOT_AVAILABLE.format(name=model)
    assert error_of(denied)["code"] == "model_not_available"


def test_another_nations_valid_token_is_refused(base_url: str) -> None:
    with pytest.raises(openai.AuthenticationError) as refused:
        client(base_url, "DEU", user("FRA")).models.list()
    assert error_of(refused)["message"] == "this endpoint serves DEU users only"


def test_expired_token_is_refused_with_its_code(base_url: str) -> None:
    expired = ISSUERS["DEU"].token(now=time.time() - 7200, ttl_seconds=600)
    with pytest.raises(openai.AuthenticationError) as refused:
        client(base_url, "DEU", expired).models.list()
    assert error_of(refused)["code"] == "expired"
    assert expired not in str(refused.value.body)


def test_missing_token_and_malformed_body(base_url: str) -> None:
    missing = httpx.get(f"{base_url}/deu/v1/models", timeout=30)
    assert missing.status_code == 401, missing.text
    assert missing.json()["error"]["code"] == "missing-token"
    bad = httpx.post(
        f"{base_url}/deu/v1/chat/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {user('DEU')}"},
        timeout=30,
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    with pytest.raises(openai.BadRequestError) as wrong_task:
        client(base_url, "DEU", user("DEU")).embeddings.create(model="fra/analyst", input="x")
    assert error_of(wrong_task)["code"] == "wrong_task"


def test_model_unavailable_and_failing(base_url: str) -> None:
    deu = client(base_url, "DEU", user("DEU"))
    with pytest.raises(openai.InternalServerError) as unavailable:
        deu.chat.completions.create(model="deu/ghost", messages=[{"role": "user", "content": "x"}])
    assert unavailable.value.status_code == 503
    assert error_of(unavailable)["message"] == "the model is not available right now"
    with pytest.raises(openai.InternalServerError) as failed:
        deu.chat.completions.create(
            model="fra/analyst", messages=[{"role": "user", "content": "x"}], user="explode"
        )
    assert failed.value.status_code == 502
    assert "on purpose" not in str(failed.value.body)


# SECTION input bounds (README, "Limits"); the other bounds, audited: tests/security/test_gateway_attacks.py


def refused(excinfo: pytest.ExceptionInfo[openai.APIStatusError]) -> tuple[int, str, str | None]:
    error = error_of(excinfo)
    return excinfo.value.status_code, error["code"], error["param"]


def test_a_prompt_beyond_the_models_context_is_400_context_length_exceeded(base_url: str) -> None:
    """The fake model refuses as the model server does (a word a token, 2,048 positions), streamed too."""
    deu = client(base_url, "DEU", user("DEU"))
    long = [{"role": "user", "content": "word " * 9_576}]
    with pytest.raises(openai.BadRequestError) as plain:
        deu.chat.completions.create(model="fra/analyst", messages=long)
    assert refused(plain) == (400, "context_length_exceeded", "messages")
    assert "2048" in error_of(plain)["message"] and "9576" in error_of(plain)["message"]
    with pytest.raises(openai.BadRequestError) as streamed:
        deu.chat.completions.create(model="fra/analyst", messages=long, stream=True)
    assert refused(streamed) == (400, "context_length_exceeded", "messages")
    with pytest.raises(openai.BadRequestError) as completion:
        deu.completions.create(model="fra/analyst", prompt="word " * 9_576)
    assert refused(completion) == (400, "context_length_exceeded", "prompt")


# SECTION rate limits and configuration


def fresh_quota(nation: str) -> None:
    """FRA's gateway's buckets full again, so quota tests do not depend on what earlier tests used: its
    QuotaKeeper resized to huge quotas, then back to the fixture's limits (a resize keeps the level, capped at
    the new capacity). No wait between: at these rates the microseconds the keeper's clock moves between two
    calls refill every bucket past the fixture's capacities."""
    assert nation == "FRA"
    table = quota_table(
        GatewayConfig.model_validate(
            gateway_config("FRA", requests_per_minute=FRA_REQUESTS_PER_MINUTE, quotas=FRA_QUOTAS)
        )
    )
    huge = Rate(10**15, 10**18)
    keeper = ray.get_actor(quota_actor_name(nation), namespace=QUOTA_NAMESPACE)
    ray.get(
        keeper.configure.remote(QuotaTable("FRA", {n: (huge, huge) for n in table.nations}, {"DEU": huge}))
    )
    ray.get(keeper.configure.remote(table))


def test_request_quota_holds_across_two_replicas(base_url: str) -> None:
    fresh_quota("FRA")
    fra = client(base_url, "FRA", user("FRA"))

    def call(_: int) -> tuple[int, str | None]:
        try:
            fra.models.list()
            return 200, None
        except openai.RateLimitError as limited:
            return 429, limited.response.headers.get("Retry-After")

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, range(3 * FRA_REQUESTS_PER_MINUTE)))
    assert sum(1 for status, _ in results if status == 200) == FRA_REQUESTS_PER_MINUTE
    retry_after = {after for status, after in results if status == 429}
    assert retry_after and all(after is not None and int(after) >= 1 for after in retry_after)


def test_a_steady_caller_waits_for_the_quota_keeper_only_on_their_first_request(
    base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large quotas: a replica leases a caller's permits and reserves their tokens ahead, and tops both up in
    the background before they run out (each lasts LEASE_SECONDS), so 3 s of steady calls wait for the real
    QuotaKeeper once each way (a `quota admit` / `quota reserve` span is a replica waiting for it)."""
    waits: list[str] = []

    def counted(step: Any) -> Any:
        def wait(*args: Any) -> Any:
            waits.append(step.__name__)
            return step(*args)

        return wait

    for step in ("quota_admit", "quota_reserve"):
        monkeypatch.setattr(_ratelimit.telemetry, step, counted(getattr(_ratelimit.telemetry, step)))
    large = Rate(10**9, 10**12)

    async def steady_calls() -> None:
        client = _ratelimit.QuotaClient("SNT")  # a keeper of its own: no other test's buckets
        await client.configure(QuotaTable("SNT", {"SNT": (large, large)}))
        for _ in range(60):  # 20 a second for 3 s
            await client.admit("SNT", "ada")
            client.settle(await client.reserve("SNT", "ada", 100), used=40)
            await asyncio.sleep(0.05)

    asyncio.run(steady_calls())
    assert sorted(waits) == ["quota_admit", "quota_reserve"]


def test_reconfigure_with_a_new_bundle_changes_decisions(platform: tuple[str, ServeConfig]) -> None:
    base_url, config = platform
    deu = client(base_url, "DEU", user("DEU", subject="reconfigured"))
    ask: dict[str, Any] = {"model": "fra/analyst", "messages": [{"role": "user", "content": "x"}]}
    assert deu.chat.completions.create(**ask).choices
    try:
        config.set_gateway_config("DEU", gateway_config("DEU", bundle=bundle_keeping_deu_out()))
        with pytest.raises(openai.PermissionDeniedError):
            deu.chat.completions.create(**ask)
        assert [m.id for m in deu.models.list()] == ["deu/ghost"]
        # Refused (two Tenants name one issuer): nothing is served, not even the previous config.
        refused = gateway_config("DEU")
        refused["tenants"] = [
            *refused["tenants"],
            {**refused["tenants"][0], "spec": {"nation": "LUX", "clearance": "NATO SECRET"}},
        ]
        config.set_gateway_config("DEU", refused)
        response = httpx.get(f"{base_url}/deu/v1/models", headers={"Authorization": f"Bearer {user('DEU')}"})
        assert response.status_code == 503 and response.json()["error"]["code"] == "config_refused"
    finally:
        config.set_gateway_config("DEU", gateway_config("DEU"))
    assert deu.chat.completions.create(**ask).choices


def test_unconfigured_gateway_answers_503(base_url: str) -> None:
    response = httpx.get(f"{base_url}/est/v1/models", timeout=30)
    assert response.status_code == 503
    assert response.json()["error"] == {
        "message": "the gateway is not configured yet",
        "type": "server_error",
        "param": None,
        "code": "not_configured",
    }


def test_clearance_claim_is_passed_through(base_url: str) -> None:
    low = user("DEU", clearance=Classification.NATO_UNCLASSIFIED)
    with pytest.raises(openai.PermissionDeniedError):
        client(base_url, "DEU", low).chat.completions.create(
            model="fra/analyst", messages=[{"role": "user", "content": "x"}]
        )


# SECTION federation: DEU's gateway reaches FRA's models through FRA's gateway (FRA decides too)


def federated(base_url: str, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}{FEDERATED_DEU}/v1", api_key=token, max_retries=0)


def ask_fra_directly(base_url: str, token: str, route: str, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "x"}]}
    return httpx.post(
        f"{base_url}/fra/{route}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def test_federated_calls_answer_with_the_owners_marking(base_url: str) -> None:
    fresh_quota("FRA")  # 3 of FRA's 4 requests
    deu = federated(base_url, user("DEU"))
    raw = deu.chat.completions.with_raw_response.create(
        model="fra/analyst", messages=[{"role": "user", "content": "hello"}], max_tokens=500
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == "messages=1 max_tokens=16"
    assert (raw.headers["X-Sovereign-Classification"], raw.headers["X-Sovereign-Releasable-To"]) == (
        "NATO RESTRICTED",
        "DEU,FRA",
    )
    assert answer.usage is not None and answer.usage.total_tokens == 5
    assert deu.completions.create(model="fra/analyst", prompt="once", max_tokens=4).choices[0].text == (
        "max_tokens=4"
    )
    embedded = deu.embeddings.with_raw_response.create(model="fra/embed", input=["a", "b"])
    assert [d.embedding for d in embedded.parse().data] == [[0.25, -0.5, 0.0], [0.25, -0.5, 1.0]]
    assert embedded.headers["X-Sovereign-Classification"] == "NATO UNCLASSIFIED"


def test_federated_streaming(base_url: str) -> None:
    fresh_quota("FRA")  # 3 of FRA's 4 requests
    token = user("DEU")
    deu = federated(base_url, token)
    with deu.chat.completions.with_streaming_response.create(
        model="fra/analyst", messages=[{"role": "user", "content": "hi"}], stream=True
    ) as raw:
        assert raw.headers["X-Sovereign-Classification"] == "NATO RESTRICTED"
        assert raw.headers["content-type"].startswith("text/event-stream")
        chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "sovereign answer here "
    assert chunks[-1].choices and chunks[-1].choices[0].finish_reason == "stop"  # no usage chunk asked
    streamed = deu.completions.create(model="fra/analyst", prompt="once", stream=True)
    assert "".join(c.choices[0].text for c in streamed) == "sovereignanswerhere"
    response = httpx.post(
        f"{base_url}{FEDERATED_DEU}/v1/chat/completions",
        json={
            "model": "fra/analyst",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    events = [event for event in response.text.split("\n\n") if event]
    assert events[-1] == "data: [DONE]" and events.count("data: [DONE]") == 1
    assert '"usage":{"prompt_tokens":3' in events[-2]


def test_the_owners_cap_on_the_callers_nation_is_charged_and_its_429_passed_through(base_url: str) -> None:
    fresh_quota("FRA")
    deu = federated(base_url, user("DEU"))
    ask: dict[str, Any] = {"model": "fra/analyst", "messages": [{"role": "user", "content": "x"}]}
    for _ in range(FRA_REQUESTS_PER_MINUTE):
        assert deu.chat.completions.create(**ask).choices
    with pytest.raises(openai.RateLimitError) as limited:  # DEU's own quota (600/min) is far from used up
        deu.chat.completions.create(**ask)
    assert error_of(limited)["message"].startswith("FRA's cap on your nation's requests per minute quota")
    assert int(limited.value.response.headers["Retry-After"]) >= 1


def test_the_callers_denial_never_reaches_the_owner(base_url: str) -> None:
    fresh_quota("FRA")
    ask: dict[str, Any] = {"model": "fra/analyst", "messages": [{"role": "user", "content": "x"}]}
    low = federated(base_url, user("DEU", clearance=Classification.NATO_UNCLASSIFIED))
    for _ in range(FRA_REQUESTS_PER_MINUTE + 1):
        with pytest.raises(openai.PermissionDeniedError) as denied:  # DEU's own decision
            low.chat.completions.create(**ask)
        assert error_of(denied)["message"] == NOT_AVAILABLE.format(name="fra/analyst")
    with pytest.raises(openai.AuthenticationError):  # a POL user has no business on DEU's endpoint
        federated(base_url, user("POL")).chat.completions.create(**ask)
    deu = federated(base_url, user("DEU"))
    for _ in range(FRA_REQUESTS_PER_MINUTE):  # FRA's quota untouched by the denied calls
        assert deu.chat.completions.create(**ask).choices


def test_federation_routes_take_no_users_token(base_url: str) -> None:
    """Gateway to gateway only: any user's own token on FRA's federation routes is 401 (the attacks, with
    assertions, are in tests/security/test_federation_attacks.py)."""
    for token in (user("DEU"), user("POL"), user("FRA")):
        for route in ("chat/completions", "completions", "embeddings", "sovereign/search"):
            refused = ask_fra_directly(base_url, token, f"federation/v1/{route}", "fra/analyst")
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["code"] == "not-an-assertion"


def test_the_owner_decides_on_its_federation_routes(base_url: str) -> None:
    fresh_quota("FRA")  # 4 of FRA's 4 requests
    deu_token = user("DEU", subject="federated")
    # The owner's failure comes back to DEU's user as it was (502, no internals).
    with pytest.raises(openai.InternalServerError) as failed:
        federated(base_url, deu_token).chat.completions.create(
            model="fra/analyst", messages=[{"role": "user", "content": "x"}], user="explode"
        )
    assert failed.value.status_code == 502 and error_of(failed)["code"] == "model_error"
    # FRA's public endpoint still serves FRA's users only.
    public = ask_fra_directly(base_url, deu_token, "v1/chat/completions", "fra/analyst")
    assert public.status_code == 401 and public.json()["error"]["code"] == "wrong-nation"
    assert ask_fra_directly(base_url, deu_token, "federation/v1/models", "x").status_code in (404, 405)


def test_without_a_durable_audit_record_nothing_is_answered(
    platform: tuple[str, ServeConfig], tmp_path: Path
) -> None:
    """Fail closed: POL's gateway is given an audit sink whose Vault is unreachable, so no decision can be
    recorded; an allowed and a denied request both get 503 `vault_unreachable` (the audit log could not get
    a data key), then work again without it."""
    base_url, config = platform
    token_file = tmp_path / "token"
    token_file.write_text("not-a-serviceaccount-token")
    unreachable = {
        "directory": str(tmp_path / "audit"),
        "vaultAddr": f"http://127.0.0.1:{free_loopback_port()}",
        "role": "tenant-pol",
        "tokenFile": str(token_file),
    }
    pol = client(base_url, "POL", user("POL", subject="audited"))
    own: dict[str, Any] = {"model": "pol/scribe", "messages": [{"role": "user", "content": "x"}]}
    forbidden = {**own, "model": "fra/analyst"}
    try:
        config.set_gateway_config("POL", {**gateway_config("POL"), "audit": unreachable})
        # A stream of its own model too: the model starts while the record is on its way, but not a byte of
        # it is sent before the record is durable.
        for ask in (own, forbidden, {**own, "stream": True}):
            with pytest.raises(openai.InternalServerError) as refused:
                pol.chat.completions.create(**ask)
            assert refused.value.status_code == 503
            assert error_of(refused)["code"] == "vault_unreachable"
        assert not list((tmp_path / "audit").rglob("*.log"))  # nothing half-written either
    finally:
        config.set_gateway_config("POL", gateway_config("POL"))
    assert pol.chat.completions.create(**own).choices


@pytest.mark.faults  # `make faults`: kept out of `make test` for its time
def test_a_sealed_vault_refuses_with_its_code_and_heals_without_a_restart(
    platform: tuple[str, ServeConfig], kube_api: KubeAPI, fresh_vault: VaultServer, tmp_path: Path
) -> None:
    """POL's gateway records its decisions under POL's key in a real OpenBao of the test's own. Sealed while
    the gateway serves, the writer holding a data key keeps appending; a writer that needs a new data key
    (here: restarted by Ray) cannot, so the request is refused with 503 `vault_sealed` (never a 500 or a
    hang), and with 503 `vault_unreachable` while Vault is down. Once unsealed the next request is answered,
    the gateway untouched, and the log verifies with exactly the answered requests in it."""
    base_url, config = platform
    token = user("POL", subject="sealed-vault")
    application = gateway_application_name("POL")
    with audit_sink_in(fresh_vault, kube_api, "POL", tmp_path) as sink:
        try:
            config.set_gateway_config("POL", {**gateway_config("POL"), "audit": sink})
            deployed = serve.status().applications[application].last_deployed_time_s
            assert chat(base_url, "POL", token, "pol/scribe") == (200, None)

            fresh_vault.seal()
            assert chat(base_url, "POL", token, "pol/scribe") == (200, None)  # its data key is in memory
            writer = ray.get_actor(audit_writer_name("POL"), namespace=AUDIT_NAMESPACE)
            ray.kill(writer, no_restart=False)  # Ray restarts it; its log needs a new data key
            seen: list[tuple[int, str | None]] = []

            def refused_as_sealed() -> bool:
                seen.append(chat(base_url, "POL", token, "pol/scribe"))
                return seen[-1] == (503, "vault_sealed")

            # While the writer restarts, the request may find no writer at all (503 audit_unavailable).
            wait_until(refused_as_sealed, "503 vault_sealed", timeout=60)
            assert {status for status, _ in seen} == {503}, seen

            fresh_vault.stop(kill=True)
            assert chat(base_url, "POL", token, "pol/scribe") == (503, "vault_unreachable")
            fresh_vault.start()  # back, sealed
            assert chat(base_url, "POL", token, "pol/scribe") == (503, "vault_sealed")
            fresh_vault.unseal()
            assert chat(base_url, "POL", token, "pol/scribe") == (200, None)
            assert serve.status().applications[application].last_deployed_time_s == deployed
        finally:
            config.set_gateway_config("POL", gateway_config("POL"))
        decisions = stream_directory(Path(sink["directory"]), "POL", DECISIONS_STREAM)
        report = verify(decisions, fresh_vault.client(), "POL")
        assert report.ok, report.problems
        assert report.last_seq == 3  # the three answered requests; nothing of the refused ones
