"""The Kubernetes API emulator keeps its objects in its data dir, as etcd does for a real cluster.

Each test starts the real API server process on a data dir, writes with kubectl, stops it (SIGTERM, or
kill -9 as a crash would) and starts it again on the same dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sovereign_devstack.kube.persistence import DataDir
from sovereign_devstack.kube.store import Store
from sovereign_devstack.pki import CertificateAuthority
from sovereign_devstack.processes import ServiceStartError, free_loopback_port, is_running, read_pid
from sovereign_devstack.services import KUBE_SERVICE

from tests.devstack.test_kopf_on_devstack import OPERATOR, PROBE_CRD
from tests.helpers import kubectl, wait_until
from tests.servers import KubeAPI, running_kube_api

pytestmark = pytest.mark.process  # each test starts API servers of its own


def _probe(name: str, message: str) -> str:
    return f"apiVersion: devstack.test/v1\nkind: Probe\nmetadata: {{name: {name}, namespace: kept}}\n" + (
        f"spec: {{message: {message}}}\n"
    )


@contextlib.contextmanager
def api_server(state_dir: Path, ca: CertificateAuthority, port: int | None = None) -> Iterator[KubeAPI]:
    """The real API server process (as the kube_api fixture starts it) on `state_dir`/kube-data; SIGTERM
    when the block ends."""
    with running_kube_api(state_dir, ca, port, data_dir=data_dir_of(state_dir)) as kube_api:
        yield kube_api


def data_dir_of(state_dir: Path) -> Path:
    return state_dir / "kube-data"


def kill_hard(state_dir: Path) -> None:
    """kill -9, as a crash or an OOM kill would: no shutdown code runs."""
    pid = read_pid(state_dir, KUBE_SERVICE)
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: not is_running(pid), "the killed API server is gone")


def get_json(kube_api: KubeAPI, *args: str) -> dict:
    return json.loads(kubectl(kube_api, "get", *args, "-o", "json").stdout)


def create_objects(kube_api: KubeAPI) -> dict[str, dict]:
    """A namespace, a CRD and its custom resource, ConfigMaps (one deleted again); their metadata."""
    kubectl(kube_api, "create", "namespace", "kept")
    kubectl(kube_api, "apply", "-f", "-", input=PROBE_CRD)
    wait_until(lambda: kubectl(kube_api, "get", "probes", check=False).returncode == 0, "probes served")
    kubectl(kube_api, "apply", "-f", "-", input=_probe("first", "before"))
    kubectl(kube_api, "create", "configmap", "settings", "-n", "kept", "--from-literal=colour=blue")
    kubectl(kube_api, "create", "configmap", "doomed", "-n", "kept")
    kubectl(kube_api, "delete", "configmap", "doomed", "-n", "kept")
    return snapshot(kube_api)


def configmaps_list_rv(kube_api: KubeAPI) -> str:
    """The server's list resourceVersion (`kubectl get -o json` makes its own List, without one)."""
    raw = kubectl(kube_api, "get", "--raw", "/api/v1/namespaces/kept/configmaps").stdout
    return str(json.loads(raw)["metadata"]["resourceVersion"])


def probe_status(kube_api: KubeAPI, name: str) -> dict:
    return get_json(kube_api, "probe", name, "-n", "kept").get("status", {})


def snapshot(kube_api: KubeAPI) -> dict[str, dict]:
    return {
        "namespace": get_json(kube_api, "namespace", "kept")["metadata"],
        "default": get_json(kube_api, "namespace", "default")["metadata"],
        "crd": get_json(kube_api, "crd", "probes.devstack.test")["metadata"],
        "probe": get_json(kube_api, "probe", "first", "-n", "kept")["metadata"],
        "configmap": get_json(kube_api, "configmap", "settings", "-n", "kept")["metadata"],
    }


