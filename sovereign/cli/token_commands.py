"""`sovereign token issue`: a bearer token from a nation's devstack issuer, for trying the platform out.

The nation's Tenant is read through KUBECONFIG; the dev issuer's private key from Vault (VAULT_ADDR and
VAULT_TOKEN, e.g. `source .sovereign/env`). The token is printed on stdout and nowhere else.
"""

from __future__ import annotations

import os
import re
import time
from typing import Annotated, Any

import typer

from sovereign.cli.keys_commands import _tenant_for_nation
from sovereign.cli.output import OutputFormat, fail, print_json
from sovereign.clients.kubernetes import load_api_client
from sovereign.clients.vault import VAULT_ERRORS, read_kv, vault_client
from sovereign.domain.markings import Classification
from sovereign.identity.tokens import DEFAULT_KV_MOUNT, dev_issuer_kv_path, issue_token

MAX_TTL_SECONDS = 24 * 3600
_TTL_PART = re.compile(r"(\d+)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

app = typer.Typer(help="Bearer tokens from the nations' devstack issuers.", no_args_is_help=True)


def parse_ttl(text: str) -> int:
    """Seconds in '90', '90s', '15m', '1h', '1h30m' (at least 1 s, at most 24 h); ValueError otherwise."""
    cleaned = text.strip().lower()
    if not cleaned or _TTL_PART.sub("", cleaned):
        raise ValueError(f"{text!r} is not a duration like 3600, 90s, 15m, 1h or 1h30m")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _TTL_PART.findall(cleaned))
    if not 1 <= seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"ttl {text!r} must be between 1s and {MAX_TTL_SECONDS // 3600}h")
    return seconds


def _classification(text: str) -> Classification:
    normalized = " ".join(text.replace("_", " ").split()).upper()
    try:
        return Classification(normalized)
    except ValueError:
        levels = ", ".join(f'"{level}"' for level in Classification)
        fail(f"{text!r} is not a classification level; one of {levels}")
        raise  # unreachable: fail() exits


def _dev_issuer_record(tenant: dict[str, Any], nation: str) -> dict[str, Any]:
    spec = tenant.get("spec") or {}
    identity = spec.get("identity")
    if identity:
        fail(
            f"{nation}'s Tenant names its own issuer {identity.get('issuer')}: its tokens come from that "
            "issuer, there is no devstack key to sign with"
        )
    address, token = os.environ.get("VAULT_ADDR"), os.environ.get("VAULT_TOKEN")
    if not address or not token:
        fail("VAULT_ADDR and VAULT_TOKEN must be set (e.g. `source .sovereign/env`)")
    mount = (spec.get("vault") or {}).get("kvMount") or DEFAULT_KV_MOUNT
    path = dev_issuer_kv_path(nation)
    try:
        record = read_kv(vault_client(str(address), str(token)), mount, path)
    except VAULT_ERRORS as error:
        fail(f"cannot read {nation}'s dev issuer key from Vault ({mount}/{path}): {error}")
        raise  # unreachable
    if not record or not record.get("privateKeyPem") or not record.get("kid"):
        fail(f"{nation} has no dev issuer key in Vault yet ({mount}/{path}); is its Tenant Ready?")
    assert record is not None
    return record


@app.command()
def issue(
    nation: Annotated[str, typer.Option(help="ISO 3166-1 alpha-3 code of the nation, e.g. FRA.")],
    clearance: Annotated[str, typer.Option(help='The user\'s clearance, e.g. "NATO SECRET".')],
    compartment: Annotated[
        list[str] | None, typer.Option("--compartment", help="A compartment (repeatable), e.g. ATOMAL.")
    ] = None,
    group: Annotated[list[str] | None, typer.Option("--group", help="A group (repeatable).")] = None,
    sub: Annotated[str, typer.Option(help="The user (`sub` claim).")] = "analyst",
    ttl: Annotated[str, typer.Option(help="Lifetime: 3600, 90s, 15m, 1h, 1h30m (at most 24h).")] = "1h",
    output: Annotated[OutputFormat, typer.Option("--output", "-o")] = OutputFormat.text,
) -> None:
    """Print a token for a user of NATION, signed (EdDSA) by NATION's devstack issuer."""
    nation = nation.strip().upper()
    try:
        ttl_seconds = parse_ttl(ttl)
    except ValueError as error:
        fail(str(error))
    level = _classification(clearance)
    if not sub.strip():
        fail("--sub must not be empty")
    tenant = _tenant_for_nation(load_api_client(), nation)
    tenant_clearance = Classification((tenant.get("spec") or {}).get("clearance"))
    if level > tenant_clearance:
        fail(f"clearance {level} is above {nation}'s Tenant clearance {tenant_clearance}")
    record = _dev_issuer_record(tenant, nation)
    now = int(time.time())
    token = issue_token(
        private_key_pem=str(record["privateKeyPem"]),
        kid=str(record["kid"]),
        issuer=str(record["issuer"]),
        audience=str(record["audience"]),
        nation=nation,
        subject=sub.strip(),
        clearance=level,
        compartments=list(compartment or []),
        groups=list(group or []),
        ttl_seconds=ttl_seconds,
        now=now,
    )
    if output is OutputFormat.json:
        print_json(
            {
                "token": token,
                "nation": nation,
                "sub": sub.strip(),
                "clearance": str(level),
                "compartments": sorted(set(compartment or [])),
                "groups": sorted(set(group or [])),
                "issuer": record["issuer"],
                "audience": record["audience"],
                "kid": record["kid"],
                "expiresAt": now + ttl_seconds,
            }
        )
    else:
        print(token)  # the token is what this command is asked for: stdout only, never a log
