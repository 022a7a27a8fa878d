"""The end of `sovereign up` with the example nations: three real calls through the gateways, as analysts.

One allowed call on a nation's own model, one allowed cross-nation call (FRA released `fra/analyst` to DEU)
and one denied call (EST has no release), each with a token signed by the caller nation's dev issuer.

Then a grounded answer, once the example DataSets are Ready: a DEU analyst asks `fra/analyst` with
`sovereign.datasets` naming EST's and FRA's example datasets; the answer lists its sources and is marked
with the least upper bound of the model's and the chunks' markings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from sovereign.cli.as_nation import login_as_nation, sign_dev_token
from sovereign.clients.kubernetes import list_tenants
from sovereign.domain.markings import Classification
from sovereign.domain.nations import dataset_name, gateway_route_prefix, nation_of_namespace
from sovereign.identity.signed_tokens import dev_token_claims

DEMO_MODEL = "fra/analyst"
DEMO_CALLS = (
    # (caller nation, clearance, what it shows)
    ("FRA", "NATO SECRET", "own model"),
    ("DEU", "NATO CONFIDENTIAL", "released to DEU by FRA"),
    ("EST", "NATO RESTRICTED", "not released to EST"),
)
PROMPT = "Summarise the situation in one line."
GROUNDED_CALLER = ("DEU", "NATO CONFIDENTIAL")
GROUNDED_PROMPT = "What do we know about drone activity near the Estonian border?"
DATASETS_TIMEOUT = 240.0  # seconds for the example DataSets to be ingested (embedded on the nations' Ray)


@dataclass(frozen=True)
class DemoCall:
    caller: str
    clearance: str
    endpoint: str
    why: str
    status: int
    marking: str
    answer: str


def dev_token(
    api: Any,
    vault_addr: str,
    nation: str,
    clearance: str,
    ttl_seconds: int = 3600,
    vault_cacert: str | None = None,
) -> str:
    """A token for a user of `nation`, signed in Vault by its devstack issuer key, as `sovereign token issue`
    does: logged in as the nation (Vault's certificate verified against `vault_cacert`, else $VAULT_CACERT
    or the system trust store)."""
    tenants = [t for t in list_tenants(api) if (t.get("spec") or {}).get("nation") == nation]
    identity = next(((t.get("status") or {}).get("identity") or {} for t in tenants), {})
    if identity.get("source") != "dev":
        raise RuntimeError(f"{nation} has no dev issuer published; is its Tenant Ready?")
    claims = dev_token_claims(
        issuer=str(identity["issuer"]),
        audience=str(identity["audience"]),
        nation=nation,
        subject="demo-analyst",
        clearance=Classification(clearance),
        ttl_seconds=ttl_seconds,
        now=int(time.time()),
    )
    vault = login_as_nation(api, vault_addr, nation, verify=vault_cacert)
    token, _ = sign_dev_token(vault, "transit", nation, claims)
    return token


def run_demo_calls(
    api: Any, gateway_url: str, vault_addr: str, vault_cacert: str | None = None
) -> list[DemoCall]:
    calls = []
    for nation, clearance, why in DEMO_CALLS:
        endpoint = f"{gateway_url}{gateway_route_prefix(nation)}/v1"
        token = dev_token(api, vault_addr, nation, clearance, vault_cacert=vault_cacert)
        response = httpx.post(
            f"{endpoint}/chat/completions",
            headers={"Authorization": f"Bearer {token}"},
            json={"model": DEMO_MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 12},
            timeout=120.0,
        )
        body = response.json()
        if response.status_code == 200:
            marking = (
                f"{response.headers.get('X-Sovereign-Classification')} "
                f"REL TO {response.headers.get('X-Sovereign-Releasable-To')}"
            )
            answer = repr(body["choices"][0]["message"]["content"][:40])
        else:
            marking, answer = "-", str((body.get("error") or {}).get("message", ""))
        calls.append(DemoCall(nation, clearance, endpoint, why, response.status_code, marking, answer))
    return calls


def print_demo_calls(calls: list[DemoCall], console: Console) -> None:
    table = Table("caller, on its own endpoint", f"{DEMO_MODEL}", "HTTP", "answer's marking")
    for call in calls:
        verdict = "[green]allowed[/]" if call.status == 200 else "[red]denied[/]"
        table.add_row(
            f"{call.caller} analyst, {call.clearance}",
            f"{verdict}: {call.why}",
            str(call.status),
            call.marking if call.status == 200 else call.answer,
        )
    console.print(table)


def print_how_to_call(gateway_url: str, env_path: str, console: Console) -> None:
    console.print("\n[bold]Each nation's OpenAI endpoint[/] (a token from that nation's issuer only):")
    for nation, _, _ in DEMO_CALLS:
        console.print(f"  {nation}: {gateway_url}{gateway_route_prefix(nation)}/v1", soft_wrap=True)
    console.print("\n[bold]Call it yourself:[/]")
    lines = [
        f"source {env_path}",
        "export TOKEN=$(sovereign token issue --nation DEU --clearance 'NATO CONFIDENTIAL')",
        'curl -s "$SOVEREIGN_GATEWAY_URL/deu/v1/models" -H "Authorization: Bearer $TOKEN"',
        'curl -si "$SOVEREIGN_GATEWAY_URL/deu/v1/chat/completions" -H "Authorization: Bearer $TOKEN" '
        "-H 'Content-Type: application/json' "
        '-d \'{"model": "fra/analyst", "messages": [{"role": "user", "content": "Hello"}]}\'',
        "python -c \"import openai, os; c = openai.OpenAI(base_url=os.environ['SOVEREIGN_GATEWAY_URL'] + "
        "'/deu/v1', api_key=os.environ['TOKEN']); print(c.chat.completions.create(model='fra/analyst', "
        "messages=[{'role': 'user', 'content': 'Hello'}]).choices[0].message.content)\"",
    ]
    for line in lines:
        console.print(f"  {line}", soft_wrap=True, highlight=False, markup=False)


@dataclass(frozen=True)
class GroundedDemo:
    datasets: list[str]
    status: int  # 0: not run (the datasets were not Ready)
    marking: str
    answer: str
    sources: list[dict[str, str]]


def example_datasets(manifests: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(namespace, name) of the example DataSets."""
    return [
        (m["metadata"]["namespace"], m["metadata"]["name"]) for m in manifests if m.get("kind") == "DataSet"
    ]


