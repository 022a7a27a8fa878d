"""From `kubectl apply` to an answered request, with the official `openai` client on each nation's endpoint.

FRA serves `fra/analyst` (NATO RESTRICTED, releasable to DEU); DEU serves `deu/embedder` (MiniLM, DEU only);
FRA also applies a model whose weights were tampered with. POL has a Tenant but no release.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from sovereign_devstack.processes import read_pid
from sovereign_devstack.services import RAY_SERVICE

from sovereign.clients import ray
from tests.helpers import kubectl, wait_until
from tests.serving.e2e.harness import Serving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def deployed(serving: Serving) -> Iterator[Serving]:
    tampered = dict(serving.digests["tiny-llama"])
    tampered["model.safetensors"] = "f" * 64
    serving.digests["tampered"] = tampered
    (serving.models / "tampered").symlink_to(serving.models / "tiny-llama")
    serving.apply_model(
        "fra-tampered", "fra", "tampered", "tampered", markings={"classification": "NATO UNCLASSIFIED"}
    )
    serving.apply_analyst_and_embedder()
    yield serving


def client(serving: Serving, nation: str, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=serving.endpoint(nation), api_key=token, max_retries=0, timeout=60)


def test_a_ready_model_shows_its_endpoint_and_verified_weights(deployed: Serving) -> None:
    status = deployed.model_status("fra", "fra-analyst")
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Admitted": "True", "IntegrityVerified": "True", "Ready": "True"}
    assert status["endpoint"] == deployed.endpoint("fra")
    assert status["rayApplicationStatus"] == "RUNNING"
    table = kubectl(deployed.platform.kube, "get", "modeldeployments", "-n", "tenant-fra").stdout
    assert "analyst" in table and "NATO RESTRICTED" in table and deployed.endpoint("fra") in table


def test_tampered_weights_never_serve_and_the_status_names_the_file(deployed: Serving) -> None:
    status = deployed.wait_condition("fra", "fra-tampered", "IntegrityVerified", "False")
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "IntegrityCheckFailed"
    assert "model.safetensors" in ready["message"]
    token = deployed.token("FRA", "NATO SECRET")
    with pytest.raises(openai.APIStatusError) as refused:
        client(deployed, "fra", token).chat.completions.create(
            model="fra/tampered", messages=[{"role": "user", "content": "hello"}]
        )
    assert refused.value.status_code in (502, 503)


def test_each_nation_lists_only_the_models_its_user_may_use(deployed: Serving) -> None:
    deu = client(deployed, "deu", deployed.token("DEU", "NATO CONFIDENTIAL"))
    assert {m.id for m in deu.models.list()} == {"fra/analyst", "deu/embedder"}
    pol = client(deployed, "pol", deployed.token("POL", "NATO SECRET"))
    assert {m.id for m in pol.models.list()} == set()
    fra = client(deployed, "fra", deployed.token("FRA", "NATO SECRET"))
    assert "fra/analyst" in {m.id for m in fra.models.list()} and "deu/embedder" not in {
        m.id for m in fra.models.list()
    }


def test_a_deu_user_uses_a_fra_model_released_to_deu_with_the_marking(deployed: Serving) -> None:
    deu = client(deployed, "deu", deployed.token("DEU", "NATO CONFIDENTIAL"))
    raw = deu.chat.completions.with_raw_response.create(
        model="fra/analyst",
        messages=[{"role": "user", "content": "Status report?"}],
        max_tokens=8,
        temperature=0,
    )
    answer = raw.parse()
    assert answer.choices[0].message.role == "assistant"
    assert 0 < answer.usage.completion_tokens <= 8
    assert raw.headers["X-Sovereign-Classification"] == "NATO RESTRICTED"
    assert raw.headers["X-Sovereign-Releasable-To"] == "DEU,FRA"


def test_streaming_joins_to_the_same_answer(deployed: Serving) -> None:
    deu = client(deployed, "deu", deployed.token("DEU", "NATO CONFIDENTIAL"))
    request = {
        "model": "fra/analyst",
        "messages": [{"role": "user", "content": "Status report?"}],
        "max_tokens": 8,
        "temperature": 0,
    }
    whole = deu.chat.completions.create(**request).choices[0].message.content
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in deu.chat.completions.create(**request, stream=True)
        if chunk.choices
    )
    assert streamed == whole


def test_embeddings_from_the_nations_own_model(deployed: Serving) -> None:
    deu = client(deployed, "deu", deployed.token("DEU", "NATO CONFIDENTIAL"))
    result = deu.embeddings.create(model="deu/embedder", input=["field report", "weather"])
    assert [len(item.embedding) for item in result.data] == [384, 384]


def test_an_embedding_input_beyond_the_models_positions_is_400_naming_input(deployed: Serving) -> None:
    """MiniLM has 512 positions: a longer input is refused whole, never embedded truncated."""
    deu = client(deployed, "deu", deployed.token("DEU", "NATO CONFIDENTIAL"))
    with pytest.raises(openai.BadRequestError) as refused:
        deu.embeddings.create(model="deu/embedder", input=["field report", "word " * 600])
    error = refused.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"]) == ("context_length_exceeded", "input")
    assert "512" in error["message"] and "input[1]" in error["message"]


def test_a_user_without_release_is_refused_as_if_the_model_did_not_exist(deployed: Serving) -> None:
    pol = client(deployed, "pol", deployed.token("POL", "NATO SECRET"))
    messages = [{"role": "user", "content": "hello"}]
    with pytest.raises(openai.PermissionDeniedError) as forbidden:
        pol.chat.completions.create(model="fra/analyst", messages=messages)
    with pytest.raises(openai.PermissionDeniedError) as unknown:
        pol.chat.completions.create(model="fra/no-such-model", messages=messages)
    assert forbidden.value.message.replace("fra/analyst", "X") == unknown.value.message.replace(
        "fra/no-such-model", "X"
    )


def test_another_nations_valid_token_is_refused_on_this_endpoint(deployed: Serving) -> None:
    deu_token = deployed.token("DEU", "NATO CONFIDENTIAL")
    with pytest.raises(openai.AuthenticationError):
        client(deployed, "fra", deu_token).models.list()


def test_a_suspended_nation_is_refused_on_its_endpoint_and_served_again_after(deployed: Serving) -> None:
    """`spec.suspended: true` reaches DEU's gateway through the operator (Tenant event → Serve config →
    `reconfigure`): its users' requests are refused (403), then served again once it is lifted. The time it
    takes is measured by `bench/control_plane.py --suspension` (BENCHMARKS.md), not asserted here."""
    deu = client(deployed, "deu", deployed.token("DEU", "NATO CONFIDENTIAL"))

    def refused() -> bool:
        try:
            deu.embeddings.create(model="deu/embedder", input=["field report"])
        except openai.PermissionDeniedError:
            return True
        return False

    assert not refused()
    suspend = ["patch", "tenant", "deu", "--type", "merge", "-p"]
    kubectl(deployed.platform.kube, *suspend, '{"spec": {"suspended": true}}')
    try:
        wait_until(refused, "DEU's users refused once DEU is suspended")
    finally:
        kubectl(deployed.platform.kube, *suspend, '{"spec": {"suspended": false}}')
    wait_until(lambda: not refused(), "DEU's users served again")


def replica_ids(serving: Serving, application: str) -> set[str]:
    status = ray.get_serve_status(serving.ray.dashboard_url, token=serving.ray.token)
    deployments = (status["applications"].get(application) or {}).get("deployments") or {}
    return {
        replica["replica_id"]
        for deployment in deployments.values()
        for replica in deployment.get("replicas") or []
        if replica.get("state") == "RUNNING"
    }


def test_adding_a_model_or_replicas_leaves_the_other_applications_running(deployed: Serving) -> None:
    analyst, embedder = replica_ids(deployed, "fra-analyst"), replica_ids(deployed, "deu-embedder")
    assert len(analyst) == 1 and len(embedder) == 1
    deployed.apply_model(
        "deu-assistant", "deu", "assistant", "tiny-llama", markings={"classification": "NATO UNCLASSIFIED"}
    )
    deployed.wait_condition("deu", "deu-assistant", "Ready", "True")
    assert (
        replica_ids(deployed, "fra-analyst") == analyst and replica_ids(deployed, "deu-embedder") == embedder
    )
    kubectl(
        deployed.platform.kube,
        "patch",
        "modeldeployment",
        "deu-assistant",
        "-n",
        "tenant-deu",
        "--type=merge",
        "-p",
        '{"spec": {"replicas": 2}}',
    )
    wait_until(
        lambda: len(replica_ids(deployed, "deu-assistant")) == 2, "deu-assistant at 2 replicas", timeout=120
    )
    assert (
        replica_ids(deployed, "fra-analyst") == analyst and replica_ids(deployed, "deu-embedder") == embedder
    )


def test_deleting_a_model_removes_its_application_only(deployed: Serving) -> None:
    kubectl(deployed.platform.kube, "delete", "modeldeployment", "fra-tampered", "-n", "tenant-fra")

    def applications() -> set[str]:
        status = ray.get_serve_status(deployed.ray.dashboard_url, token=deployed.ray.token)
        return set(ray.application_states(status))

    wait_until(
        lambda: "fra-tampered" not in applications(), "fra-tampered removed from Ray Serve", timeout=60
    )
    assert {"fra-analyst", "deu-embedder", "fra-gateway", "deu-gateway", "pol-gateway"} <= applications()
    assert httpx.get(f"{deployed.endpoint('deu')}/models", timeout=10).status_code == 401  # still serving


def listening_sockets_of_session(leader: int) -> dict[tuple[str, int], str]:
    """(address, port) → process name of every TCP socket listening in `leader`'s session (/proc)."""
    sid = os.getsid(leader)
    owners: dict[str, str] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getsid(int(pid)) != sid:
                continue
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    owners[link[8:-1]] = name
        except OSError:  # a process that ended meanwhile
            continue
    found = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in owners:  # 0A: LISTEN
                continue
            hex_address, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_address)
            packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # host-order words
            found[(socket.inet_ntop(family, packed), int(hex_port, 16))] = owners[fields[9]]
    return found


