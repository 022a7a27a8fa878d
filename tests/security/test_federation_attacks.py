"""Attacks on federation: a nation's federation routes answer a peer nation's gateway only.

One Ray for the module, federated as on kuberay: FRA's gateway (the owner, two replicas, each with its own
replay cache, the nation's QuotaKeeper between them) and DEU's gateway, whose config gives FRA's models a
`federationUrl` and a signer (DEU's gateway key in a real OpenBao of the module's own, logged in to as DEU
with a ServiceAccount token of the session's API server); a second DEU gateway at `/deu-unsigned` has no
signer. FRA's config publishes DEU's and POL's gateway key sets; POL's Tenant is suspended. Both nations'
gateways write their decisions to real audit logs under their own keys. The attacker's assertions are signed
the way a gateway signs them, in that Vault, as the nation (`GatewaySigner`): what a peer gateway (or one who
stole its credentials) could send.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sovereign_devstack.pki import CertificateAuthority
from sovereign_serving.gateway._signer import GatewaySigner

from sovereign.audit import DECISIONS_STREAM, AuditRecord, read, stream_directory
from sovereign.domain.markings import Classification, Principal
from sovereign.identity.federation_assertions import assertion_claims
from sovereign.serving_contract import VaultSink
from tests.servers import KubeAPI, VaultServer
from tests.serving.gateway.nation_vault import gateways_signing_in
from tests.serving.gateway.nations import FAKE_APP, ISSUERS, gateway_config
from tests.serving.gateway.test_gateway_on_ray import FAKE_IMPORT_PATH, ServeConfig, gateway_app
from tests.serving.local_serve import local_serve

ROUTES = ("chat/completions", "completions", "embeddings", "sovereign/search")


@dataclass(frozen=True)
class Federated:
    base_url: str
    vault: VaultServer
    audit: Path
    signers: dict[str, GatewaySigner]  # as each nation's gateway signs, in the module's Vault


@pytest.fixture(scope="module")
def federated(
    kube_api: KubeAPI, devstack_ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Federated]:
    directory = tmp_path_factory.mktemp("federation-attacks")
    audit = directory / "audit"
    with (
        gateways_signing_in(kube_api, devstack_ca, directory, ("DEU", "FRA", "POL")) as (vault, made),
        local_serve() as port,
    ):
        fra_url = {"FRA": f"http://127.0.0.1:{port}/fra"}
        keys = {nation: made[nation][1] for nation in ("DEU", "POL")}
        fra = gateway_config("FRA", gateway_keys=keys, suspended=("POL",))
        deu = gateway_config("DEU", federation_urls=fra_url)
        ServeConfig(
            port,
            [
                {"name": FAKE_APP, "route_prefix": None, "import_path": FAKE_IMPORT_PATH},
                gateway_app("FRA", {**fra, "audit": {**made["FRA"][0], "directory": str(audit)}}, replicas=2),
                gateway_app(
                    "DEU",
                    {
                        **deu,
                        "federation": made["DEU"][0],
                        "audit": {**made["DEU"][0], "directory": str(audit)},
                    },
                ),
                gateway_app("DEU", deu, prefix="/deu-unsigned"),
            ],
        ).apply()
        signers = {n: GatewaySigner(n, VaultSink.model_validate(made[n][0])) for n in made}
        yield Federated(f"http://127.0.0.1:{port}", vault, audit, signers)


def body_of(route: str, model: str = "fra/analyst") -> bytes:
    if route == "sovereign/search":
        ask: dict[str, Any] = {"datasets": ["fra/reports"], "query": "x"}
    elif route == "embeddings":
        ask = {"model": "fra/embed", "input": ["x"]}
    elif route == "completions":
        ask = {"model": model, "prompt": "x"}
    else:
        ask = {"model": model, "messages": [{"role": "user", "content": "x"}]}
    return json.dumps(ask).encode()


def person(nation: str, subject: str = "analyst") -> Principal:
    return Principal(
        sub=subject, nationality=nation, clearance=Classification.NATO_SECRET, issuerNation=nation
    )


def minted(
    fed: Federated,
    body: bytes,
    *,
    route: str = "chat/completions",
    caller: str = "DEU",
    owner: str = "FRA",
    signed_by: str | None = None,
    subject: str = "analyst",
    now: float | None = None,
) -> str:
    """An assertion as `caller`'s gateway makes it (signed in Vault by `signed_by`'s gateway key)."""
    claims = assertion_claims(
        caller, owner, person(caller, subject), route, body, link=uuid.uuid4().hex, now=now
    )
    return fed.signers[signed_by or caller].sign(claims)


def post(fed: Federated, path: str, token: str, body: bytes) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return httpx.post(f"{fed.base_url}{path}", content=body, headers=headers, timeout=60)


def refused(response: httpx.Response) -> tuple[int, str]:
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error  # OpenAI-shaped
    return response.status_code, error["code"]


def test_a_users_own_token_on_every_federation_route_is_401(federated: Federated) -> None:
    for token in (ISSUERS["DEU"].token(), ISSUERS["FRA"].token()):
        for route in ROUTES:
            answer = post(federated, f"/fra/federation/v1/{route}", token, body_of(route))
            assert refused(answer) == (401, "not-an-assertion"), route
    bare = httpx.post(
        f"{federated.base_url}/fra/federation/v1/chat/completions", content=body_of(""), timeout=30
    )
    assert refused(bare) == (401, "missing-token")


def test_a_good_assertion_is_answered_once_and_a_replay_is_401(federated: Federated) -> None:
    body = body_of("chat/completions")
    token = minted(federated, body)
    first = post(federated, "/fra/federation/v1/chat/completions", token, body)
    assert first.status_code == 200, first.text
    # Replayed to either of FRA's two replicas (Serve spreads the requests over both), always refused.
    for _ in range(6):
        again = post(federated, "/fra/federation/v1/chat/completions", token, body)
        assert refused(again) == (401, "replayed")


@pytest.mark.parametrize(
    ("case", "path", "expected"),
    [
        ("another-owner", "/fra/federation/v1/chat/completions", "wrong-audience"),
        ("another-route", "/fra/federation/v1/completions", "wrong-route"),
        ("another-body", "/fra/federation/v1/chat/completions", "body-mismatch"),
        ("expired", "/fra/federation/v1/chat/completions", "expired"),
        ("signed-by-another-nation", "/fra/federation/v1/chat/completions", "unknown-key"),
        ("on-a-public-route", "/fra/v1/chat/completions", "unknown-issuer"),
    ],
)
def test_an_assertion_off_its_audience_route_body_time_or_key_is_401(
    federated: Federated, case: str, path: str, expected: str
) -> None:
    body = body_of("chat/completions")
    sent = body
    if case == "another-owner":
        token = minted(federated, body, owner="POL")
    elif case == "another-body":
        token, sent = minted(federated, body), body_of("chat/completions", model="fra/embed")
    elif case == "expired":
        token = minted(federated, body, now=time.time() - 120)
    elif case == "signed-by-another-nation":  # POL's gateway key signing a DEU assertion
        token = minted(federated, body, signed_by="POL")
    else:
        token = minted(federated, body)
    assert refused(post(federated, path, token, sent)) == (401, expected)


def test_a_suspended_nations_gateway_is_refused(federated: Federated) -> None:
    body = body_of("chat/completions")
    subject = f"suspended-{uuid.uuid4().hex[:8]}"
    answer = post(
        federated,
        "/fra/federation/v1/chat/completions",
        minted(federated, body, caller="POL", subject=subject),
        body,
    )
    assert refused(answer) == (403, "model_not_available")
    [record] = [r for r in records(federated, "FRA") if r.actor.sub == subject]
    assert record.decision is not None and record.decision.outcome == "denied"
    assert "markings/limit-suspended-tenant" in record.decision.policy_ids


def test_a_peer_gateway_gets_only_the_owners_own_models(federated: Federated) -> None:
    for model in ("deu/ghost", "pol/scribe", "fra/nothing-here"):
        body = body_of("chat/completions", model=model)
        answer = post(federated, "/fra/federation/v1/chat/completions", minted(federated, body), body)
        assert refused(answer) == (403, "model_not_available"), model


def test_without_a_signer_nothing_is_forwarded(federated: Federated) -> None:
    answer = post(
        federated, "/deu-unsigned/v1/chat/completions", ISSUERS["DEU"].token(), body_of("chat/completions")
    )
    assert refused(answer) == (503, "federation_unavailable")


def records(fed: Federated, nation: str) -> list[AuditRecord]:
    return read(stream_directory(fed.audit, nation, DECISIONS_STREAM), fed.vault.client(), nation)


def test_both_nations_logs_hold_the_call_with_one_link(federated: Federated) -> None:
    subject = f"linked-{uuid.uuid4().hex[:8]}"
    answer = post(
        federated,
        "/deu/v1/chat/completions",
        ISSUERS["DEU"].token(subject=subject),
        body_of("chat/completions"),
    )
    assert answer.status_code == 200, answer.text
    [caller] = [r for r in records(federated, "DEU") if r.actor.sub == subject]
    [owner] = [r for r in records(federated, "FRA") if r.actor.sub == subject]
    assert caller.resources == owner.resources == ["fra/analyst"]
    assert (caller.details["gateway"], owner.details["gateway"]) == ("DEU", "FRA")
    assert (caller.details["federated"], owner.details["federated"]) == (False, True)
    assert caller.details["federationLink"] == owner.details["federationLink"]
    assert (caller.actor.nation, owner.actor.nation) == ("DEU", "DEU")
