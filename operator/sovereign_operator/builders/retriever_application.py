"""A nation's retriever application: the DataSets it serves, searched behind the nation's policy.

No HTTP route: only its gateway and the owner's peers call it, through a Serve handle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sovereign.domain.nations import model_application_name, retriever_application_name
from sovereign.serving_contract import RETRIEVER_IMPORT_PATH, RetrieverConfig, RetrieverDataset, VaultSink
from sovereign.specs.dataset import DataSetSpec
from sovereign_operator.builders.serve_replicas import replica_runtime_env

RETRIEVER_DEPLOYMENT = "Retriever"
# A search is a policy decision per distinct marking, an embedding call and an exact scan of the allowed
# vectors: a tenth of a CPU reserved, like the gateway.
RETRIEVER_NUM_CPUS = 0.1


def retriever_datasets_for_nation(
    nation: str, datasets: Sequence[Mapping[str, Any]], embedding_models: Mapping[str, str]
) -> list[RetrieverDataset]:
    """The nation's DataSets a retriever serves (sorted by name): those whose status names an index version
    (ingested; Ready follows once the retriever and the gateways serve it) and whose spec parses.
    `datasets`: the nation's DataSet objects as the API returns them; `embedding_models`: ModelDeployment
    name → its `spec.model`, in the nation's namespace."""
    served = []
    for body in datasets:
        if (body.get("status") or {}).get("indexVersion") is None:
            continue
        try:
            spec = DataSetSpec.model_validate(body.get("spec") or {})
        except ValueError:
            continue
        model = embedding_models.get(spec.embedding.model_deployment)
        if model is None:
            continue
        served.append(
            RetrieverDataset(
                name=body["metadata"]["name"],
                markings=spec.markings.owned_by(nation),
                embedding_application=model_application_name(nation, model),
            )
        )
    return sorted(served, key=lambda dataset: dataset.name)


def build_retriever_application(
    nation: str,
    datasets: Sequence[RetrieverDataset],
    bundle_data: Mapping[str, str],
    *,
    store_root: str,
    vault: VaultSink,
    replicas: int = 1,
    telemetry_env: Mapping[str, str] | None = None,
    ray_resources: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The nation's retriever application: no HTTP route (only its gateway and the owner's peers call it,
    through a Serve handle); its `RetrieverConfig` as `user_config`, so a new dataset or bundle reaches the
    running replicas through `reconfigure`. `ray_resources`: custom Ray resources its replicas ask for, so
    that they run where `store_root` is (kuberay: `rayservice.data_ray_resources()`, the head, where the
    nation's data volume is mounted); none on a single-host Ray."""
    config = RetrieverConfig(
        nation=nation,
        datasets=list(datasets),
        store_root=store_root,
        vault=vault,
        bundle=dict(sorted(bundle_data.items())),
    )
    actor_options: dict[str, Any] = {"num_cpus": RETRIEVER_NUM_CPUS}
    if ray_resources:
        actor_options["resources"] = dict(sorted(ray_resources.items()))
    return {
        "name": retriever_application_name(nation),
        "route_prefix": None,
        "import_path": RETRIEVER_IMPORT_PATH,
        "runtime_env": replica_runtime_env(telemetry_env),
        "deployments": [
            {
                "name": RETRIEVER_DEPLOYMENT,
                "num_replicas": replicas,
                "ray_actor_options": actor_options,
                "user_config": config.model_dump(mode="json", by_alias=True),
            }
        ],
    }
