"""The serving plan, as data: one fixture snapshot (FRA and DEU Ready with a model each, ITA not Ready), a
table of cases that each change one thing, and what each runtime makes of the plan (pure: the local Ray's
Serve config, a nation's RayService) without any cluster."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, get_args

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema
from sovereign_operator.builders.model_status import Placement
from sovereign_operator.builders.serving_plan import ServingPlan, ServingSnapshot, build_serving_plan
from sovereign_operator.config import OperatorConfig
from sovereign_operator.constants import SERVICE_ACCOUNT_TOKEN_FILE
from sovereign_operator.runtimes import (
    RUNTIMES,
    KubeRayRuntime,
    LocalRayRuntime,
    NoRuntime,
    ServingRuntime,
    runtime_for,
)

from sovereign.serving_contract import GatewayConfig

DIGEST = "ab" * 32
BUNDLE = {"version": "v1", "schema": "{}", "policies": "permit(principal, action, resource);"}
VAULT = "https://vault:8200"
LOCAL_RAY = OperatorConfig(
    vault_addr=VAULT, runtime="local-ray", ray_dashboard_url="http://127.0.0.1:8265", serve_http_port=8000
)
KUBERAY = OperatorConfig(vault_addr=VAULT, runtime="kuberay")
NONE = OperatorConfig(vault_addr=VAULT, runtime="none")


def tenant(nation: str, ready: bool = True, issuer: str | None = None, created: str = "2026-01-01") -> dict:
    status: dict[str, Any] = {
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "identity": {"issuer": issuer or f"https://{nation.lower()}.example"},
    }
    return {
        "metadata": {"name": nation.lower(), "uid": f"u-{nation}", "creationTimestamp": created},
        "spec": {"nation": nation, "displayName": nation, "clearance": "NATO SECRET"},
        "status": status,
    }


def model(nation: str, name: str, deleting: bool = False, **spec: Any) -> dict:
    metadata: dict[str, Any] = {"name": f"{nation.lower()}-{name}", "namespace": f"tenant-{nation.lower()}"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-02T00:00:00Z"
    body = {
        "model": name,
        "source": f"/models/{name}",
        "sha256": {"model.safetensors": DIGEST},
        "resources": {"cpu": "1", "memory": "1Gi"},
        "replicas": 1,
        "maxTokens": 256,
        "markings": {"classification": "NATO RESTRICTED"},
    }
    return {"metadata": metadata, "spec": {**body, **spec}}


def dataset(nation: str, name: str = "reports", ready: bool = True) -> dict:
    return {
        "metadata": {"name": name, "namespace": f"tenant-{nation.lower()}"},
        "spec": {
            "source": name,
            "markings": {"classification": "NATO RESTRICTED"},
            "embedding": {"modelDeployment": f"{nation.lower()}-minilm"},
        },
        # Ingested (an index version) is what the retriever serves; Ready follows once it does.
        "status": {
            "conditions": [{"type": "Ready", "status": "False"}],
            **({"indexVersion": 1} if ready else {}),
        },
    }


TENANTS = [tenant("FRA"), tenant("DEU"), tenant("ITA", ready=False)]
MODELS = [model("FRA", "analyst"), model("DEU", "scribe"), model("ITA", "pilot")]
CAS = {"FRA": "FRA-CA", "DEU": "DEU-CA", "ITA": "ITA-CA"}


def snapshot(**changes: Any) -> ServingSnapshot:
    base = ServingSnapshot(tenants=TENANTS, models=MODELS, datasets=[], bundle_data=BUNDLE, vault_cas=CAS)
    return replace(base, **changes)


def plan(config: OperatorConfig = LOCAL_RAY, **changes: Any) -> ServingPlan:
    return build_serving_plan(snapshot(**changes), runtime_for(config), config)


def gateway_config(served: ServingPlan, nation: str) -> GatewayConfig:
    [gateway] = [app for app in served.applications if app["name"] == f"{nation.lower()}-gateway"]
    return GatewayConfig.model_validate(gateway["deployments"][0]["user_config"])


# --- The fixture, whole ----------------------------------------------------------------------------------


def test_the_plan_whole_on_local_ray() -> None:
    served = plan()
    assert served.served_nations == ["DEU", "FRA"]
    assert [app["name"] for app in served.applications] == [
        "deu-gateway",
        "deu-scribe",
        "fra-gateway",
        "fra-analyst",
    ]
    assert served.placements == {
        ("tenant-fra", "fra-analyst"): Placement(True, application="fra-analyst", endpoint="/fra/v1"),
        ("tenant-deu", "deu-scribe"): Placement(True, application="deu-scribe", endpoint="/deu/v1"),
        ("tenant-ita", "ita-pilot"): Placement(
            False, "TenantNotReady", "the Tenant of tenant-ita is not Ready"
        ),
    }
    assert served.left_out == {}
    assert [(n.nation, n.retriever, n.has_datasets) for n in served.nations] == [
        ("DEU", None, False),
        ("FRA", None, False),
    ]
    assert [m.name for m in gateway_config(served, "FRA").models] == ["deu/scribe", "fra/analyst"]


def test_the_same_snapshot_gives_the_same_plan_byte_for_byte() -> None:
    assert json.dumps(plan().applications) == json.dumps(plan(tenants=list(reversed(TENANTS))).applications)


# --- Which models are served, and why not --------------------------------------------------------------


@pytest.mark.parametrize(
    ("models", "key", "expected"),
    [
        pytest.param(
            [model("FRA", "analyst", deleting=True)], ("tenant-fra", "fra-analyst"), None, id="being-deleted"
        ),
        pytest.param(
            [model("FRA", "analyst", replicas="many")],
            ("tenant-fra", "fra-analyst"),
            Placement(
                False, "InvalidSpec", "Input should be a valid integer, unable to parse string as an integer"
            ),
            id="invalid-spec",
        ),
        pytest.param(
            [
                model("FRA", "analyst"),
                {**model("FRA", "analyst"), "metadata": {"name": "again", "namespace": "tenant-fra"}},
            ],
            ("tenant-fra", "again"),
            Placement(False, "DuplicateModel", "FRA already serves 'analyst'"),
            id="duplicate-model",
        ),
        pytest.param(
            [model("ESP", "analyst")],
            ("tenant-esp", "esp-analyst"),
            Placement(False, "TenantNotReady", "the Tenant of tenant-esp is not Ready"),
            id="no-tenant",
        ),
    ],
)
def test_each_models_placement(models: list[dict], key: tuple[str, str], expected: Placement | None) -> None:
    assert plan(models=models).placements.get(key) == expected


def test_a_tenant_naming_an_older_tenants_issuer_is_left_out() -> None:
    tenants = [
        tenant("FRA", created="2026-01-01"),
        tenant("DEU", issuer="https://fra.example", created="2026-02-01"),
    ]
    served = plan(tenants=tenants)
    why = (
        "Tenant deu names the token issuer of the older Tenant fra: DEU is not served until its issuer is "
        "its own"
    )
    assert served.left_out == {"DEU": why}
    assert served.served_nations == ["FRA"]
    assert served.placements[("tenant-deu", "deu-scribe")] == Placement(False, "IssuerConflict", why)
    assert [t["spec"]["nation"] for t in gateway_config(served, "FRA").tenants] == ["FRA"]


def test_the_runtimes_states_reach_the_placements() -> None:
    states = {"fra-analyst": ("DEPLOY_FAILED", "IntegrityError")}
    placements = plan().placements_with_states(states)
    assert placements[("tenant-fra", "fra-analyst")].app_status == "DEPLOY_FAILED"
    assert placements[("tenant-fra", "fra-analyst")].app_message == "IntegrityError"
    assert placements[("tenant-deu", "deu-scribe")].app_status == "NOT_STARTED"
    assert placements[("tenant-ita", "ita-pilot")] == plan().placements[("tenant-ita", "ita-pilot")]


# --- Where things run: each runtime's answers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(LOCAL_RAY, "/fra/v1", id="local-ray"),
        pytest.param(KUBERAY, "http://fra-serving-serve-svc.tenant-fra.svc:8000/fra/v1", id="kuberay"),
        pytest.param(
            LOCAL_RAY.model_copy(update={"gateway_url": "https://ai.example/"}),
            "https://ai.example/fra/v1",
            id="gateway-url",
        ),
    ],
)
def test_the_endpoint(config: OperatorConfig, expected: str) -> None:
    assert plan(config).placements[("tenant-fra", "fra-analyst")].endpoint == expected


def test_on_kuberay_other_nations_models_go_through_their_gateway() -> None:
    config = gateway_config(plan(KUBERAY), "FRA")
    urls = {m.name: m.federation_url for m in config.models}
    assert urls == {"deu/scribe": "http://deu-serving-serve-svc.tenant-deu.svc:8000/deu", "fra/analyst": None}
    assert config.federation is not None
    assert (config.federation.token_file, config.federation.ca_cert) == (SERVICE_ACCOUNT_TOKEN_FILE, "FRA-CA")
    assert gateway_config(plan(LOCAL_RAY), "FRA").federation is None


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(LOCAL_RAY, None, id="local-ray-no-audit-dir"),
        pytest.param(LOCAL_RAY.model_copy(update={"audit_dir": "/audit"}), None, id="local-ray-no-token-dir"),
        pytest.param(
            LOCAL_RAY.model_copy(update={"audit_dir": "/audit", "service_account_token_dir": "/tokens"}),
            ("/audit", "/tokens/fra/token", None),
            id="local-ray",
        ),
        pytest.param(KUBERAY, None, id="kuberay-no-audit-dir"),
        pytest.param(
            KUBERAY.model_copy(update={"audit_dir": "/audit"}),
            ("/var/lib/sovereign/audit", SERVICE_ACCOUNT_TOKEN_FILE, "sovereign-data"),
            id="kuberay-on-the-data-volume",
        ),
        pytest.param(NONE.model_copy(update={"audit_dir": "/audit"}), None, id="none"),
    ],
)
def test_where_the_gateway_audits(
    config: OperatorConfig, expected: tuple[str, str, str | None] | None
) -> None:
    audit = gateway_config(plan(config), "FRA").audit
    assert (audit and (audit.directory, audit.token_file, audit.ray_resource)) == expected
    if audit is not None:
        assert (audit.ca_cert, audit.tenant_uid) == ("FRA-CA", "u-FRA")


def test_no_vault_ca_is_read_when_nothing_logs_in() -> None:
    class Recording(dict):
        def __getitem__(self, nation: str) -> str | None:
            raise AssertionError(f"{nation}'s CA read")

    assert plan(vault_cas=Recording()).served_nations == ["DEU", "FRA"]


# --- Datasets: the retriever ------------------------------------------------------------------------------

WITH_MINILM = [*MODELS, model("FRA", "minilm", task="embed")]


@pytest.mark.parametrize(
    ("config", "datasets", "expected"),
    [
        pytest.param(LOCAL_RAY, [dataset("FRA")], None, id="local-ray-without-dataset-dir"),
        pytest.param(
            LOCAL_RAY.model_copy(update={"dataset_dir": "/data", "service_account_token_dir": "/tokens"}),
            [dataset("FRA")],
            ("/data", "/tokens/fra/token", {"num_cpus": 0.1}),
            id="local-ray",
        ),
        pytest.param(
            KUBERAY,
            [dataset("FRA")],
            (
                "/var/lib/sovereign/datasets",
                SERVICE_ACCOUNT_TOKEN_FILE,
                {"num_cpus": 0.1, "resources": {"sovereign-data": 0.001}},
            ),
            id="kuberay",
        ),
        pytest.param(KUBERAY, [dataset("FRA", ready=False)], None, id="not-ingested-yet"),
        pytest.param(NONE, [dataset("FRA")], None, id="none"),
    ],
)
def test_the_retriever(config: OperatorConfig, datasets: list[dict], expected: tuple | None) -> None:
    served = plan(config, models=WITH_MINILM, datasets=datasets)
    [deu, fra] = served.nations
    assert (deu.has_datasets, fra.has_datasets) == (False, True)
    if expected is None:
        assert fra.retriever is None and gateway_config(served, "FRA").datasets == []
        return
    assert fra.retriever is not None
    assert served.applications[-1] == fra.retriever  # retrievers come last in the Serve config
    [deployment] = fra.retriever["deployments"]
    user_config = deployment["user_config"]
    assert (
        user_config["storeRoot"],
        user_config["vault"]["tokenFile"],
        deployment["ray_actor_options"],
    ) == expected
    assert [d.name for d in gateway_config(served, "DEU").datasets] == ["fra/reports"]


@pytest.mark.parametrize(
    ("states", "settled", "routed", "published"),
    [
        pytest.param(
            {"fra-gateway": "RUNNING", "deu-gateway": "RUNNING"}, True, True, False, id="no-retriever"
        ),
        pytest.param(
            {"fra-gateway": "RUNNING", "deu-gateway": "RUNNING", "fra-retriever": "RUNNING"},
            True,
            True,
            True,
            id="all-running",
        ),
        pytest.param(
            {"fra-gateway": "RUNNING", "deu-gateway": "RUNNING", "fra-retriever": "RUNNING"},
            False,
            False,
            True,
            id="states-read-right-after-a-change",
        ),
        pytest.param(
            {"fra-gateway": "RUNNING", "deu-gateway": "DEPLOYING", "fra-retriever": "RUNNING"},
            True,
            False,
            True,
            id="a-gateway-still-reconfiguring",
        ),
    ],
)
def test_a_dataset_is_published_once_its_retriever_and_every_gateway_run(
    states: dict[str, str], settled: bool, routed: bool, published: bool
) -> None:
    config = LOCAL_RAY.model_copy(update={"dataset_dir": "/data", "service_account_token_dir": "/tokens"})
    served = plan(config, models=WITH_MINILM, datasets=[dataset("FRA"), dataset("FRA", "later", ready=False)])
    with_messages = {name: (status, "") for name, status in states.items()}
    assert served.routed(with_messages, settled) is routed
    assert served.publishes("FRA", "reports", with_messages) is published
    assert not served.publishes("FRA", "later", with_messages)  # not ingested: not in the plan
    assert not served.publishes("DEU", "reports", with_messages)


# --- What each runtime makes of the plan (pure) -----------------------------------------------------------


def test_local_ray_puts_every_nations_applications_in_one_body() -> None:
    served = plan()
    body = LocalRayRuntime(LOCAL_RAY).serve_config(served)
    ServeDeploySchema.model_validate(body)
    assert body["http_options"] == {"host": "127.0.0.1", "port": 8000}
    assert [app["name"] for app in body["applications"]] == [app["name"] for app in served.applications]


@pytest.mark.parametrize(
    ("config", "datasets", "data_volume"),
    [
        pytest.param(KUBERAY, [], False, id="nothing-to-keep"),
        pytest.param(KUBERAY.model_copy(update={"audit_dir": "/audit"}), [], True, id="audit"),
        pytest.param(KUBERAY, [dataset("FRA", ready=False)], True, id="a-dataset"),
    ],
)
def test_kuberay_makes_one_rayservice_per_nation(
    config: OperatorConfig, datasets: list, data_volume: bool
) -> None:
    runtime = KubeRayRuntime(config)
    [deu, fra] = plan(config, datasets=datasets).nations
    rayservice = runtime.rayservice(fra)
    assert (rayservice["metadata"]["name"], rayservice["metadata"]["namespace"]) == (
        "fra-serving",
        "tenant-fra",
    )
    serve_config = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    assert [app["name"] for app in serve_config["applications"]] == ["fra-gateway", "fra-analyst"]
    head = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]
    assert runtime.data_volume(fra) is data_volume
    assert ("resources" in head["rayStartParams"]) is data_volume  # the data volume's Ray resource
    assert runtime.rayservice(deu)["metadata"]["namespace"] == "tenant-deu"


def test_each_runtime_is_one_class_named_as_the_config_names_it() -> None:
    names = get_args(OperatorConfig.model_fields["runtime"].annotation)
    assert sorted(RUNTIMES) == sorted(names)
    for name, runtime in RUNTIMES.items():
        assert isinstance(runtime_for(OperatorConfig(vault_addr=VAULT, runtime=name)), runtime)
    none: ServingRuntime = NoRuntime(NONE)
    assert (
        not none.serves
        and none.job_target("FRA") == "serving runtime 'none': DataSets are admitted but not ingested"
    )
