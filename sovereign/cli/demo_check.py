"""The end of `sovereign up` with the example nations: three real calls through the gateways, as analysts.

One allowed call on a nation's own model, one allowed cross-nation call (FRA released `fra/analyst` to DEU)
and one denied call (EST has no release), each with a token signed by the caller nation's dev issuer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
from rich.console import Console
from rich.table import Table

from sovereign.clients.vault import read_kv, vault_client
from sovereign.domain.markings import Classification
from sovereign.identity.tokens import DEFAULT_KV_MOUNT, dev_issuer_kv_path, issue_token

DEMO_MODEL = "fra/analyst"
DEMO_CALLS = (
    # (caller nation, clearance, what it shows)
    ("FRA", "NATO SECRET", "own model"),
    ("DEU", "NATO CONFIDENTIAL", "released to DEU by FRA"),
    ("EST", "NATO RESTRICTED", "not released to EST"),
)
PROMPT = "Summarise the situation in one line."


@dataclass(frozen=True)
class DemoCall:
    caller: str
    clearance: str
    endpoint: str
    why: str
    status: int
    marking: str
    answer: str


def dev_token(vault_addr: str, vault_token: str, nation: str, clearance: str, ttl_seconds: int = 3600) -> str:
    """A token for a user of `nation`, signed by its devstack issuer (key read from Vault)."""
    record = read_kv(vault_client(vault_addr, vault_token), DEFAULT_KV_MOUNT, dev_issuer_kv_path(nation))
    if not record:
        raise RuntimeError(f"{nation} has no dev issuer key in Vault; is its Tenant Ready?")
    return issue_token(
        private_key_pem=str(record["privateKeyPem"]),
        kid=str(record["kid"]),
        issuer=str(record["issuer"]),
        audience=str(record["audience"]),
        nation=nation,
        subject="demo-analyst",
        clearance=Classification(clearance),
        compartments=[],
        groups=[],
        ttl_seconds=ttl_seconds,
        now=int(time.time()),
    )


def run_demo_calls(gateway_url: str, vault_addr: str, vault_token: str) -> list[DemoCall]:
    calls = []
    for nation, clearance, why in DEMO_CALLS:
        endpoint = f"{gateway_url}/{nation.lower()}/v1"
        token = dev_token(vault_addr, vault_token, nation, clearance)
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
        console.print(f"  {nation}: {gateway_url}/{nation.lower()}/v1", soft_wrap=True)
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
