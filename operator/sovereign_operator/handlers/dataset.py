"""kopf handlers for `datasets.sovereign.ai`: small functions that hand the work to reconcile/dataset.py.

- create / update of spec / resume: one pass (submits the ingest job: the generation changed)
- a timer every `dataset_poll_seconds`: the same pass, which follows a running job, retries a failed one
  after its backoff and re-submits every `dataset_resync_seconds` (registered by `register_dataset_timer`,
  its interval comes from the configuration read at start)
The DataSet has no finalizer: its index goes with the nation (the key that could read it is shredded).
"""

from __future__ import annotations

from typing import Any

import kopf

from sovereign.clients.ray import RayServeError, RayUnavailable
from sovereign_operator.constants import GROUP, VERSION
from sovereign_operator.handlers.traced import traced_reconcile
from sovereign_operator.reconcile.context import OperatorContext, operator_context
from sovereign_operator.reconcile.dataset import reconcile_dataset

DATASETS = (GROUP, VERSION, "datasets")
RAY_RETRY_SECONDS = 5


def _reconcile(context: OperatorContext, body: kopf.Body, patch: kopf.Patch) -> None:
    try:
        changes = reconcile_dataset(context.config, context.dynamic, dict(body))
    except (RayUnavailable, RayServeError) as error:
        raise kopf.TemporaryError(f"the nation's Ray dashboard: {error}", delay=RAY_RETRY_SECONDS) from error
    patch.status.update(changes)  # empty when nothing changed: kopf then writes nothing


@kopf.on.resume(*DATASETS, backoff=5)
@kopf.on.create(*DATASETS, backoff=5)
@kopf.on.update(*DATASETS, field="spec", backoff=5)
@traced_reconcile("DataSet")
def ingest_on_change(memo: kopf.Memo, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    _reconcile(operator_context(memo), body, patch)


def follow_ingestion(memo: kopf.Memo, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    _reconcile(operator_context(memo), body, patch)


def register_dataset_timer(interval_seconds: float) -> None:
    # kopf docs: /timers — a timer runs every `interval` seconds for each existing object.
    kopf.timer(*DATASETS, interval=interval_seconds, initial_delay=interval_seconds)(
        traced_reconcile("DataSet")(follow_ingestion)
    )
