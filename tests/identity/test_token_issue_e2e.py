"""End to end: a Tenant made Ready by the real operator, a token from the real `sovereign token issue`,
validated with the TrustedIssuer built from the live Tenant."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519

from sovereign.domain.markings import Classification
from sovereign.identity.signed_tokens import dev_token_claims
from sovereign.identity.tokens import (
    TokenRejected,
    issuers_by_url,
    trusted_issuer_from_tenant,
    validate_token,
)
from tests.identity.nation_signing import sign_as_nation
from tests.operator.harness import OperatorProcess, Platform
from tests.operator.tenants import apply_tenant, delete_tenant, wait_ready

# Nations no other test uses: Cabo Verde (dev issuer) and Sao Tome and Principe (its own issuer).
DEV, OWN = "CPV", "STP"
# The installed console script, as a user runs it (next to the interpreter in the venv).
SOVEREIGN = [str(Path(sys.executable).parent / "sovereign")]


def _cli(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**platform.kube.env(), **platform.vault_env(), "VAULT_TOKEN": platform.root_token}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [*SOVEREIGN, "token", "issue", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_cli_token_validates_against_the_live_tenant(
    platform: Platform, running_operator: OperatorProcess
) -> None:
    own_key = ed25519.Ed25519PrivateKey.generate()
    own_jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(own_key.public_key()))
    kube = platform.kube
    apply_tenant(kube, "cpv", DEV, clearance="NATO SECRET")
    apply_tenant(
        kube,
        "stp",
        OWN,
        identity={
            "issuer": "https://id.stp.example",
            "audience": "sovereign-stp",
            "jwks": {"keys": [{**own_jwk, "kid": "stp-1", "alg": "EdDSA"}]},
        },
    )
    try:
        dev_tenant, own_tenant = wait_ready(kube, "cpv"), wait_ready(kube, "stp")
        issued = _cli(
            platform,
            "--nation",
            "cpv",
            "--clearance",
            "NATO CONFIDENTIAL",
            "--compartment",
            "ATOMAL",
            "--group",
            "analysts",
            "--sub",
            "amilcar",
            "--ttl",
            "15m",
            "--output",
            "json",
        )
        assert issued.returncode == 0, issued.stderr
        result = json.loads(issued.stdout)
        token = result["token"]
        assert token not in issued.stderr
        assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
        assert (
            jwt.get_unverified_header(token)["kid"]
            == dev_tenant["status"]["identity"]["jwks"]["keys"][0]["kid"]
        )

        issuers = issuers_by_url(
            [trusted_issuer_from_tenant(dev_tenant), trusted_issuer_from_tenant(own_tenant)]
        )
        principal = validate_token(token, issuers)
        assert (principal.subject, principal.nationality, principal.clearance) == (
            "amilcar",
            DEV,
            Classification.NATO_CONFIDENTIAL,
        )
        assert principal.compartments == {"ATOMAL"} and principal.groups == {"analysts"}

        # Another nation's issuer does not vouch for it: only STP trusted → unknown issuer.
        only_own = issuers_by_url([trusted_issuer_from_tenant(own_tenant)])
        try:
            validate_token(token, only_own)
            raise AssertionError("a CPV token was accepted by STP's issuer")
        except TokenRejected as rejected:
            assert rejected.reason_code == "unknown-issuer"
        # CPV's dev issuer key cannot speak for STP: not STP's kid, and not STP's key under STP's kid.
        # Signed in Vault as CPV, the only way to use CPV's key: it is not exportable, and nothing holds it.
        as_stp = dev_token_claims(
            "https://id.stp.example",
            "sovereign-stp",
            OWN,
            "x",
            Classification.NATO_SECRET,
            now=int(time.time()),
        )
        for kid, reason in ((result["kid"], "unknown-key"), ("stp-1", "bad-signature")):
            forged, _ = sign_as_nation(platform, DEV, as_stp, kid=kid)
            try:
                validate_token(forged, issuers)
                raise AssertionError(f"a token signed by CPV's key was accepted as STP's (kid {kid})")
            except TokenRejected as rejected:
                assert rejected.reason_code == reason
        # The text output is the bare token, for `TOKEN=$(sovereign token issue …)`.
        plain = _cli(platform, "--nation", DEV, "--clearance", "NATO SECRET")
        assert plain.returncode == 0, plain.stderr
        assert validate_token(plain.stdout.strip(), issuers).clearance is Classification.NATO_SECRET

        errors = {
            "above": _cli(platform, "--nation", DEV, "--clearance", "COSMIC TOP SECRET"),
            "own issuer": _cli(platform, "--nation", OWN, "--clearance", "NATO SECRET"),
            "unknown nation": _cli(platform, "--nation", "TCA", "--clearance", "NATO SECRET"),
            "bad ttl": _cli(platform, "--nation", DEV, "--clearance", "NATO SECRET", "--ttl", "forever"),
            "bad clearance": _cli(platform, "--nation", DEV, "--clearance", "TOP"),
        }
        for case, run in errors.items():
            assert run.returncode == 1 and not run.stdout, f"{case}: {run.stdout} {run.stderr}"
        assert "above CPV's Tenant clearance NATO SECRET" in errors["above"].stderr
        assert "names its own issuer https://id.stp.example" in errors["own issuer"].stderr
        assert "no Tenant for nation TCA" in errors["unknown nation"].stderr
        assert "'forever' is not a duration" in errors["bad ttl"].stderr
        assert "'TOP' is not a classification level" in errors["bad clearance"].stderr
    finally:
        for name in ("cpv", "stp"):
            delete_tenant(kube, name)