@pytest.mark.parametrize("stop", ["sigterm", "kill-9"])
def test_objects_come_back_after_a_restart_on_the_same_data_dir(
    tmp_path: Path, stop: str, devstack_ca: CertificateAuthority
) -> None:
    with api_server(tmp_path, devstack_ca) as kube_api:
        before = create_objects(kube_api)
        list_rv = configmaps_list_rv(kube_api)
        if stop == "kill-9":
            kill_hard(tmp_path)

    with api_server(tmp_path, devstack_ca) as kube_api:
        after = snapshot(kube_api)
        for name, meta in before.items():
            assert after[name]["uid"] == meta["uid"], name
            assert after[name]["resourceVersion"] == meta["resourceVersion"], name
        settings = get_json(kube_api, "configmap", "settings", "-n", "kept")
        assert settings["data"] == {"colour": "blue"}
        gone = kubectl(kube_api, "get", "configmap", "doomed", "-n", "kept", check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr
        # The CRD is served again: its custom resources can be read and written.
        assert get_json(kube_api, "probes", "-n", "kept")["items"][0]["spec"] == {"message": "before"}
        kubectl(kube_api, "apply", "-f", "-", input=_probe("second", "after"))
        # resourceVersions keep growing from where the cluster was.
        second = get_json(kube_api, "probe", "second", "-n", "kept")["metadata"]
        assert int(second["resourceVersion"]) > int(list_rv)
        assert second["uid"] not in {meta["uid"] for meta in before.values()}


def test_a_watch_from_before_the_restart_is_told_to_relist(
    tmp_path: Path, devstack_ca: CertificateAuthority
) -> None:
    # k8s docs: /docs/reference/using-api/api-concepts/#efficient-detection-of-changes (410 Gone: relist)
    with api_server(tmp_path, devstack_ca) as kube_api:
        kubectl(kube_api, "create", "namespace", "kept")
        kubectl(kube_api, "create", "configmap", "old", "-n", "kept")
        old_rv = configmaps_list_rv(kube_api)
        kubectl(kube_api, "create", "configmap", "newer", "-n", "kept")

    with api_server(tmp_path, devstack_ca) as kube_api:
        path = f"/api/v1/namespaces/kept/configmaps?watch=true&timeoutSeconds=1&resourceVersion={old_rv}"
        (event,) = [json.loads(line) for line in kubectl(kube_api, "get", "--raw", path).stdout.splitlines()]
        assert event["type"] == "ERROR"
        assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
        # A watch from a resourceVersion of the restarted server resumes: it sees the next change.
        list_rv = configmaps_list_rv(kube_api)
        kubectl(kube_api, "create", "configmap", "newest", "-n", "kept")
        path = f"/api/v1/namespaces/kept/configmaps?watch=true&timeoutSeconds=1&resourceVersion={list_rv}"
        events = [json.loads(line) for line in kubectl(kube_api, "get", "--raw", path).stdout.splitlines()]
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "newest")]


