"""The operator's pure builders, as data: one fixture Tenant, a table of cases that each change one field.

Every built Kubernetes object is also checked against the 1.32 OpenAPI schema (strict: unknown fields fail),
and the nations' Vault policy is parsed as HCL and compared path by path.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hcl
import kubernetes_validate
import pytest
from sovereign_operator import builders
from sovereign_operator.builders import (
    KubernetesAuthRole,
    VaultMounts,
    build_admin_role_binding_for_tenant,
    build_limit_range_for_tenant,
    build_namespace_for_tenant,
    build_network_policy_for_tenant,
    build_resource_quota_for_tenant,
    build_serving_service_account_for_tenant,
    build_vault_role_for_tenant,
    vault_mounts_for_tenant,
)

from sovereign.domain.nations import kv_prefix, tenant_namespace
from sovereign.platform_setup import OPERATOR_POLICY_PATH, build_nation_policy, nation_policy_for_namespace
from sovereign.specs.tenant import TenantSpec

KUBERNETES_VERSION = "1.32"
BASE: dict[str, Any] = {"nation": "FRA", "displayName": "France", "clearance": "NATO SECRET"}
LABELS = {"sovereign.ai/nation": "FRA", "app.kubernetes.io/managed-by": "sovereign-operator"}
NAME_LABEL = "kubernetes.io/metadata.name"
MODELS = "count/modeldeployments.sovereign.ai"
NAMESPACED_KINDS = ("quota", "limits", "network", "service-account", "admins")
RBAC = {"apiGroup": "rbac.authorization.k8s.io"}
NETWORK = {"platform_namespace": "sovereign-system", "vault_namespace": "vault", "vault_port": 8200}


def tenant(**changes: Any) -> TenantSpec:
    """The fixture Tenant with some top-level fields (camelCase, as in the CRD) replaced."""
    return TenantSpec.model_validate({**BASE, **changes})


def network_policy(spec: TenantSpec) -> dict[str, Any]:
    return build_network_policy_for_tenant(spec, **NETWORK)


KUBERNETES_BUILDERS: dict[str, Callable[[TenantSpec], dict[str, Any]]] = {
    "namespace": build_namespace_for_tenant,
    "quota": build_resource_quota_for_tenant,
    "limits": build_limit_range_for_tenant,
    "network": network_policy,
    "service-account": build_serving_service_account_for_tenant,
    "admins": build_admin_role_binding_for_tenant,
}


# --- The fixture Tenant, whole objects -------------------------------------------------------------


def selecting(namespace: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {NAME_LABEL: namespace}}}


def metadata(name: str) -> dict[str, Any]:
    return {"name": name, "namespace": "tenant-fra", "labels": LABELS}


# Gateway-to-gateway federation: the Ray pods of other Tenants' namespaces, on the Serve port only.
NATION_LABELLED = {
    "matchLabels": {"app.kubernetes.io/managed-by": "sovereign-operator"},
    "matchExpressions": [{"key": "sovereign.ai/nation", "operator": "Exists"}],
}


def other_nations_serving(own_namespace: str) -> dict[str, Any]:
    return {
        "namespaceSelector": {
            "matchLabels": {"app.kubernetes.io/managed-by": "sovereign-operator"},
            "matchExpressions": [
                {"key": "sovereign.ai/nation", "operator": "Exists"},
                {"key": NAME_LABEL, "operator": "NotIn", "values": [own_namespace]},
            ],
        },
        "podSelector": NATION_LABELLED,
    }


OTHER_NATIONS_SERVING = other_nations_serving("tenant-fra")
SERVE_PORT = {"protocol": "TCP", "port": 8000}
DASHBOARD_PORT = {"protocol": "TCP", "port": 8265}  # the operator's only other way in: jobs, Serve REST

EXPECTED_FOR_FRA = {
    "namespace": {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "tenant-fra",
            "labels": {
                **LABELS,
                NAME_LABEL: "tenant-fra",
                # Pod Security: enforced baseline (no pod reaches the node), restricted warned and audited.
                "pod-security.kubernetes.io/enforce": "baseline",
                "pod-security.kubernetes.io/warn": "restricted",
                "pod-security.kubernetes.io/audit": "restricted",
            },
        },
    },
    "quota": {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": metadata("tenant-quota"),
        "spec": {
            "hard": {
                **{"requests.cpu": "8", "limits.cpu": "8", "requests.memory": "32Gi"},
                **{"limits.memory": "32Gi", "requests.nvidia.com/gpu": "0", MODELS: "10"},
            }
        },
    },
    "limits": {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": metadata("tenant-limits"),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": {"cpu": "1", "memory": "1Gi"},
                    "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                    "max": {"cpu": "8", "memory": "32Gi"},
                }
            ]
        },
    },
    "network": {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata("tenant-isolation"),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {"from": [{"podSelector": {}}]},
                {"from": [selecting("sovereign-system")], "ports": [DASHBOARD_PORT, SERVE_PORT]},
                {"from": [OTHER_NATIONS_SERVING], "ports": [SERVE_PORT]},
            ],
            "egress": [
                {"to": [{"podSelector": {}}]},
                {
                    "to": [selecting("kube-system")],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                },
                {"to": [selecting("sovereign-system")]},
                {"to": [selecting("vault")], "ports": [{"protocol": "TCP", "port": 8200}]},
                {"to": [OTHER_NATIONS_SERVING], "ports": [SERVE_PORT]},
            ],
        },
    },
    "service-account": {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata("model-serving"),
    },
    "admins": {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata("tenant-admins"),
        "roleRef": {**RBAC, "kind": "ClusterRole", "name": "sovereign-namespace-admin"},
        "subjects": [],
    },
}


@pytest.mark.parametrize("kind", sorted(EXPECTED_FOR_FRA))
def test_fixture_tenant_builds_exactly(kind: str) -> None:
    assert KUBERNETES_BUILDERS[kind](tenant()) == EXPECTED_FOR_FRA[kind]


# --- One changed field: the fixture's object with exactly that difference ---------------------------


def merged(base: Any, diff: Any) -> Any:
    """`base` with `diff` laid over it: dicts merge key by key, anything else (lists too) is replaced."""
    if not isinstance(base, dict) or not isinstance(diff, dict):
        return diff
    return {**base, **{key: merged(base.get(key), value) for key, value in diff.items()}}


@dataclass(frozen=True)
class Case:
    id: str
    changes: dict[str, Any]  # to the fixture Tenant
    kind: str
    difference: dict[str, Any]  # from the fixture's object


def quotas(**values: Any) -> dict[str, Any]:
    return {"quotas": values}


def hard(**values: str) -> dict[str, Any]:
    return {"spec": {"hard": {name.replace("_", "."): value for name, value in values.items()}}}


def limits(cpu: tuple[str, str, str], memory: tuple[str, str, str]) -> dict[str, Any]:
    """(defaultRequest, default, max) for each resource."""
    item = {"type": "Container"}
    for field, index in (("defaultRequest", 0), ("default", 1), ("max", 2)):
        item[field] = {"cpu": cpu[index], "memory": memory[index]}
    return {"spec": {"limits": [item]}}


def subjects(*items: dict[str, Any]) -> dict[str, Any]:
    return {"subjects": list(items)}


DEU_LABEL = {"sovereign.ai/nation": "DEU"}
DEU = {"metadata": {"namespace": "tenant-deu", "labels": DEU_LABEL}}
USER = {"kind": "User", "name": "marianne@defense.gouv.fr"}
GROUP = {"kind": "Group", "name": "fra-platform-admins"}
ROBOT = {"kind": "ServiceAccount", "name": "ci", "namespace": "fra-ci"}
FRA_MEMORY = ("128Mi", "1Gi", "32Gi")
FRA_CPU = ("100m", "1", "8")

FRA_NETWORK_SPEC = EXPECTED_FOR_FRA["network"]["spec"]
NETWORK_OF_DEU = {  # the federation rules leave out DEU's own namespace instead of FRA's
    "spec": {
        direction: [
            {**rule, peers: [other_nations_serving("tenant-deu")]}
            if rule[peers] == [OTHER_NATIONS_SERVING]
            else rule
            for rule in FRA_NETWORK_SPEC[direction]
        ]
        for direction, peers in (("ingress", "from"), ("egress", "to"))
    }
}

CASES = [
    Case(
        "nation-names-namespace",
        {"nation": "DEU"},
        "namespace",
        {"metadata": {"name": "tenant-deu", "labels": {**DEU_LABEL, NAME_LABEL: "tenant-deu"}}},
    ),
    *(
        Case(f"nation-places-{kind}", {"nation": "DEU"}, kind, DEU)
        for kind in NAMESPACED_KINDS
        if kind != "network"
    ),
    Case("nation-places-network", {"nation": "DEU"}, "network", merged(DEU, NETWORK_OF_DEU)),
    Case("cpu", quotas(cpu="12"), "quota", hard(requests_cpu="12", limits_cpu="12")),
    Case("memory", quotas(memory="64Gi"), "quota", hard(requests_memory="64Gi", limits_memory="64Gi")),
    Case("gpus", quotas(gpus=4), "quota", {"spec": {"hard": {"requests.nvidia.com/gpu": "4"}}}),
    Case("max-models", quotas(maxModels=3), "quota", {"spec": {"hard": {MODELS: "3"}}}),
    Case("no-models", quotas(maxModels=0), "quota", {"spec": {"hard": {MODELS: "0"}}}),
    Case("traffic-is-not-a-pod-quota", quotas(requestsPerMinute=5, tokensPerMinute=9), "quota", {}),
    # (defaultRequest, default, max): defaults are capped by the quota so the API server accepts them.
    Case("big-cpu-raises-max", quotas(cpu="64"), "limits", limits(("100m", "1", "64"), FRA_MEMORY)),
    Case("small-cpu", quotas(cpu="500m"), "limits", limits(("100m", "500m", "500m"), FRA_MEMORY)),
    Case("tiny-cpu", quotas(cpu="50m"), "limits", limits(("50m", "50m", "50m"), FRA_MEMORY)),
    Case("small-memory", quotas(memory="512Mi"), "limits", limits(FRA_CPU, ("128Mi", "512Mi", "512Mi"))),
    Case("tiny-memory", quotas(memory="64Mi"), "limits", limits(FRA_CPU, ("64Mi", "64Mi", "64Mi"))),
    Case("gpus-have-no-container-default", quotas(gpus=8), "limits", {}),
    Case("admin-user", {"admins": [USER]}, "admins", subjects({**USER, **RBAC})),
    Case("admin-group", {"admins": [GROUP]}, "admins", subjects({**GROUP, **RBAC})),
    Case("admin-service-account", {"admins": [ROBOT]}, "admins", subjects(ROBOT)),
    Case(
        "admin-service-account-in-own-namespace",
        {"admins": [{"kind": "ServiceAccount", "name": "ci"}]},
        "admins",
        subjects({"kind": "ServiceAccount", "name": "ci", "namespace": "tenant-fra"}),
    ),
    Case(
        "admins-in-order",
        {"admins": [GROUP, ROBOT, USER]},
        "admins",
        subjects({**GROUP, **RBAC}, ROBOT, {**USER, **RBAC}),
    ),
    Case("no-admins", {"admins": []}, "admins", {}),
    Case("vault-does-not-change-namespace", {"vault": {"address": "https://v:8200"}}, "namespace", {}),
    Case("suspension-keeps-objects", {"suspended": True}, "network", {}),
    Case("vault-by-host-name-opens-no-egress", {"vault": {"address": "https://v:8200"}}, "network", {}),
]


@pytest.mark.parametrize(
    ("address", "rule"),
    [
        (
            "https://10.20.0.5:8200",
            {"to": [{"ipBlock": {"cidr": "10.20.0.5/32"}}], "ports": [{"protocol": "TCP", "port": 8200}]},
        ),
        (
            "https://[fd00::5]",
            {"to": [{"ipBlock": {"cidr": "fd00::5/128"}}], "ports": [{"protocol": "TCP", "port": 443}]},
        ),
    ],
    ids=["ipv4-with-port", "ipv6-default-https-port"],
)
def test_nations_own_vault_at_an_ip_gets_exactly_one_egress_rule(address: str, rule: dict[str, Any]) -> None:
    egress = network_policy(tenant(vault={"address": address}))["spec"]["egress"]
    assert egress == [*EXPECTED_FOR_FRA["network"]["spec"]["egress"], rule]


def selected(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions In/NotIn/Exists) against labels."""
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "Exists" and key not in labels:
            return False
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
    return True


