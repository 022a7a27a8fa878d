"""Faults of the platform under the serving path, on the devstack's `local-ray` runtime (a real Ray head, the
real operator, three nations): the Ray head killed and restarted, and the operator killed at failpoints of
the serving pass and of a dataset ingestion. Each test checks what a user would notice (the ModelDeployment's
Ready condition, a request through the gateway, the DataSet's index) and prints the recovery time it saw
(the numbers go to RELIABILITY.md; not asserted).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
import pytest
import yaml
from sovereign_devstack.processes import free_loopback_port, is_running, read_pid, start_service, stop_service
from sovereign_devstack.services import RAY_SERVICE, private_ray_temp_root, ray_head_spec
from sovereign_operator.failpoints import CRASH_EXIT_CODE

from sovereign.clients import ray as ray_client
from sovereign.domain.nations import gateway_application_name, retriever_application_name
from tests.helpers import kubectl, wait_until
from tests.operator.harness import STARTED_LOG, OperatorProcess, Platform, start_operator_process
from tests.operator.switchable_proxy import SwitchableProxy
from tests.serving.e2e.harness import CLEARANCES, LocalRay, Serving, serving_platform

pytestmark = [pytest.mark.faults, pytest.mark.slow]

CONVERGE_SECONDS = 240.0  # a model's Ray application restarts in this time on a loaded 2-core machine


@dataclasses.dataclass
class RayHead:
    """A local Ray head as `sovereign up` starts it, that a test can kill (SIGKILL, its whole process group)
    and start again on the same ports with the same token."""

    spec: Any
    state_dir: Path

    def kill(self) -> None:
        pid = read_pid(self.state_dir, RAY_SERVICE)
        assert pid is not None and is_running(pid)
        os.killpg(pid, signal.SIGKILL)
        wait_until(lambda: not is_running(pid), "the Ray head gone", timeout=30)

    def start(self) -> None:
        start_service(self.spec, self.state_dir, timeout=120.0)


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RayHead, LocalRay]]:
    state_dir = tmp_path_factory.mktemp("ray")
    dashboard_port, metrics_port, token = free_loopback_port(), free_loopback_port(), secrets.token_hex(32)
    temp_root = private_ray_temp_root()
    spec = ray_head_spec(
        dashboard_port, 2, token, home=state_dir / "ray-home", metrics_port=metrics_port, temp_root=temp_root
    )
    head = RayHead(spec, state_dir)
    try:
        head.start()
        local = LocalRay(
            f"http://127.0.0.1:{dashboard_port}",
            f"http://127.0.0.1:{free_loopback_port()}",
            token,
            f"http://127.0.0.1:{metrics_port}/metrics",
            state_dir,
        )
        yield head, local
    finally:
        stop_service(state_dir, RAY_SERVICE, timeout=5.0)
        shutil.rmtree(temp_root, ignore_errors=True)


@pytest.fixture(scope="module")
def local_ray(ray_head: tuple[RayHead, LocalRay]) -> LocalRay:
    return ray_head[1]


@pytest.fixture(scope="module")
def replacements() -> Iterator[list[OperatorProcess]]:
    """Operators a test started in place of the first: stopped after the nations are offboarded."""
    started: list[OperatorProcess] = []
    yield started
    for process in started:
        process.stop()
        print(f"--- {process.log_path}\n{process.log_text()[-6000:]}")


@pytest.fixture(scope="module")
def serving(
    platform: Platform,
    replacements: list[OperatorProcess],
    local_ray: LocalRay,
    dataset_dir: Path,
    source_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Serving]:
    env = {
        "SOVEREIGN_DATASET_DIR": str(dataset_dir),
        "SOVEREIGN_DATASET_SOURCE_ROOT": str(source_root),
        "SOVEREIGN_SERVICE_ACCOUNT_TOKEN_DIR": str(tmp_path_factory.mktemp("serviceaccount-tokens")),
        "SOVEREIGN_DATASET_POLL_SECONDS": "1",
        "SOVEREIGN_DATASET_RESYNC_SECONDS": "3600",  # one job per change: a second one would be a duplicate
    }
    with serving_platform(platform, local_ray, tmp_path_factory, env) as (operator, models, digests):
        served = Serving(platform, local_ray, operator, models, digests)
        served.apply_model(
            "fra-analyst", "fra", "analyst", "tiny-llama", maxTokens=8,
            markings={"classification": "NATO RESTRICTED", "releasableTo": ["DEU"]},
        )  # fmt: skip
        served.wait_condition("fra", "fra-analyst", "Ready", "True", timeout=CONVERGE_SECONDS)
        yield served


# -- helpers ---------------------------------------------------------------------------------------------


def _operators(serving: Serving, replacements: list[OperatorProcess]) -> list[OperatorProcess]:
    return [serving.operator, *replacements]


def _stop_running_operator(serving: Serving, replacements: list[OperatorProcess]) -> None:
    for process in _operators(serving, replacements):
        if process.returncode is None:
            process.stop()


def _start_operator(
    serving: Serving, replacements: list[OperatorProcess], directory: Path, **extra: str
) -> OperatorProcess:
    overrides = {**serving.operator.env, **extra}
    process = start_operator_process(serving.platform, directory, overrides)
    replacements.append(process)
    return process


def _crash_then_restart(
    serving: Serving, replacements: list[OperatorProcess], directory: Path, failpoint: str, change: Any
) -> float:
    """The running operator stopped, `change()` applied, and an operator armed at `failpoint` started: its
    first pass over the change reaches the point. Once it died there (exit 137), a plain operator started
    again. Returns the monotonic time of its restart."""
    _stop_running_operator(serving, replacements)
    change()
    crashing = _start_operator(serving, replacements, directory, SOVEREIGN_FAILPOINTS=failpoint)
    assert crashing.wait_exit(timeout=CONVERGE_SECONDS) == CRASH_EXIT_CODE, crashing.log_text()[-3000:]
    assert f"failpoint {failpoint}: exiting" in crashing.log_text()
    crashing.stop()  # its token projector
    restarted_at = time.monotonic()
    _start_operator(serving, replacements, directory).wait_for_log(STARTED_LOG, timeout=60)
    return restarted_at


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return {c["type"]: c for c in status.get("conditions") or []}.get(kind) or {}


def _serve_applications(serving: Serving) -> dict[str, tuple[str, str]]:
    return ray_client.application_states(
        ray_client.get_serve_status(serving.ray.dashboard_url, token=serving.ray.token)
    )


def _expected_applications(serving: Serving) -> set[str]:
    """Every application the ModelDeployments and Tenants call for: each nation's gateway, each served model,
    each retriever of a nation with a DataSet."""
    expected = {gateway_application_name(nation) for nation in CLEARANCES}
    for kind in ("modeldeployments", "datasets"):
        listed = kubectl(serving.platform.kube, "get", kind, "-A", "-o=json").stdout
        for item in json.loads(listed)["items"]:
            nation = item["metadata"]["namespace"].removeprefix("tenant-")
            if kind == "modeldeployments":
                expected.add(f"{nation}-{item['spec']['model']}")
            else:
                expected.add(retriever_application_name(nation))
    return expected


def _assert_nothing_orphaned(serving: Serving) -> None:
    """No Ray application without what calls for it, none missing, and every one RUNNING."""
    expected = _expected_applications(serving)

    def converged() -> dict[str, tuple[str, str]] | None:
        states = _serve_applications(serving)
        running = set(states) == expected and all(status == "RUNNING" for status, _ in states.values())
        return states if running else None

    try:
        wait_until(converged, "Ray's applications exactly those called for", timeout=CONVERGE_SECONDS)
    except AssertionError:
        raise AssertionError(f"expected {sorted(expected)}, Ray has {_serve_applications(serving)}") from None


def _ask(serving: Serving, model: str = "fra/analyst") -> str:
    fra = openai.OpenAI(
        base_url=serving.endpoint("fra"),
        api_key=serving.token("FRA", CLEARANCES["fra"]),
        max_retries=0,
        timeout=60,
    )
    answer = fra.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Status report?"}], max_tokens=4, temperature=0
    )
    return answer.choices[0].message.content or ""


def _ready_status(serving: Serving, nation: str, name: str) -> str:
    return str(_condition(serving.model_status(nation, name), "Ready").get("status"))


# -- the Ray head ----------------------------------------------------------------------------------------


def test_the_ray_head_killed_and_restarted_is_redeployed_and_reported_meanwhile(
    serving: Serving, ray_head: tuple[RayHead, LocalRay]
) -> None:
    head, _ = ray_head
    _ask(serving)
    killed_at = time.monotonic()
    head.kill()

    # Meanwhile: a request fails at once (no hang) and the ModelDeployment says why it is not Ready.
    with pytest.raises((openai.APIConnectionError, openai.APIStatusError)):
        _ask(serving)
    status = wait_until(
        lambda: (
            (s := serving.model_status("fra", "fra-analyst"))
            and _condition(s, "Ready").get("reason") == "RuntimeUnavailable"
            and s
        ),
        "fra-analyst reported RuntimeUnavailable",
        timeout=60,
    )
    reported = time.monotonic() - killed_at
    assert _condition(status, "Ready")["status"] == "False"
    assert "local-ray" in _condition(status, "Ready")["message"]

    restarted_at = time.monotonic()
    head.start()
    head_up = time.monotonic() - restarted_at
    # The operator puts every nation's applications back without anyone applying anything.
    serving.wait_condition("fra", "fra-analyst", "Ready", "True", timeout=CONVERGE_SECONDS)
    ready = time.monotonic() - restarted_at
    _assert_nothing_orphaned(serving)
    answered = wait_until(lambda: _answers(serving), "a request answered", timeout=60)
    recovered = time.monotonic() - restarted_at
    assert answered
    print(
        f"\nRay head killed: Ready=False (RuntimeUnavailable) after {reported:.1f} s; restarted head up in "
        f"{head_up:.1f} s; fra-analyst Ready {ready:.1f} s and a request answered {recovered:.1f} s after "
        "the restart"
    )


def _answers(serving: Serving) -> bool:
    try:
        _ask(serving)
    except (openai.APIConnectionError, openai.APIStatusError):
        return False
    return True


# -- the operator killed in the serving pass ------------------------------------------------------------

SERVING_FAILPOINTS = ["serving:before-put", "serving:after-put", "serving:after-first-status"]


@pytest.mark.parametrize("failpoint", SERVING_FAILPOINTS)
def test_the_operator_killed_in_the_serving_pass_converges_with_nothing_orphaned(
    serving: Serving, replacements: list[OperatorProcess], tmp_path: Path, failpoint: str
) -> None:
    """The operator dies while deploying a new model; while it is down that model is deleted and another one
    applied. Restarted, it removes the deleted one's application and serves the new one."""
    doomed, kept = f"pol-doomed-{failpoint.rsplit(':', 1)[1]}", "pol-kept"

    def apply_doomed() -> None:
        serving.apply_model(
            doomed, "pol", doomed.removeprefix("pol-"), "tiny-llama", maxTokens=4,
            markings={"classification": "NATO UNCLASSIFIED"},
        )  # fmt: skip

    restarted_at = _crash_then_restart(serving, replacements, tmp_path, failpoint, apply_doomed)
    kubectl(serving.platform.kube, "delete", "modeldeployment", doomed, "-n", "tenant-pol")
    serving.apply_model(
        kept, "pol", "kept", "tiny-llama", maxTokens=4, markings={"classification": "NATO UNCLASSIFIED"}
    )
    serving.wait_condition("pol", kept, "Ready", "True", timeout=CONVERGE_SECONDS)
    _assert_nothing_orphaned(serving)
    assert _ready_status(serving, "fra", "fra-analyst") == "True"
    converged = time.monotonic() - restarted_at
    assert _answers(serving)
    print(f"\noperator killed at {failpoint}: converged {converged:.1f} s after its restart")
    kubectl(serving.platform.kube, "delete", "modeldeployment", kept, "-n", "tenant-pol")


