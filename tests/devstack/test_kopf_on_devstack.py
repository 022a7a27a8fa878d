"""kopf, started as a real process, reacts to objects applied with kubectl against the devstack's API."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import kubectl, wait_until
from tests.servers import KubeAPI

OPERATOR = Path(__file__).parent / "operators" / "status_echo.py"

PROBE_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: probes.devstack.test
spec:
  group: devstack.test
  scope: Namespaced
  names: {kind: Probe, plural: probes, singular: probe, listKind: ProbeList}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                message: {type: string}
            status:
              type: object
              x-kubernetes-preserve-unknown-fields: true
"""


@pytest.fixture(scope="module")
def kopf_operator(
    kube_api: KubeAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    kubectl(kube_api, "apply", "-f", "-", input=PROBE_CRD)
    wait_until(lambda: kubectl(kube_api, "get", "probes", check=False).returncode == 0, "probes served")
    log = tmp_path_factory.mktemp("kopf") / "kopf.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", str(OPERATOR)],
            env=kube_api.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.returncode not in (0, -15):
            print(log.read_text())  # shown by pytest on failure


def _probe(kube_api: KubeAPI, name: str) -> dict:
    return json.loads(kubectl(kube_api, "get", "probe", name, "-n", "default", "-o", "json").stdout)


def test_kopf_handler_patches_status_of_object_created_with_kubectl(
    kube_api: KubeAPI, kopf_operator: subprocess.Popen[bytes]
) -> None:
    probe = "apiVersion: devstack.test/v1\nkind: Probe\nmetadata: {name: hello, namespace: default}\n"
    kubectl(kube_api, "apply", "-f", "-", input=probe + "spec: {message: first}\n")

    status = wait_until(lambda: _probe(kube_api, "hello").get("status", {}).get("answer"), "kopf answered")
    assert status == {"echo": "hello:first"}
    assert kopf_operator.poll() is None, "the operator process must still be running"

    kubectl(kube_api, "apply", "-f", "-", input=probe + "spec: {message: second}\n")
    assert (
        wait_until(lambda: _probe(kube_api, "hello").get("status", {}).get("lastMessage"), "update")
        == "second"
    )

    kubectl(kube_api, "delete", "probe", "hello", "-n", "default", "--timeout=30s")
    wait_until(
        lambda: kubectl(kube_api, "get", "probe", "hello", "-n", "default", check=False).returncode != 0,
        "kopf must release its finalizer so the delete completes",
        timeout=30,
    )