def admitted_from_elsewhere(
    rules: list[dict[str, Any]], peers: str, namespace: dict[str, str], pod: dict[str, str], port: int
) -> bool:
    """Whether a rule with a namespaceSelector lets a pod of another namespace through on a TCP port."""
    for rule in rules:
        ports = rule.get("ports")
        if ports is not None and not any(p["protocol"] == "TCP" and p["port"] == port for p in ports):
            continue
        for peer in rule[peers]:
            if "namespaceSelector" not in peer:
                continue  # a bare podSelector: the policy's own namespace only
            if selected(peer["namespaceSelector"], namespace) and selected(peer.get("podSelector", {}), pod):
                return True
    return False


def tenant_namespace_labels(nation: str) -> dict[str, str]:
    return build_namespace_for_tenant(tenant(nation=nation))["metadata"]["labels"]


RAY_POD_OF = {
    nation: {
        "sovereign.ai/nation": nation,
        "app.kubernetes.io/managed-by": "sovereign-operator",
        "ray.io/node-type": "head",
    }
    for nation in ("DEU", "FRA")
}


@pytest.mark.parametrize(
    ("namespace", "pod", "port", "allowed"),
    [
        (tenant_namespace_labels("DEU"), RAY_POD_OF["DEU"], 8000, True),
        (tenant_namespace_labels("DEU"), RAY_POD_OF["DEU"], 8265, False),  # not the dashboard
        (tenant_namespace_labels("DEU"), RAY_POD_OF["DEU"], 6379, False),  # not the GCS
        (tenant_namespace_labels("DEU"), {"app": "something-else"}, 8000, False),  # not Ray's pods
        (tenant_namespace_labels("FRA"), RAY_POD_OF["FRA"], 8000, False),  # own namespace: its own rule
        ({NAME_LABEL: "default"}, RAY_POD_OF["DEU"], 8000, False),  # not a Tenant's namespace
        (
            {NAME_LABEL: "sovereign-system", "app.kubernetes.io/managed-by": "sovereign-operator"},
            RAY_POD_OF["DEU"],
            8000,
            False,
        ),  # the operator's own namespace is no nation's
    ],
    ids=[
        "deu-ray-serve",
        "deu-dashboard",
        "deu-gcs",
        "deu-other-pod",
        "own-namespace",
        "untenanted",
        "platform-namespace-by-this-rule",
    ],
)
def test_federation_between_nations_is_serve_port_to_serve_port(
    namespace: dict[str, str], pod: dict[str, str], port: int, allowed: bool
) -> None:
    spec = network_policy(tenant())["spec"]
    assert admitted_from_elsewhere(spec["ingress"][2:], "from", namespace, pod, port) is allowed
    assert admitted_from_elsewhere(spec["egress"][4:], "to", namespace, pod, port) is allowed


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_one_changed_field_changes_only_its_objects(case: Case) -> None:
    built = KUBERNETES_BUILDERS[case.kind](tenant(**case.changes))
    assert built == merged(EXPECTED_FOR_FRA[case.kind], case.difference)


