"""A ModelDeployment's status from its Ray application's state, as data."""

from __future__ import annotations

import pytest
from sovereign_operator.builders.model_status import Placement, model_deployment_status

ENDPOINT = "http://127.0.0.1:8000/fra/v1"


def conditions(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


@pytest.mark.parametrize(
    ("app_status", "app_message", "expected"),
    [
        (
            "RUNNING",
            "",
            {
                "Admitted": ("True", "Deployed"),
                "IntegrityVerified": ("True", "DigestsMatch"),
                "Ready": ("True", "Running"),
            },
        ),
        (
            "DEPLOYING",
            "",
            {
                "Admitted": ("True", "Deployed"),
                "IntegrityVerified": ("Unknown", "Verifying"),
                "Ready": ("False", "Deploying"),
            },
        ),
        (
            "DEPLOY_FAILED",
            "IntegrityError: model.safetensors: sha256 is 00ab…, the spec says 11cd…",
            {
                "Admitted": ("True", "Deployed"),
                "IntegrityVerified": ("False", "DigestMismatch"),
                "Ready": ("False", "IntegrityCheckFailed"),
            },
        ),
        (
            "DEPLOY_FAILED",
            "ModuleNotFoundError: no module named x",
            {
                "Admitted": ("True", "Deployed"),
                "IntegrityVerified": ("Unknown", "NotVerified"),
                "Ready": ("False", "DeployFailed"),
            },
        ),
    ],
    ids=["running", "deploying", "tampered", "failed-otherwise"],
)
def test_conditions_follow_the_ray_application(app_status: str, app_message: str, expected: dict) -> None:
    placement = Placement(
        True, application="fra-analyst", app_status=app_status, app_message=app_message, endpoint=ENDPOINT
    )
    status = model_deployment_status(placement, {}, generation=3)
    assert conditions(status) == expected
    assert status["rayApplicationStatus"] == app_status and status["endpoint"] == ENDPOINT
    assert status["observedGeneration"] == 3
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    if "IntegrityError" in app_message:
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert "model.safetensors" in ready["message"]


def test_a_model_of_a_nation_not_ready_is_not_served_and_says_why() -> None:
    status = model_deployment_status(
        Placement(False, "TenantNotReady", "the Tenant of tenant-fra is not Ready"), {}, generation=1
    )
    assert conditions(status)["Admitted"] == ("False", "TenantNotReady")
    assert conditions(status)["Ready"] == ("False", "TenantNotReady")
    assert status["endpoint"] is None


def test_an_unchanged_state_keeps_transition_times() -> None:
    placement = Placement(True, application="a", app_status="RUNNING", endpoint=ENDPOINT)
    first = model_deployment_status(placement, {}, generation=1)
    again = model_deployment_status(placement, first, generation=1)
    assert again == first


def test_long_ray_messages_are_shortened() -> None:
    placement = Placement(True, application="a", app_status="DEPLOY_FAILED", app_message="x" * 5000)
    status = model_deployment_status(placement, {}, generation=1)
    assert len(status["rayApplicationMessage"]) == 1024


def test_a_running_model_is_ready_only_once_every_gateway_routes_to_it() -> None:
    placement = Placement(True, application="fra-analyst", app_status="RUNNING", endpoint=ENDPOINT)
    waiting = model_deployment_status(placement, {}, 1, routed=False)
    assert conditions(waiting)["Ready"] == ("False", "Routing")
    ready = model_deployment_status(placement, {}, 1, routed=True)
    assert conditions(ready)["Ready"] == ("True", "Running")
    # Once Ready, a gateway taking a later configuration (it still routes to the model) does not unset it.
    assert conditions(model_deployment_status(placement, ready, 1, routed=False))["Ready"] == (
        "True",
        "Running",
    )
