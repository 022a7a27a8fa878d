"""`sovereign token issue`: a bearer token from a nation's devstack issuer, for trying the platform out.

The nation's Tenant is read through KUBECONFIG. The token is signed as the nation: the CLI logs in to Vault
(VAULT_ADDR, or the Tenant's own Vault; e.g. `source .sovereign/env`) with a token of the nation's
`model-serving` ServiceAccount, and Vault signs with the nation's issuer key, which never leaves it. The
token is printed on stdout and nowhere else.
"""

from __future__ import annotations

import os
import re
import time
from typing import Annotated, Any

import typer

from sovereign.cli.as_nation import NoIssuerKey, login_as_nation, sign_dev_token
from sovereign.cli.keys_commands import _tenant_for_nation
from sovereign.cli.output import OutputFormat, fail, print_json
from sovereign.clients.kubernetes import load_api_client
from sovereign.clients.vault import VAULT_ERRORS
from sovereign.domain.markings import Classification
from sovereign.domain.nations import vault_role_name
from sovereign.identity.signed_tokens import dev_token_claims

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


def _dev_issuer(tenant: dict[str, Any], nation: str) -> tuple[str, str]:
    """(issuer, audience) of the nation's dev issuer, as its Tenant's status publishes them."""
    spec, status = tenant.get("spec") or {}, tenant.get("status") or {}
    identity = spec.get("identity")
    if identity:
        fail(
            f"{nation}'s Tenant names its own issuer {identity.get('issuer')}: its tokens come from that "
            "issuer, there is no devstack key to sign with"
        )
    published = status.get("identity") or {}
    if published.get("source") != "dev" or not published.get("issuer") or not published.get("audience"):
        fail(f"{nation} has no dev issuer published yet; is its Tenant Ready?")
    return str(published["issuer"]), str(published["audience"])


def _sign_as_nation(api: Any, tenant: dict[str, Any], nation: str, claims: dict[str, Any]) -> tuple[str, str]:
    """(token, kid): Vault signs as the nation, logged in with the nation's own ServiceAccount."""
    own_vault = (tenant.get("spec") or {}).get("vault") or {}
    address = own_vault.get("address") or os.environ.get("VAULT_ADDR")
    if not address:
        fail("VAULT_ADDR must be set (e.g. `source .sovereign/env`)")
    transit = own_vault.get("transitMount") or "transit"
    try:
        vault = login_as_nation(api, str(address), nation, own_vault.get("authMount") or "kubernetes")
    except VAULT_ERRORS as error:
        fail(f"cannot log in to Vault as {nation} (role {vault_role_name(nation)}): {error}")
        raise  # unreachable
    except Exception as error:  # noqa: BLE001 — a Kubernetes error: say which, never a token
        fail(f"cannot get a token of {nation}'s serving ServiceAccount: {error}")
        raise  # unreachable
    try:
        return sign_dev_token(vault, transit, nation, claims)
    except NoIssuerKey as error:
        fail(f"{error}; is its Tenant Ready?")
        raise  # unreachable
    except VAULT_ERRORS as error:
        fail(f"Vault did not sign as {nation}: {error}")
        raise  # unreachable


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
    """Print a token for a user of NATION, signed (EdDSA) in Vault by NATION's devstack issuer key."""
    nation = nation.strip().upper()
    try:
        ttl_seconds = parse_ttl(ttl)
    except ValueError as error:
        fail(str(error))
    level = _classification(clearance)
    if not sub.strip():
        fail("--sub must not be empty")
    api = load_api_client()
    tenant = _tenant_for_nation(api, nation)
    tenant_clearance = Classification((tenant.get("spec") or {}).get("clearance", ""))
    if level > tenant_clearance:
        fail(f"clearance {level} is above {nation}'s Tenant clearance {tenant_clearance}")
    issuer, audience = _dev_issuer(tenant, nation)
    now = int(time.time())
    claims = dev_token_claims(
        issuer=issuer,
        audience=audience,
        nation=nation,
        subject=sub.strip(),
        clearance=level,
        compartments=list(compartment or []),
        groups=list(group or []),
        ttl_seconds=ttl_seconds,
        now=now,
    )
    token, kid = _sign_as_nation(api, tenant, nation, claims)
    if output is OutputFormat.json:
        print_json(
            {
                "token": token,
                "nation": nation,
                "sub": sub.strip(),
                "clearance": str(level),
                "compartments": sorted(set(compartment or [])),
                "groups": sorted(set(group or [])),
                "issuer": issuer,
                "audience": audience,
                "kid": kid,
                "expiresAt": now + ttl_seconds,
            }
        )
    else:
        print(token)  # the token is what this command is asked for: stdout only, never a log