# -- the operator killed in a dataset ingestion ---------------------------------------------------------


def _ingest_jobs(serving: Serving, name: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{serving.ray.dashboard_url}/api/jobs/",
        headers={"Authorization": f"Bearer {serving.ray.token}"},
        timeout=10,
    )
    response.raise_for_status()
    return [job for job in response.json() if str(job.get("submission_id")).startswith(f"ingest-deu-{name}-")]


@pytest.mark.parametrize("failpoint", ["dataset:before-submit", "dataset:after-submit"])
def test_the_operator_killed_in_a_dataset_ingestion_converges_with_one_job_and_one_index(
    serving: Serving,
    replacements: list[OperatorProcess],
    tmp_path: Path,
    source_root: Path,
    dataset_dir: Path,
    failpoint: str,
) -> None:
    name = f"reports-{failpoint.rsplit(':', 1)[1]}"
    source = source_root / "deu" / name
    source.mkdir(parents=True)
    (source / "summary.md").write_text("# Summary\nThe convoy reached the depot before dawn.")
    serving.apply_model(
        "deu-embedder", "deu", "embedder", "minilm", task="embed",
        markings={"classification": "NATO UNCLASSIFIED"},
    )  # fmt: skip
    serving.wait_condition("deu", "deu-embedder", "Ready", "True", timeout=CONVERGE_SECONDS)
    manifest = {
        "apiVersion": "sovereign.ai/v1alpha1",
        "kind": "DataSet",
        "metadata": {"name": name, "namespace": "tenant-deu"},
        "spec": {
            "source": str(source),
            "markings": {"classification": "NATO RESTRICTED"},
            "embedding": {"modelDeployment": "deu-embedder", "chunkSize": 200, "chunkOverlap": 20},
        },
    }

    def apply_dataset() -> None:
        kubectl(serving.platform.kube, "apply", "-f", "-", input=yaml.safe_dump(manifest))

    restarted_at = _crash_then_restart(serving, replacements, tmp_path, failpoint, apply_dataset)

    def ingested() -> dict[str, Any] | None:
        out = kubectl(serving.platform.kube, "get", "dataset", name, "-n", "tenant-deu", "-o=json").stdout
        status = json.loads(out).get("status") or {}
        ready = _condition(status, "Ready").get("status") == "True"
        return status if ready and status.get("indexVersion") == 1 and not status.get("job") else None

    status = wait_until(
        ingested, f"{name} ingested after the restart", timeout=CONVERGE_SECONDS, interval=0.5
    )
    converged = time.monotonic() - restarted_at
    assert _condition(status, "Ingested").get("status") == "True", status
    jobs = _ingest_jobs(serving, name)
    assert len(jobs) == 1 and jobs[0]["status"] == "SUCCEEDED", jobs  # never a second job beside the first
    directory = dataset_dir / "deu" / name
    versions = sorted(p.name for p in (directory / "versions").iterdir())
    assert versions == ["1"], versions  # one whole index version, no temporary left
    assert (directory / "CURRENT").read_text().strip() == "1"
    _assert_nothing_orphaned(serving)
    print(f"\noperator killed at {failpoint}: {name} ingested {converged:.1f} s after its restart")
    kubectl(serving.platform.kube, "delete", "dataset", name, "-n", "tenant-deu")