@contextlib.contextmanager
def kopf_operator(kube_api: KubeAPI, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The status-echo kopf operator as a real process; it outlives the API server restarts in the block."""
    with log.open("wb") as out:
        operator = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", str(OPERATOR)],
            env=kube_api.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield operator
    finally:
        operator.terminate()
        try:
            operator.wait(timeout=15)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
        if operator.returncode not in (0, -15):
            print(log.read_text())  # shown by pytest on failure


@pytest.mark.faults  # `make faults`: kept out of `make test` for its time
def test_kopf_relists_after_the_api_server_restarts_with_changes_it_missed(
    tmp_path: Path, devstack_ca: CertificateAuthority
) -> None:
    port = free_loopback_port()
    with contextlib.ExitStack() as first_server:
        kube_api = first_server.enter_context(api_server(tmp_path, devstack_ca, port))
        kubectl(kube_api, "create", "namespace", "kept")
        kubectl(kube_api, "apply", "-f", "-", input=PROBE_CRD)
        wait_until(lambda: kubectl(kube_api, "get", "probes", check=False).returncode == 0, "probes served")
        with kopf_operator(kube_api, tmp_path / "kopf.log") as operator:
            kubectl(kube_api, "apply", "-f", "-", input=_probe("seen", "zero"))
            wait_until(lambda: probe_status(kube_api, "seen").get("answer"), "kopf answered", timeout=60)
            first_server.close()  # SIGTERM: kopf loses its API server
            # Meanwhile the same data dir is served elsewhere (another port, kubeconfig) and changed, so
            # kopf's watch will resume from a resourceVersion older than the restarted server's history.
            with running_kube_api(
                tmp_path / "elsewhere", devstack_ca, data_dir=data_dir_of(tmp_path)
            ) as elsewhere:
                kubectl(elsewhere, "apply", "-f", "-", input=_probe("missed", "one"))
            with api_server(tmp_path, devstack_ca, port) as kube_api:
                answer = wait_until(
                    lambda: probe_status(kube_api, "missed").get("answer"),
                    "kopf answered the probe created while it was disconnected",
                    timeout=60,
                )
                assert answer == {"echo": "missed:one"}
                kill_hard(tmp_path)
            with api_server(tmp_path, devstack_ca, port) as kube_api:
                kubectl(kube_api, "apply", "-f", "-", input=_probe("missed", "two"))
                last = wait_until(
                    lambda: probe_status(kube_api, "missed").get("lastMessage"),
                    "kopf saw the update after a kill -9 of the API server",
                    timeout=60,
                )
                assert last == "two"
                assert operator.poll() is None, "kopf must still be running"


def test_a_torn_last_record_is_ignored(tmp_path: Path, devstack_ca: CertificateAuthority) -> None:
    with api_server(tmp_path, devstack_ca) as kube_api:
        kubectl(kube_api, "create", "configmap", "acknowledged")
        kubectl(kube_api, "create", "configmap", "written-last")
        kill_hard(tmp_path)
    # kill -9 in the middle of a write leaves part of a record: that cannot be caused on purpose, so add one.
    (journal,) = data_dir_of(tmp_path).glob("journal-*.jsonl")
    with journal.open("ab") as out:
        out.write(b'{"rev":999,"resource":["","configmaps"],"object":{"metadata":{"na')

    with api_server(tmp_path, devstack_ca) as kube_api:
        names = kubectl(kube_api, "get", "configmaps", "-o", "name").stdout.split()
        assert {"configmap/acknowledged", "configmap/written-last"} <= set(names)
        kubectl(kube_api, "create", "configmap", "next")
        assert int(get_json(kube_api, "configmap", "next")["metadata"]["resourceVersion"]) < 999


def test_an_unreadable_record_before_the_last_stops_the_server_rather_than_lose_writes(
    tmp_path: Path, devstack_ca: CertificateAuthority
) -> None:
    with api_server(tmp_path, devstack_ca) as kube_api:
        kubectl(kube_api, "create", "configmap", "first")
        kubectl(kube_api, "create", "configmap", "second")
    (journal,) = data_dir_of(tmp_path).glob("journal-*.jsonl")
    journal.write_bytes(b"{garbage\n" + journal.read_bytes().split(b"\n", 1)[1])
    with pytest.raises(ServiceStartError, match=r"record 1 is unreadable"), api_server(tmp_path, devstack_ca):
        pass


def test_a_second_api_server_on_the_same_data_dir_is_refused(
    tmp_path: Path, devstack_ca: CertificateAuthority
) -> None:
    with api_server(tmp_path, devstack_ca):
        other = tmp_path / "other"
        with (
            pytest.raises(ServiceStartError, match="in use by another Kubernetes API server"),
            running_kube_api(other, devstack_ca, data_dir=data_dir_of(tmp_path)),
        ):
            pass


def test_the_journal_is_folded_into_a_snapshot_when_it_grows(tmp_path: Path) -> None:
    data_dir = DataDir(tmp_path / "kube-data", journal_limit=4096)
    store = Store(data_dir)
    for i in range(100):
        configmap = {"metadata": {"name": f"c{i}", "namespace": "n", "uid": f"u{i}"}}
        store.put(("", "configmaps"), configmap, "ADDED")
    store.remove(("", "configmaps"), "n", "c7")
    (journal,) = (tmp_path / "kube-data").glob("journal-*.jsonl")
    assert journal.name != "journal-00000001.jsonl", "the journal was compacted at least once"
    assert journal.stat().st_size < 8192
    data_dir.close()

    data_dir = DataDir(tmp_path / "kube-data")
    restored = Store(data_dir)
    data_dir.close()
    assert restored.revision == 101
    assert len(restored.list(("", "configmaps"))) == 99
    assert restored.get(("", "configmaps"), "n", "c7") is None
    assert restored.exists_uid("u99") and not restored.exists_uid("u7")
    assert restored.events_since(100, ("", "configmaps")) is None  # no history from before the restart