SPECS_TO_VALIDATE = [tenant(), *(tenant(**case.changes) for case in CASES)]


@pytest.mark.parametrize("kind", sorted(KUBERNETES_BUILDERS))
def test_every_built_object_is_valid_kubernetes(kind: str) -> None:
    for spec in SPECS_TO_VALIDATE:
        kubernetes_validate.validate(KUBERNETES_BUILDERS[kind](spec), KUBERNETES_VERSION, strict=True)


# --- Vault: mounts, role, policy ------------------------------------------------------------------------

BYO_VAULT = {
    "address": "https://v:8200",
    "authMount": "k8s-fra",
    "transitMount": "fra-t",
    "kvMount": "fra-kv",
}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, VaultMounts(transit="transit", kv="secret", auth="kubernetes")),
        ({"vault": BYO_VAULT}, VaultMounts(transit="fra-t", kv="fra-kv", auth="k8s-fra")),
        ({"vault": {"address": "https://v:8200"}}, VaultMounts("transit", "secret", "kubernetes")),
    ],
    ids=["platform-vault", "own-vault", "own-vault-default-mounts"],
)
def test_vault_mounts(changes: dict[str, Any], expected: VaultMounts) -> None:
    assert vault_mounts_for_tenant(tenant(**changes)) == expected


