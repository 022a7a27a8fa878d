"""A model whose queue is full (Ray Serve's `max_queued_requests`, set on every model application by the
operator) is busy, not gone: the gateway answers 503 `model_busy` with Retry-After and keeps its handle,
where a model that is not running is 503 `model_unavailable` and its handle is dropped."""

from __future__ import annotations

from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError
from sovereign_operator.builders.model_application import MODEL_MAX_QUEUED_REQUESTS
from sovereign_serving.gateway._model_calls import ModelCalls


def test_a_full_model_queue_is_503_model_busy_with_retry_after_and_keeps_the_handle() -> None:
    calls = ModelCalls()
    calls._handles["fra-analyst"] = object()  # type: ignore[assignment]
    busy = BackPressureError(
        num_queued_requests=MODEL_MAX_QUEUED_REQUESTS, max_queued_requests=MODEL_MAX_QUEUED_REQUESTS
    )
    error = calls._model_error("fra-analyst", busy, None)
    assert (error.status, error.code, error.headers) == (503, "model_busy", {"Retry-After": "1"})
    assert "retry" in error.message and str(MODEL_MAX_QUEUED_REQUESTS) not in error.message  # no internals
    assert "fra-analyst" in calls._handles


def test_a_dead_model_is_503_model_unavailable_and_its_handle_dropped() -> None:
    calls = ModelCalls()
    calls._handles["fra-analyst"] = object()  # type: ignore[assignment]
    error = calls._model_error("fra-analyst", RayActorError(), None)
    assert (error.status, error.code) == (503, "model_unavailable")
    assert "fra-analyst" not in calls._handles
