"""The Ray Serve config builder, as data: one fixture platform (FRA with one model, DEU with none), a table of
cases that each change one thing, and every body validated by Ray Serve's own `ServeDeploySchema`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ray.serve.schema import ServeDeploySchema
from sovereign_operator.builders.serve_config import (
    build_serve_applications_for_nation,
    build_serve_deploy_config,
)

from sovereign.serving_contract import AIR_GAP_ENV, GatewayConfig, ModelServerConfig, VaultSink
from sovereign.specs.model_deployment import ModelDeploymentSpec
from sovereign.specs.tenant import TenantSpec

DIGEST = "ab" * 32
MODEL: dict[str, Any] = {
    "model": "analyst",
    "source": "/models/fra/analyst",
    "sha256": {"tokenizer.json": DIGEST, "model.safetensors": DIGEST},
    "resources": {"cpu": "1", "memory": "4Gi"},
    "replicas": 1,
    "maxTokens": 512,
    "markings": {"classification": "NATO RESTRICTED", "releasableTo": ["DEU"]},
}
TENANTS: dict[str, dict[str, Any]] = {
    "FRA": {"nation": "FRA", "displayName": "France", "clearance": "NATO SECRET"},
    "DEU": {"nation": "DEU", "displayName": "Germany", "clearance": "NATO CONFIDENTIAL"},
}
BUNDLE = {"version": "v1", "schema": "{}", "policies": "permit(principal, action, resource);"}
GIB = 1024**3
MIB = 1024**2


def model(**changes: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({**MODEL, **changes})


def tenant_object(nation: str) -> dict[str, Any]:
    """A Tenant as the API returns it: with metadata and status the gateway does not need."""
    return {
        "apiVersion": "sovereign.ai/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": nation.lower(), "resourceVersion": "42", "uid": "u-" + nation},
        "spec": TENANTS[nation],
        "status": {
            "identity": {"issuer": f"https://{nation.lower()}.example"},
            "federation": {"jwks": {"keys": [{"kid": f"{nation.lower()}-gateway"}]}},
            "keyVersion": 3,
        },
    }


def applications(
    nation: str = "FRA", models: dict[str, list[ModelDeploymentSpec]] | None = None, **options: Any
) -> list[dict[str, Any]]:
    all_models = {"FRA": [model()], "DEU": []} if models is None else models
    return build_serve_applications_for_nation(
        nation,
        TenantSpec.model_validate(TENANTS[nation]),
        all_models.get(nation, []),
        [tenant_object(n) for n in ("FRA", "DEU")],
        all_models,
        BUNDLE,
        **options,
    )


def validated(apps: list[dict[str, Any]], http_port: int | None = None) -> dict[str, Any]:
    body = build_serve_deploy_config(apps, http_port)
    ServeDeploySchema.model_validate(body)
    return body


def by_name(apps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {app["name"]: app for app in apps}


def model_deployment(apps: list[dict[str, Any]], name: str = "fra-analyst") -> dict[str, Any]:
    [deployment] = by_name(apps)[name]["deployments"]
    return deployment


# --- The fixture, whole --------------------------------------------------------------------------------


def test_fra_applications_whole() -> None:
    apps = applications()
    validated(apps)
    gateway, analyst = apps
    assert analyst == {
        "name": "fra-analyst",
        "route_prefix": None,
        "import_path": "sovereign_serving.model_server:build_app",
        "args": {
            "name": "fra/analyst",
            "nation": "FRA",
            "source": "/models/fra/analyst",
            "sha256": {"model.safetensors": DIGEST, "tokenizer.json": DIGEST},
            "task": "generate",
            "engine": "transformers",
            "engineArgs": {},
            "maxTokens": 512,
        },
        "runtime_env": {"env_vars": AIR_GAP_ENV},
        "deployments": [
            {
                "name": "ModelServer",
                # Many at once (both engines serve requests together), a bounded queue beyond (RELIABILITY.md)
                "max_ongoing_requests": 32,
                "max_queued_requests": 256,
                "num_replicas": 1,
                "ray_actor_options": {"num_cpus": 1.0, "memory": 4 * GIB, "num_gpus": 0},
            }
        ],
    }
    assert {key: value for key, value in gateway.items() if key != "deployments"} == {
        "name": "fra-gateway",
        "route_prefix": "/fra",
        "import_path": "sovereign_serving.gateway:build_app",
        "runtime_env": {"env_vars": AIR_GAP_ENV},
    }
    [deployment] = gateway["deployments"]
    assert deployment["name"] == "Gateway"
    assert deployment["num_replicas"] == 1
    assert 0 < deployment["ray_actor_options"]["num_cpus"] < 1
    # The gateway mostly awaits: far more requests at once than Ray Serve's default of 5 (RELIABILITY.md).
    assert deployment["max_ongoing_requests"] == 100
    # Past a bounded queue the Serve proxy answers 503 with Retry-After instead of a growing wait.
    assert (deployment["max_queued_requests"], deployment["backpressure_config"]) == (
        1000,
        {"status_code": 503, "retry_after_s": 1},
    )
    assert deployment["user_config"] == {
        "nation": "FRA",
        "tenants": [  # sorted by nation, reduced to spec and status.identity
            {"spec": TENANTS["DEU"], "status": {"identity": {"issuer": "https://deu.example"}}},
            {"spec": TENANTS["FRA"], "status": {"identity": {"issuer": "https://fra.example"}}},
        ],
        "models": [
            {
                "name": "fra/analyst",
                "application": "fra-analyst",
                "task": "generate",
                "maxTokens": 512,
                "limits": {"maxMessages": 256, "maxCharacters": 100_000, "maxInputs": 64},  # the defaults
                "markings": {
                    "classification": "NATO RESTRICTED",
                    "releasableTo": ["DEU"],
                    "compartments": [],
                    "deniedNations": [],
                    "owner": "FRA",
                },
            }
        ],
        "bundle": BUNDLE,
    }
    # The contract with the serving side: both parse back into their config objects.
    GatewayConfig.model_validate(deployment["user_config"])
    ModelServerConfig.model_validate(analyst["args"])


# --- One change at a time ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({}, {"num_replicas": 1}, id="replicas"),
        pytest.param({"replicas": None}, {"num_replicas": 1}, id="no-replicas-means-one"),
        pytest.param(
            {"replicas": None, "autoscaling": {"minReplicas": 0, "maxReplicas": 4}},
            {"autoscaling_config": {"min_replicas": 0, "max_replicas": 4, "target_ongoing_requests": 2.0}},
            id="autoscaling-defaults",
        ),
        pytest.param(
            {
                "replicas": None,
                "autoscaling": {"minReplicas": 2, "maxReplicas": 3, "targetOngoingRequests": 5},
            },
            {"autoscaling_config": {"min_replicas": 2, "max_replicas": 3, "target_ongoing_requests": 5.0}},
            id="autoscaling",
        ),
    ],
)
def test_replicas_or_autoscaling(changes: dict[str, Any], expected: dict[str, Any]) -> None:
    apps = applications(models={"FRA": [model(**changes)]})
    validated(apps)
    deployment = model_deployment(apps)
    scaling = {k: v for k, v in deployment.items() if k in ("num_replicas", "autoscaling_config")}
    assert scaling == expected


@pytest.mark.parametrize(
    ("resources", "options", "expected"),
    [
        pytest.param({"cpu": "500m"}, {}, (0.5, 4 * GIB, 0), id="millicores"),
        pytest.param({"cpu": "2", "memory": "512Mi"}, {}, (2.0, 512 * MIB, 0), id="mebibytes"),
        pytest.param({"gpus": 1, "cpu": "4", "memory": "16G"}, {}, (4.0, 16 * 10**9, 1), id="gpu"),
        pytest.param({"cpu": "1"}, {"cpu_scale": 0.05}, (0.05, 4 * GIB, 0), id="devstack-cpu-scale"),
        pytest.param({"cpu": "100m"}, {"cpu_scale": 0.05}, (0.01, 4 * GIB, 0), id="scaled-to-the-floor"),
        pytest.param({"memory": "4Gi"}, {"memory_scale": 0.125}, (1.0, 512 * MIB, 0), id="memory-scale"),
    ],
)
def test_ray_actor_options_from_resources(
    resources: dict[str, Any], options: dict[str, Any], expected: tuple[float, int, int]
) -> None:
    apps = applications(models={"FRA": [model(resources=resources)]}, **options)
    validated(apps)
    num_cpus, memory, num_gpus = expected
    assert model_deployment(apps)["ray_actor_options"] == {
        "num_cpus": num_cpus,
        "memory": memory,
        "num_gpus": num_gpus,
    }


def test_zero_replicas_stops_the_application_but_the_gateway_still_lists_it() -> None:
    apps = applications(models={"FRA": [model(replicas=0)]})
    validated(apps)
    assert [app["name"] for app in apps] == ["fra-gateway"]
    assert [m["name"] for m in apps[0]["deployments"][0]["user_config"]["models"]] == ["fra/analyst"]


def test_every_application_runs_air_gapped() -> None:
    for app in applications(models={"FRA": [model(), model(model="embedder", task="embed")]}):
        assert app["runtime_env"] == {"env_vars": AIR_GAP_ENV}


def test_the_operators_otel_variables_reach_every_application_and_the_air_gap_wins() -> None:
    telemetry = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "VAULT_TOKEN": "not-telemetry",  # only OTEL_* variables are passed on
        **{name: "overridden" for name in AIR_GAP_ENV if name.startswith("OTEL_")},
    }
    models = {"FRA": [model(), model(model="embedder", task="embed")]}
    apps = applications(models=models, telemetry_env=telemetry)
    validated(apps)
    assert len(apps) == 3
    for app in apps:
        env = app["runtime_env"]["env_vars"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4318"
        assert env["OTEL_BSP_SCHEDULE_DELAY"] == "200"
        assert "VAULT_TOKEN" not in env
        assert {name: env[name] for name in AIR_GAP_ENV} == AIR_GAP_ENV
    # The same variables in another order give the same bytes (no redeploy when the environment is reordered).
    reordered = applications(models=models, telemetry_env=dict(reversed(telemetry.items())))
    assert json.dumps(reordered) == json.dumps(apps)


def test_gateway_alone_when_the_nation_serves_no_model() -> None:
    apps = applications("DEU")
    validated(apps)
    assert [app["name"] for app in apps] == ["deu-gateway"]
    assert apps[0]["route_prefix"] == "/deu"
    # DEU's gateway still knows FRA's model (released to DEU; policy decides per request).
    assert [m["name"] for m in apps[0]["deployments"][0]["user_config"]["models"]] == ["fra/analyst"]


def test_names_and_route_prefixes_unique_across_nations() -> None:
    # Same model name in two nations: distinct applications; one body for the shared local Ray.
    models = {"FRA": [model()], "DEU": [model(source="/models/deu/analyst")]}
    fra, deu = applications("FRA", models), applications("DEU", models)
    body = validated([*fra, *deu], http_port=8000)
    assert [app["name"] for app in body["applications"]] == [
        "fra-gateway",
        "fra-analyst",
        "deu-gateway",
        "deu-analyst",
    ]
    routes = [app["route_prefix"] for app in body["applications"]]
    assert routes == ["/fra", None, "/deu", None]
    assert body["http_options"] == {"host": "127.0.0.1", "port": 8000}
    gateway_models = fra[0]["deployments"][0]["user_config"]["models"]
    assert [(m["name"], m["application"], m["markings"]["owner"]) for m in gateway_models] == [
        ("deu/analyst", "deu-analyst", "DEU"),
        ("fra/analyst", "fra-analyst", "FRA"),
    ]
    assert (
        fra[0]["deployments"][0]["user_config"]["models"] == deu[0]["deployments"][0]["user_config"]["models"]
    )


def test_duplicate_application_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        build_serve_deploy_config([*applications(), *applications()])


def test_mismatched_tenant_is_refused() -> None:
    with pytest.raises(ValueError, match="FRA"):
        build_serve_applications_for_nation(
            "DEU", TenantSpec.model_validate(TENANTS["FRA"]), [], [], {}, BUNDLE
        )


def test_no_http_options_without_a_port() -> None:
    assert set(validated(applications())) == {"applications"}


# --- Updates in place: adding or changing one model touches nothing else ----------------------------


def dumps(app: dict[str, Any]) -> str:
    return json.dumps(app, sort_keys=False)


def test_same_specs_give_the_same_bytes() -> None:
    assert json.dumps(applications()) == json.dumps(applications())


def test_adding_a_model_is_additive() -> None:
    before = applications(models={"FRA": [model()], "DEU": []})
    added = model(model="embedder", task="embed")
    after = applications(models={"FRA": [added, model()], "DEU": []})
    old, new = by_name(before), by_name(after)
    assert set(new) - set(old) == {"fra-embedder"}
    assert dumps(new["fra-analyst"]) == dumps(old["fra-analyst"])
    # The gateway changes in its user_config alone (reconfigure, no restart): one model more.
    old_gateway, new_gateway = old["fra-gateway"], new["fra-gateway"]
    [old_deployment], [new_deployment] = old_gateway["deployments"], new_gateway["deployments"]
    assert {k: v for k, v in new_gateway.items() if k != "deployments"} == {
        k: v for k, v in old_gateway.items() if k != "deployments"
    }
    assert {k: v for k, v in new_deployment.items() if k != "user_config"} == {
        k: v for k, v in old_deployment.items() if k != "user_config"
    }
    old_models = old_deployment["user_config"]["models"]
    new_models = new_deployment["user_config"]["models"]
    assert [m for m in new_models if m not in old_models] == [
        {
            "name": "fra/embedder",
            "application": "fra-embedder",
            "task": "embed",
            "maxTokens": 512,
            "limits": old_models[0]["limits"],
            "markings": {**old_models[0]["markings"]},
        }
    ]
    # Another nation's model appearing changes FRA's own model applications not at all.
    with_deu = by_name(applications(models={"FRA": [model()], "DEU": [model(source="/d")]}))
    assert dumps(with_deu["fra-analyst"]) == dumps(old["fra-analyst"])


def test_a_models_limits_reach_the_gateway_and_unset_ones_keep_their_defaults() -> None:
    apps = by_name(applications(models={"FRA": [model(limits={"maxInputs": 8, "maxCharacters": 5000})]}))
    [gateway] = apps["fra-gateway"]["deployments"]
    [served] = gateway["user_config"]["models"]
    assert served["limits"] == {"maxMessages": 256, "maxCharacters": 5000, "maxInputs": 8}
    with pytest.raises(ValueError, match="maxInputs"):
        model(limits={"maxInputs": 0})


def test_changing_replicas_touches_only_that_application() -> None:
    before = by_name(applications(models={"FRA": [model(), model(model="embedder")]}))
    after = by_name(applications(models={"FRA": [model(replicas=3), model(model="embedder")]}))
    assert dumps(after["fra-embedder"]) == dumps(before["fra-embedder"])
    assert dumps(after["fra-gateway"]) == dumps(before["fra-gateway"])
    assert model_deployment(list(after.values()))["num_replicas"] == 3


def test_tenant_churn_does_not_reach_the_config() -> None:
    # resourceVersion, uid and status beyond identity change all the time; the gateway config must not.
    first = applications()
    tenants = [tenant_object(n) for n in ("DEU", "FRA")]  # another order
    for tenant in tenants:
        tenant["metadata"]["resourceVersion"] = "43"
        tenant["status"]["keyVersion"] = 4
    second = build_serve_applications_for_nation(
        "FRA", TenantSpec.model_validate(TENANTS["FRA"]), [model()], tenants, {"FRA": [model()]}, BUNDLE
    )
    assert json.dumps(second) == json.dumps(first)


# --- Federation (kuberay: one Ray cluster per nation) ------------------------------------------------

FEDERATION_URLS = {
    "FRA": "http://fra-serving-serve-svc.tenant-fra.svc:8000/fra",
    "DEU": "http://deu-serving-serve-svc.tenant-deu.svc:8000/deu/",  # a trailing slash is dropped
}
BOTH_NATIONS = {"FRA": [model()], "DEU": [model(model="scribe", source="/models/deu/scribe")]}


def gateway_models(apps: list[dict[str, Any]]) -> dict[str, str | None]:
    """Each model the gateway lists, with its federationUrl (None: called by handle)."""
    return {m["name"]: m.get("federationUrl") for m in apps[0]["deployments"][0]["user_config"]["models"]}


@pytest.mark.parametrize(
    ("nation", "federation_urls", "expected"),
    [
        pytest.param("FRA", None, {"deu/scribe": None, "fra/analyst": None}, id="shared-ray-none"),
        pytest.param(
            "FRA",
            FEDERATION_URLS,
            {"deu/scribe": "http://deu-serving-serve-svc.tenant-deu.svc:8000/deu", "fra/analyst": None},
            id="fra-reaches-deu-owns-its-own",
        ),
        pytest.param(
            "DEU",
            FEDERATION_URLS,
            {"deu/scribe": None, "fra/analyst": "http://fra-serving-serve-svc.tenant-fra.svc:8000/fra"},
            id="deu-reaches-fra-owns-its-own",
        ),
    ],
)
def test_federation_urls_only_for_other_nations_models(
    nation: str, federation_urls: dict[str, str] | None, expected: dict[str, str | None]
) -> None:
    apps = applications(nation, BOTH_NATIONS, federation_urls=federation_urls)
    validated(apps)
    assert gateway_models(apps) == expected
    config = GatewayConfig.model_validate(apps[0]["deployments"][0]["user_config"])
    assert {m.name: m.federation_url for m in config.models} == expected


def test_without_federation_the_config_has_no_federation_key() -> None:
    apps = applications(models=BOTH_NATIONS)
    assert json.dumps(apps) == json.dumps(applications(models=BOTH_NATIONS, federation_urls=None))
    assert "federationUrl" not in json.dumps(apps)


def test_federation_changes_only_the_gateways_user_config() -> None:
    plain, federated = (
        by_name(applications(models=BOTH_NATIONS)),
        by_name(applications(models=BOTH_NATIONS, federation_urls=FEDERATION_URLS)),
    )
    assert dumps(federated["fra-analyst"]) == dumps(plain["fra-analyst"])
    [before], [after] = plain["fra-gateway"]["deployments"], federated["fra-gateway"]["deployments"]
    assert {k: v for k, v in after.items() if k != "user_config"} == {
        k: v for k, v in before.items() if k != "user_config"
    }


def test_a_nation_without_a_federation_url_is_refused() -> None:
    with pytest.raises(ValueError, match="no federation URL for DEU"):
        applications(models=BOTH_NATIONS, federation_urls={"FRA": FEDERATION_URLS["FRA"]})


SIGNER = VaultSink(vault_addr="https://vault:8200", role="tenant-fra", token_file="/var/run/token")


def test_a_federated_gateway_gets_its_signer_and_the_peers_gateway_keys() -> None:
    [gateway, *_] = applications(models=BOTH_NATIONS, federation_urls=FEDERATION_URLS, federation=SIGNER)
    config = GatewayConfig.model_validate(gateway["deployments"][0]["user_config"])
    assert config.federation == SIGNER
    assert [t["status"]["federation"]["jwks"]["keys"][0]["kid"] for t in config.tenants] == [
        "deu-gateway",
        "fra-gateway",
    ]
    # One Ray cluster: no signer, no gateway keys, the same bytes as before federation existed.
    [local, *_] = applications(models=BOTH_NATIONS)
    assert "federation" not in json.dumps(local["deployments"][0]["user_config"])
    with pytest.raises(ValueError, match="kuberay"):
        applications(models=BOTH_NATIONS, federation=SIGNER)


def test_the_operator_passes_each_nations_serve_service_on_kuberay() -> None:
    from sovereign_operator.runtimes.kuberay import federation_urls

    assert federation_urls(["DEU", "FRA"]) == {
        "DEU": "http://deu-serving-serve-svc.tenant-deu.svc:8000/deu",
        "FRA": "http://fra-serving-serve-svc.tenant-fra.svc:8000/fra",
    }


def test_every_served_dataset_reaches_each_gateway_with_its_owners_federation_url() -> None:
    from sovereign.domain.markings import Markings
    from sovereign.serving_contract import RetrieverDataset

    reports = RetrieverDataset(
        name="reports",
        markings=Markings(owner="DEU", classification="NATO RESTRICTED", releasableTo=["FRA"]),
        embeddingApplication="deu-minilm",
    )
    urls = {"FRA": "http://fra-gw:8000/fra", "DEU": "http://deu-gw:8000/deu"}
    [gateway, *_] = applications(all_datasets={"DEU": [reports]}, federation_urls=urls)
    config = GatewayConfig.model_validate(gateway["deployments"][0]["user_config"])
    [dataset] = config.datasets
    assert dataset.name == "deu/reports" and dataset.markings == reports.markings
    assert dataset.federation_url == "http://deu-gw:8000/deu"  # another nation's: through its gateway
    [own] = GatewayConfig.model_validate(
        applications("DEU", all_datasets={"DEU": [reports]}, federation_urls=urls)[0]["deployments"][0][
            "user_config"
        ]
    ).datasets
    assert own.federation_url is None  # its own: through its own retriever


# --- The nation's retriever: where its replicas run ------------------------------------------------------


def retriever(**options: Any) -> dict[str, Any]:
    from sovereign_operator.builders.dataset import build_vault_sink_for_nation
    from sovereign_operator.builders.retriever_application import build_retriever_application

    from sovereign.domain.markings import Markings
    from sovereign.serving_contract import RetrieverDataset

    tenant = TenantSpec.model_validate(TENANTS["FRA"])
    reports = RetrieverDataset(
        name="reports",
        markings=Markings(owner="FRA", classification="NATO RESTRICTED"),
        embeddingApplication="fra-minilm",
    )
    vault = build_vault_sink_for_nation(tenant, platform_vault_addr="http://vault:8200", token_file="/t")
    return build_retriever_application(
        "FRA", [reports], BUNDLE, store_root="/var/lib/sovereign/datasets", vault=vault, **options
    )


@pytest.mark.parametrize(
    ("ray_resources", "expected"),
    [
        pytest.param(None, {"num_cpus": 0.1}, id="local-ray-anywhere"),
        pytest.param({}, {"num_cpus": 0.1}, id="empty-anywhere"),
        pytest.param(
            {"sovereign-data": 0.001},
            {"num_cpus": 0.1, "resources": {"sovereign-data": 0.001}},
            id="kuberay-on-the-data-volume",
        ),
    ],
)
def test_the_retriever_asks_for_custom_resources_only_when_given(
    ray_resources: dict[str, float] | None, expected: dict[str, Any]
) -> None:
    application = retriever(ray_resources=ray_resources)
    validated([application])
    [deployment] = application["deployments"]
    assert deployment["ray_actor_options"] == expected


def test_the_retriever_resources_change_only_its_actor_options() -> None:
    plain, placed = retriever(), retriever(ray_resources={"sovereign-data": 0.001})
    plain["deployments"][0].pop("ray_actor_options")
    placed["deployments"][0].pop("ray_actor_options")
    assert json.dumps(plain) == json.dumps(placed)


def test_on_kuberay_the_audit_writer_writes_on_the_nations_data_volume() -> None:
    from sovereign_operator.config import OperatorConfig
    from sovereign_operator.constants import SERVICE_ACCOUNT_TOKEN_FILE
    from sovereign_operator.reconcile.serving import audit_sink_for_tenant

    kuberay = OperatorConfig(vault_addr="http://vault:8200", runtime="kuberay", audit_dir="/operator/audit")
    no_api: Any = None  # the platform's Vault: its CA comes from VAULT_CACERT (none here), no Secret read
    sink = audit_sink_for_tenant(kuberay, tenant_object("FRA"), no_api)
    assert sink is not None
    assert (sink.directory, sink.ray_resource) == ("/var/lib/sovereign/audit", "sovereign-data")
    assert sink.token_file == SERVICE_ACCOUNT_TOKEN_FILE
