"""Member nations, and every name the platform derives from one.

Nations are named by ISO 3166-1 alpha-3 codes, checked against the real list from pycountry. What the
platform makes for a nation (its namespace, its Vault keys, role and records, its Ray applications and actors,
its gateway's route) is named by the functions below and nowhere else: the operator, the gateway, the CLI, the
devstack and the tests all call them, so no two copies of a name can drift apart.
"""

from __future__ import annotations

import pycountry

ISO_3166_ALPHA3: tuple[str, ...] = tuple(sorted(country.alpha_3 for country in pycountry.countries))


def is_nation_code(code: str) -> bool:
    return code in _CODES


def nation_name(code: str) -> str:
    country = pycountry.countries.get(alpha_3=code)
    if country is None:
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-3 country code")
    return str(country.name)


def _lower(nation: str) -> str:
    return nation.lower()


def nation_folder(nation: str) -> str:
    """The nation's folder under any per-nation root: the audit root, the data root, the dataset stores, the
    token files of local-ray."""
    return _lower(nation)


# -- Kubernetes ----------------------------------------------------------------------------------------------


_NAMESPACE_PREFIX = "tenant-"


def tenant_namespace(nation: str) -> str:
    """The namespace a nation's Tenant becomes; its models, datasets and policies live there."""
    return f"{_NAMESPACE_PREFIX}{_lower(nation)}"


def nation_of_namespace(namespace: str) -> str | None:
    """The nation (upper case) a namespace is named for, `tenant_namespace`'s inverse; None when the name is
    not a tenant namespace's. By the name alone: whether such a Tenant exists is for the caller to know."""
    if not namespace.startswith(_NAMESPACE_PREFIX):
        return None
    return namespace.removeprefix(_NAMESPACE_PREFIX).upper()


# The ServiceAccount a nation's workloads run as, and the Vault Kubernetes-auth role it logs in with: the
# nation's own credentials (its auditors use them too).
SERVING_SERVICE_ACCOUNT = "model-serving"


def rayservice_name(nation: str) -> str:
    """The nation's RayService (kuberay), in its namespace; KubeRay names its Services after it."""
    return f"{_lower(nation)}-serving"


def data_claim_name(nation: str) -> str:
    """The nation's data volume claim (its audit log and dataset stores), in its namespace."""
    return f"{_lower(nation)}-data"


# -- Vault ---------------------------------------------------------------------------------------------------


def vault_role_name(nation: str) -> str:
    """The nation's Kubernetes auth role: its SERVING_SERVICE_ACCOUNT logs in with it, as the nation."""
    return f"tenant-{_lower(nation)}"


# The one ACL policy every nation's token carries, templated on the namespace its ServiceAccount logged in
# from (policies/vault/sovereign-nation.hcl). Written by the Vault admin at platform setup, never by the
# operator.
NATION_VAULT_POLICY = "sovereign-nation"


def transit_key_name(nation: str) -> str:
    """The nation's transit key (aes256-gcm96): it wraps the data keys of its audit log, its dataset stores
    and the operator's records about it. Shredding it offboards the nation's data."""
    return f"tenant-{_lower(nation)}"


def issuer_key_name(nation: str) -> str:
    """The nation's dev issuer signing key in Vault transit (ed25519, not exportable): it signs the tokens
    of the nation's users and never leaves Vault."""
    return f"tenant-{_lower(nation)}-issuer"


def gateway_key_name(nation: str) -> str:
    """The nation's gateway signing key in Vault transit (ed25519, not exportable): it signs the assertions
    the nation's gateway sends to other nations' federation routes, and never leaves Vault."""
    return f"tenant-{_lower(nation)}-gateway"


def kv_prefix(nation: str) -> str:
    """The nation's KV v2 path prefix (below the mount): `tenants/tenant-<nation>/`, named by its namespace
    as the templated policy names it."""
    return f"tenants/{tenant_namespace(nation)}"


def legacy_kv_prefix(nation: str) -> str:
    """Where an earlier release kept a nation's records (once its issuer's private key): `tenants/<nation>/`.
    The operator deletes what it finds there, without reading it."""
    return f"tenants/{_lower(nation)}"


# -- the nation's dev identity provider (when its Tenant names no issuer of its own) -------------------------


def dev_issuer(nation: str) -> str:
    return f"https://identity.sovereign.local/{_lower(nation)}"


def dev_audience(nation: str) -> str:
    return f"sovereign-{_lower(nation)}"


# -- Ray Serve: applications are unique across a Ray cluster (on the devstack all nations share one) ---------


def gateway_route_prefix(nation: str) -> str:
    """Where the nation's gateway is served: its endpoint is `<base><prefix>/v1`."""
    return f"/{_lower(nation)}"


def gateway_application_name(nation: str) -> str:
    return f"{_lower(nation)}-gateway"


def model_application_name(nation: str, model: str) -> str:
    return f"{_lower(nation)}-{model}"


def retriever_application_name(nation: str) -> str:
    """The nation's retriever application (one per nation that has DataSets)."""
    return f"{_lower(nation)}-retriever"


# The Ray namespace of every gateway's helper actors (quota keepers, audit writers); named actors are unique
# within it, so their names carry the nation.
GATEWAY_ACTOR_NAMESPACE = "sovereign-gateway"


def quota_actor_name(nation: str) -> str:
    """The nation's QuotaKeeper actor (its users' and peers' request and token buckets)."""
    return f"{_lower(nation)}-gateway-quota"


def audit_writer_name(nation: str) -> str:
    """The nation's AuditWriter actor (the one appender of its audit log)."""
    return f"{_lower(nation)}-audit-writer"


# -- what clients and policies address -----------------------------------------------------------------------


def served_model_name(nation: str, model: str) -> str:
    """How clients address a model: `<owner nation lowercase>/<model>`."""
    return f"{_lower(nation)}/{model}"


def dataset_name(nation: str, name: str) -> str:
    """How a dataset is addressed: `<owner nation lowercase>/<name>`, like a served model."""
    return f"{_lower(nation)}/{name}"


def nation_rule_prefix(nation: str) -> str:
    """How the `@id` of each of a nation's own Cedar rules (its TenantPolicies) begins in the bundle:
    `<nation lowercase>/` (then `<policy name>/<rule id>`)."""
    return f"{_lower(nation)}/"


_CODES = frozenset(ISO_3166_ALPHA3)
