"""Member nations are named by ISO 3166-1 alpha-3 codes, checked against the real list from pycountry."""

from __future__ import annotations

import pycountry

ISO_3166_ALPHA3: tuple[str, ...] = tuple(sorted(country.alpha_3 for country in pycountry.countries))


def is_nation_code(code: str) -> bool:
    return code in _CODES


def tenant_namespace(nation: str) -> str:
    """The namespace a nation's Tenant becomes; its models, datasets and policies live there."""
    return f"tenant-{nation.lower()}"


# The ServiceAccount a nation's workloads run as, and the Vault Kubernetes-auth role it logs in with: the
# nation's own credentials (its auditors use them too).
SERVING_SERVICE_ACCOUNT = "model-serving"


def vault_role_name(nation: str) -> str:
    return f"tenant-{nation.lower()}"


def issuer_key_name(nation: str) -> str:
    """The nation's dev issuer signing key in Vault transit (ed25519, not exportable): it signs the tokens
    of the nation's users and never leaves Vault."""
    return f"tenant-{nation.lower()}-issuer"


def gateway_key_name(nation: str) -> str:
    """The nation's gateway signing key in Vault transit (ed25519, not exportable): it signs the assertions
    the nation's gateway sends to other nations' federation routes, and never leaves Vault."""
    return f"tenant-{nation.lower()}-gateway"


def nation_name(code: str) -> str:
    country = pycountry.countries.get(alpha_3=code)
    if country is None:
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-3 country code")
    return str(country.name)


_CODES = frozenset(ISO_3166_ALPHA3)