def wait_for_datasets_ready(
    api: Any, datasets: list[tuple[str, str]], timeout: float, progress: Any
) -> list[str]:
    """Wait until every DataSet is Ready; returns what is still not Ready (with its reason) at the timeout."""
    from sovereign.tenant_readiness import not_ready_after

    def chunks(body: dict[str, Any]) -> str:
        return f" ({(body.get('status') or {}).get('chunks', '?')} chunks)"

    return not_ready_after(api, "DataSet", datasets, timeout, progress, chunks)


def run_grounded_demo(
    api: Any,
    gateway_url: str,
    vault_addr: str,
    datasets: list[tuple[str, str]],
    vault_cacert: str | None = None,
) -> GroundedDemo:
    """A DEU analyst's grounded question to `fra/analyst` over the example datasets."""
    names = [dataset_name(nation_of_namespace(namespace) or namespace, name) for namespace, name in datasets]
    nation, clearance = GROUNDED_CALLER
    token = dev_token(api, vault_addr, nation, clearance, vault_cacert=vault_cacert)
    # A DataSet is Ready only once its owner's retriever and every gateway serve it: the first request
    # answers (no retry here, so that a DataSet Ready too early shows as the demo's failure).
    response = httpx.post(
        f"{gateway_url}{gateway_route_prefix(nation)}/v1/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "model": DEMO_MODEL,
            "messages": [{"role": "user", "content": GROUNDED_PROMPT}],
            "max_tokens": 12,
            "sovereign": {"datasets": names, "top_k": 3},
        },
        timeout=120.0,
    )
    body = response.json()
    if response.status_code != 200:
        message = str((body.get("error") or {}).get("message", ""))
        return GroundedDemo(names, response.status_code, "-", message, [])
    marking = (
        f"{response.headers.get('X-Sovereign-Classification')} "
        f"REL TO {response.headers.get('X-Sovereign-Releasable-To')}"
    )
    answer = repr(body["choices"][0]["message"]["content"][:40])
    return GroundedDemo(names, 200, marking, answer, (body.get("sovereign") or {}).get("sources") or [])


def print_grounded_demo(demo: GroundedDemo, not_ready: list[str], console: Console) -> None:
    nation, clearance = GROUNDED_CALLER
    console.print(
        f"\n[bold]A grounded answer[/]: a {nation} analyst ({clearance}) asks {DEMO_MODEL} over "
        f"{', '.join(demo.datasets) or 'the example datasets'}"
    )
    if not_ready:
        console.print("[yellow]not run: example DataSets not Ready yet[/] (`kubectl get datasets -A`):")
        for line in not_ready:
            console.print(f"  {line}", soft_wrap=True, highlight=False, markup=False)
        return
    if demo.status != 200:
        console.print(f"[red]HTTP {demo.status}[/]: {demo.answer}", highlight=False)
        return
    console.print(
        f"answer's marking: [bold]{demo.marking}[/] (the model's and the chunks' least upper bound)"
    )
    console.print(f"answer: {demo.answer}", highlight=False, markup=False)
    table = Table("source dataset", "document", "chunk")
    for source in demo.sources:
        table.add_row(source["dataset"], source["documentId"], source["chunkId"])
    console.print(table)
    console.print(
        '  search them yourself: sovereign dataset search --nation DEU --token "$TOKEN" '
        f"--dataset {demo.datasets[0]} 'drones'",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