@pytest.mark.parametrize(
    ("changes", "nation", "mount"),
    [
        ({}, "fra", "kubernetes"),
        ({"nation": "EST"}, "est", "kubernetes"),
        ({"vault": BYO_VAULT}, "fra", "k8s-fra"),
    ],
    ids=["fixture", "nation", "own-vault"],
)
def test_vault_role(changes: dict[str, Any], nation: str, mount: str) -> None:
    # Exactly the parameters sovereign-operator.hcl allows on auth/kubernetes/role/tenant-*, as strings.
    assert build_vault_role_for_tenant(tenant(**changes)) == KubernetesAuthRole(
        mount=mount,
        name=f"tenant-{nation}",
        body={
            "bound_service_account_names": "model-serving",
            "bound_service_account_namespaces": f"tenant-{nation}",
            "token_policies": "sovereign-nation",
            "token_ttl": "1h",
        },
    )


def test_vault_role_is_what_the_operator_policy_pins() -> None:
    rule = hcl.loads(OPERATOR_POLICY_PATH.read_text())["path"]["auth/kubernetes/role/tenant-*"]
    pinned = rule["allowed_parameters"]
    for nation in ("FRA", "EST"):
        body = build_vault_role_for_tenant(tenant(nation=nation)).body
        assert set(body) == set(pinned)
        for field, value in body.items():
            assert any(fnmatch.fnmatchcase(value, allowed) for allowed in pinned[field]), field


