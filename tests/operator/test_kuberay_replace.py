"""When the kuberay runtime replaces a nation's RayService: only when what it would write changed, never
because the API server stored defaults beside it (which made it PUT the RayService on every pass)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sovereign_operator.runtimes.kuberay import needs_replacing, with_applied_spec_hash

DESIRED = with_applied_spec_hash(
    {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": "mlt-serving", "namespace": "tenant-mlt"},
        "spec": {
            "serveConfigV2": "applications: []",
            "rayClusterConfig": {
                "headGroupSpec": {
                    "template": {"spec": {"containers": [{"ports": [{"containerPort": 8000}]}]}}
                },
                "workerGroupSpecs": [{"groupName": "models", "replicas": 1}],
            },
        },
    }
)


def _stored_with_defaults() -> dict[str, Any]:
    live = copy.deepcopy(DESIRED)
    spec = live["spec"]["rayClusterConfig"]
    spec["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = "TCP"
    spec["workerGroupSpecs"][0].update(numOfHosts=1, priority=0)
    live["metadata"].update(generation=1, resourceVersion="7")
    return live


def _changed(live: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    target = live["spec"]
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[int(last) if last.isdigit() else last] = value
    return live


def test_defaults_the_api_server_stored_are_not_a_change() -> None:
    assert not needs_replacing(_stored_with_defaults(), DESIRED)


@pytest.mark.parametrize(
    ("case", "path", "value"),
    [
        ("someone scaled the workers by hand", "rayClusterConfig.workerGroupSpecs.0.replicas", 3),
        ("someone replaced the serve config", "serveConfigV2", "applications: [x]"),
        ("someone removed a port", "rayClusterConfig.headGroupSpec.template.spec.containers.0.ports", []),
    ],
)
def test_a_field_the_operator_sets_changed_live_is_put_back(case: str, path: str, value: Any) -> None:
    assert needs_replacing(_changed(_stored_with_defaults(), path, value), DESIRED), case


def test_a_new_desired_spec_replaces_even_where_the_live_one_holds_it() -> None:
    # A field the operator stopped setting: the live spec still holds every desired value, the hash differs.
    live = _changed(_stored_with_defaults(), "rayClusterConfig.enableInTreeAutoscaling", True)
    assert not needs_replacing(live, DESIRED)  # as if the API server had defaulted it
    narrower = copy.deepcopy(DESIRED["spec"])
    del narrower["rayClusterConfig"]["workerGroupSpecs"][0]["groupName"]
    assert needs_replacing(live, with_applied_spec_hash({**DESIRED, "spec": narrower}))


def test_an_object_written_before_the_hash_existed_is_replaced_once() -> None:
    live = _stored_with_defaults()
    del live["metadata"]["annotations"]
    assert needs_replacing(live, DESIRED)
