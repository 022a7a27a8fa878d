"""Attacks on the serving surface that need no Ray: an ingest job steered to another Ray cluster through
Ray's shared temporary directory, and who reaches which port of a nation's Ray cluster (its NetworkPolicy, as
data). The HTTP ones (Serve's `/-/routes`) are in tests/serving/e2e/test_serving_e2e.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sovereign_operator.builders import build_namespace_for_tenant, build_network_policy_for_tenant
from sovereign_operator.builders.dataset import build_ingest_config
from sovereign_serving.ingest import NoSubmittedCluster, submitted_cluster_address

from sovereign.serving_contract import VaultSink
from sovereign.specs.dataset import DataSetSpec
from sovereign.specs.model_deployment import ModelDeploymentSpec
from sovereign.specs.tenant import TenantSpec
from tests.operator.test_builders import NAME_LABEL, selected

# -- the ingest job attaches only to the cluster it was submitted to ---------------------------------------


@pytest.mark.parametrize(
    "environ",
    [{}, {"RAY_ADDRESS": ""}, {"RAY_ADDRESS": "auto"}, {"RAY_ADDRESS": "AUTO"}, {"RAY_ADDRESS": "local"}]
    + [{"RAY_ADDRESS": "http://127.0.0.1:8265"}, {"RAY_ADDRESS": "ray://10.0.0.9:10001"}]
    + [{"RAY_ADDRESS": "127.0.0.1"}, {"RAY_ADDRESS": ":6379"}, {"RAY_ADDRESS": "10.0.0.9:gcs"}],
    ids=[
        "unset",
        "empty",
        "auto",
        "AUTO",
        "local",
        "dashboard-url",
        "ray-client",
        "no-port",
        "no-host",
        "port",
    ],
)
def test_an_ingest_job_without_the_submitted_clusters_address_refuses(environ: dict[str, str]) -> None:
    with pytest.raises(NoSubmittedCluster, match="RAY_ADDRESS is"):
        submitted_cluster_address(environ)


@pytest.mark.parametrize(
    "address", ["127.0.0.1:61234", "fra-serving-head-svc.tenant-fra.svc:6379", "[::1]:6379"]
)
def test_the_address_ray_jobs_gives_the_entrypoint_is_used(address: str) -> None:
    assert submitted_cluster_address({"RAY_ADDRESS": address}) == address


@pytest.mark.process
def test_a_planted_ray_current_cluster_never_gets_the_job(tmp_path: Path) -> None:
    """An attacker writes `ray_current_cluster` in Ray's shared temporary directory, naming a cluster of its
    own (here a listening socket): the job, started without RAY_ADDRESS, refuses before reading a document
    and never connects there."""
    source = tmp_path / "sources" / "fra" / "reports"
    source.mkdir(parents=True)
    (source / "secret.txt").write_text("CANARY-PLANTED. Nothing here may reach another cluster.")
    config = build_ingest_config(
        "FRA",
        "reports",
        DataSetSpec.model_validate(
            {
                "source": str(source),
                "markings": {"classification": "NATO RESTRICTED"},
                "embedding": {"modelDeployment": "fra-embedder"},
            }
        ),
        ModelDeploymentSpec.model_validate(
            {
                "model": "embedder",
                "source": "/m",
                "sha256": {"a": "ab" * 32},
                "task": "embed",
                "resources": {"cpu": "1", "memory": "1Gi"},
                "markings": {"classification": "NATO UNCLASSIFIED"},
            }
        ),
        store_root=str(tmp_path / "stores"),
        source_root=str(tmp_path / "sources"),
        vault=VaultSink(vault_addr="https://127.0.0.1:1", role="tenant-fra", token_file=str(tmp_path / "t")),
    )
    with socket.socket() as attacker:
        attacker.bind(("127.0.0.1", 0))
        attacker.listen()
        attacker.setblocking(False)
        ray_temp = tmp_path / "tmp"
        (ray_temp / "ray").mkdir(parents=True)
        (ray_temp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{attacker.getsockname()[1]}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "sovereign_serving.ingest",
                "--config",
                config.model_dump_json(by_alias=True),
            ],
            env={**env, "RAY_TMPDIR": str(ray_temp)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        with pytest.raises(BlockingIOError):
            attacker.accept()  # nobody ever connected
    assert done.returncode == 1, done.stderr
    last = json.loads(done.stdout.strip().splitlines()[-1])
    assert last["dataset"] == "fra/reports"
    assert last["error"].startswith("NoSubmittedCluster: RAY_ADDRESS is unset")
    assert "CANARY" not in done.stdout + done.stderr
    assert not (tmp_path / "stores").exists()


# -- who reaches which port of a nation's Ray cluster ------------------------------------------------------

NETWORK = {"platform_namespace": "sovereign-system", "vault_namespace": "vault", "vault_port": 8200}
RAY_POD = {"sovereign.ai/nation": "FRA", "app.kubernetes.io/managed-by": "sovereign-operator"}
DEU_RAY_POD = {**RAY_POD, "sovereign.ai/nation": "DEU"}
OPERATOR_POD = {"app.kubernetes.io/name": "sovereign"}
GCS, DASHBOARD, RAY_CLIENT, SERVE, METRICS, WORKER = 6379, 8265, 10001, 8000, 8080, 10005


def namespace_labels(nation: str) -> dict[str, str]:
    spec = TenantSpec.model_validate({"nation": nation, "displayName": nation, "clearance": "NATO SECRET"})
    return build_namespace_for_tenant(spec)["metadata"]["labels"]


def reaches(ingress: list[dict[str, Any]], namespace: dict[str, str], pod: dict[str, str], port: int) -> bool:
    """Whether a pod (its namespace's labels and its own) gets through some ingress rule of FRA's policy on a
    TCP port: the NetworkPolicy semantics for namespaceSelector, podSelector (bare: FRA's own namespace)."""
    own = namespace.get(NAME_LABEL) == "tenant-fra"
    for rule in ingress:
        ports = rule.get("ports")
        if ports is not None and not any(p["protocol"] == "TCP" and p["port"] == port for p in ports):
            continue
        for peer in rule["from"]:
            if "namespaceSelector" in peer:
                if selected(peer["namespaceSelector"], namespace) and selected(
                    peer.get("podSelector", {}), pod
                ):
                    return True
            elif own and selected(peer["podSelector"], pod):
                return True
    return False


PLATFORM = {NAME_LABEL: "sovereign-system"}
ELSEWHERE = {NAME_LABEL: "default"}
REACH = [
    ("fra-own-pods-gcs", namespace_labels("FRA"), RAY_POD, GCS, True),
    ("fra-own-pods-workers", namespace_labels("FRA"), RAY_POD, WORKER, True),
    ("fra-own-pods-dashboard", namespace_labels("FRA"), RAY_POD, DASHBOARD, True),
    ("operator-dashboard", PLATFORM, OPERATOR_POD, DASHBOARD, True),
    ("operator-serve", PLATFORM, OPERATOR_POD, SERVE, True),
    ("operator-not-gcs", PLATFORM, OPERATOR_POD, GCS, False),
    ("operator-not-ray-client", PLATFORM, OPERATOR_POD, RAY_CLIENT, False),
    ("operator-not-metrics", PLATFORM, OPERATOR_POD, METRICS, False),
    ("operator-not-workers", PLATFORM, OPERATOR_POD, WORKER, False),
    ("deu-gateway-serve", namespace_labels("DEU"), DEU_RAY_POD, SERVE, True),
    ("deu-not-dashboard", namespace_labels("DEU"), DEU_RAY_POD, DASHBOARD, False),
    ("deu-not-gcs", namespace_labels("DEU"), DEU_RAY_POD, GCS, False),
    ("deu-not-ray-client", namespace_labels("DEU"), DEU_RAY_POD, RAY_CLIENT, False),
    ("elsewhere-not-dashboard", ELSEWHERE, {}, DASHBOARD, False),
    ("elsewhere-not-gcs", ELSEWHERE, {}, GCS, False),
    ("elsewhere-not-serve", ELSEWHERE, {}, SERVE, False),
]


@pytest.mark.parametrize(
    ("namespace", "pod", "port", "allowed"), [case[1:] for case in REACH], ids=[case[0] for case in REACH]
)
def test_only_the_operator_and_the_nations_own_pods_reach_its_ray_dashboard_and_gcs(
    namespace: dict[str, str], pod: dict[str, str], port: int, allowed: bool
) -> None:
    spec = TenantSpec.model_validate({"nation": "FRA", "displayName": "France", "clearance": "NATO SECRET"})
    ingress = build_network_policy_for_tenant(spec, **NETWORK)["spec"]["ingress"]
    assert reaches(ingress, namespace, pod, port) is allowed