@pytest.fixture(autouse=True)
def _no_test_leaves_the_operator_down(
    serving: Serving, replacements: list[OperatorProcess]
) -> Iterator[None]:
    yield
    if all(process.returncode is not None for process in _operators(serving, replacements)):
        with contextlib.suppress(Exception):
            _start_operator(serving, replacements, Path(tempfile.mkdtemp(prefix="op-"))).wait_for_log(
                STARTED_LOG, timeout=60
            )


# -- the Kubernetes API unreachable ----------------------------------------------------------------------

# A minute by default; shorter where the run is pressed for time (the behaviour is the same).
KUBE_OUTAGE_SECONDS = float(os.environ.get("SOVEREIGN_FAULTS_KUBE_OUTAGE_SECONDS", "60"))


def test_the_kubernetes_api_unreachable_serving_continues_and_the_operator_resumes(
    serving: Serving, replacements: list[OperatorProcess], tmp_path: Path
) -> None:
    """The operator reaches the API server through a proxy the test closes for a minute. Serving goes on
    meanwhile (the gateways and models need no API call to answer); once it opens again the operator, or
    the one its supervisor restarts, reconciles a change applied after the outage."""
    target = urlsplit(serving.platform.kube.url)
    proxy = SwitchableProxy(target.hostname or "127.0.0.1", target.port or 443, target.scheme)
    try:
        proxy.open()
        kubeconfig = yaml.safe_load(Path(serving.operator.env["KUBECONFIG"]).read_text())
        for cluster in kubeconfig["clusters"]:
            cluster["cluster"]["server"] = proxy.url
        proxied = tmp_path / "kubeconfig"
        proxied.write_text(yaml.safe_dump(kubeconfig))
        _stop_running_operator(serving, replacements)
        operator = _start_operator(serving, replacements, tmp_path / "operator", KUBECONFIG=str(proxied))
        operator.wait_for_log(STARTED_LOG, timeout=60)
        serving.wait_condition("fra", "fra-analyst", "Ready", "True", timeout=CONVERGE_SECONDS)
        fra = openai.OpenAI(
            base_url=serving.endpoint("fra"),
            api_key=serving.token("FRA", CLEARANCES["fra"]),
            max_retries=0,
            timeout=30,
        )

        proxy.close()
        closed_at, answered = time.monotonic(), 0
        while time.monotonic() < closed_at + KUBE_OUTAGE_SECONDS:
            answer = fra.chat.completions.create(
                model="fra/analyst", messages=[{"role": "user", "content": "Status?"}], max_tokens=4
            )
            assert answer.choices[0].message.role == "assistant"
            answered += 1
            time.sleep(2)
        exited = operator.returncode
        proxy.open()
        reopened_at = time.monotonic()
        if exited is not None:  # it gave up its Lease: its supervisor (a Deployment) starts another
            assert exited == 1, operator.log_text()[-3000:]
            operator.stop()
            operator = _start_operator(serving, replacements, tmp_path / "operator", KUBECONFIG=str(proxied))
            operator.wait_for_log(STARTED_LOG, timeout=60)

        serving.apply_model(
            "pol-late",
            "pol",
            "late",
            "tiny-llama",
            maxTokens=4,
            markings={"classification": "NATO UNCLASSIFIED"},
        )
        serving.wait_condition("pol", "pol-late", "Ready", "True", timeout=CONVERGE_SECONDS)
        resumed = time.monotonic() - reopened_at
        _assert_nothing_orphaned(serving)
        fate = "kept running" if exited is None else "exited (Lease lost, code 1) and was restarted"
        print(
            f"\nKubernetes API unreachable for {KUBE_OUTAGE_SECONDS:.0f} s: {answered} requests answered "
            f"meanwhile, none failed; the operator {fate}; a change after the outage Ready {resumed:.1f} s "
            "after the API came back"
        )
        kubectl(serving.platform.kube, "delete", "modeldeployment", "pol-late", "-n", "tenant-pol")
    finally:
        _stop_running_operator(serving, replacements)
        proxy.shutdown()
        _start_operator(serving, replacements, tmp_path / "plain").wait_for_log(STARTED_LOG, timeout=60)