def test_ray_listens_on_loopback_only(deployed: Serving) -> None:
    head = read_pid(deployed.ray.state_dir, RAY_SERVICE)
    assert head is not None
    sockets = listening_sockets_of_session(head)
    serve_port = int(deployed.ray.gateway_url.rsplit(":", 1)[1])
    assert any(port == serve_port for _, port in sockets), sockets  # the Serve proxy is a worker: seen
    assert {"gcs_server", "raylet"} <= set(sockets.values()), sockets
    loopback = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
    assert {key: name for key, name in sockets.items() if key[0] not in loopback} == {}


def test_the_serve_proxy_lists_no_routes_to_anyone(deployed: Serving) -> None:
    """Ray Serve's `/-/routes` would list every nation's gateway to whoever reaches the proxy, without a
    token: the proxy callback (`sovereign_serving.serve_proxy`) answers 404 there, as for a path that is not
    served; the gateways are untouched."""
    with httpx.Client(base_url=deployed.ray.gateway_url, timeout=10) as proxy:
        for path in ("/-/routes", "/-/routes?format=json"):
            listed = proxy.get(path)
            assert listed.status_code == 404, listed.text
            assert "/fra" not in listed.text and "gateway" not in listed.text
        assert proxy.get("/fra/v1/models").status_code == 401  # the gateways behind it answer as before


def test_rays_temporary_directory_is_this_users_only(deployed: Serving) -> None:
    """Ray's job supervisor gives a job's entrypoint the cluster named in `ray_current_cluster` of Ray's
    temporary directory: the devstack's Ray keeps it in a directory of its user's only, never in the shared
    `/tmp/ray` where any local user could name a cluster of their own."""
    head = read_pid(deployed.ray.state_dir, RAY_SERVICE)
    assert head is not None
    environ = dict(
        entry.split("=", 1) for entry in Path(f"/proc/{head}/environ").read_text().split("\0") if "=" in entry
    )
    root = Path(environ["RAY_TMPDIR"])
    assert root != Path("/tmp") and (root.stat().st_mode & 0o777, root.stat().st_uid) == (0o700, os.getuid())
    assert (root / "ray" / "ray_current_cluster").read_text().startswith("127.0.0.1:")