def policy_paths(text: str) -> dict[str, list[str]]:
    return {path: body["capabilities"] for path, body in hcl.loads(text)["path"].items()}


def expected_policy(transit: str, kv: str, key: str, prefix: str) -> dict[str, list[str]]:
    return {
        f"{transit}/encrypt/{key}": ["update"],
        f"{transit}/decrypt/{key}": ["update"],
        f"{transit}/rewrap/{key}": ["update"],
        f"{transit}/datakey/plaintext/{key}": ["update"],
        f"{transit}/datakey/wrapped/{key}": ["update"],
        f"{transit}/keys/{key}": ["read"],
        f"{transit}/sign/{key}-issuer": ["update"],
        f"{transit}/keys/{key}-issuer": ["read"],
        f"{transit}/sign/{key}-gateway": ["update"],
        f"{transit}/keys/{key}-gateway": ["read"],
        f"{kv}/data/{prefix}/*": ["create", "read", "update", "patch", "delete"],
        f"{kv}/metadata/{prefix}/*": ["read", "list", "delete"],
        f"{kv}/metadata/{prefix}": ["list"],
        f"{kv}/data/{prefix}/tenant": ["read"],
        f"{kv}/metadata/{prefix}/tenant": ["read"],
    }


def test_nation_policy_is_templated_on_the_kubernetes_auth_alias() -> None:
    """sovereign-nation names each path by the namespace of the ServiceAccount the token logged in as
    (Vault docs: /vault/docs/concepts/policies#templated-policies); the accessor is filled in at setup."""
    namespace = "{{identity.entity.aliases.auth_kubernetes_0a1b.metadata.service_account_namespace}}"
    assert policy_paths(build_nation_policy("auth_kubernetes_0a1b")) == expected_policy(
        "transit", "secret", namespace, f"tenants/{namespace}"
    )


@pytest.mark.parametrize("nation", ["FRA", "POL"])
def test_nation_policy_for_one_namespace(nation: str) -> None:
    namespace = tenant_namespace(nation)
    assert kv_prefix(nation) == f"tenants/{namespace}"
    assert policy_paths(nation_policy_for_namespace(namespace)) == expected_policy(
        "transit", "secret", namespace, kv_prefix(nation)
    )


@pytest.mark.parametrize(("first", "second"), [("FRA", "DEU"), ("FRA", "FRO"), ("NOR", "NLD")])
def test_two_nations_policies_share_no_path(first: str, second: str) -> None:
    paths = [set(policy_paths(nation_policy_for_namespace(tenant_namespace(n)))) for n in (first, second)]
    assert not paths[0] & paths[1]


def test_public_api_is_sorted_and_complete() -> None:
    assert builders.__all__ == sorted(builders.__all__)
    assert all(hasattr(builders, name) for name in builders.__all__)
