"""kopf handlers that keep every nation's models served: one level-based pass, on change and on a clock.

The pass (reconcile/serving.py) reads everything it needs each time, so one loop covers every trigger: a
ModelDeployment or Tenant event wakes it at once (a Tenant suspended reaches every gateway's configuration
without waiting for the clock); a new policy bundle and the Ray applications' progress are picked up within
`serving_interval_seconds`. The loop lives inside kopf.run, which runs only
while this replica holds the Lease, so two replicas never deploy at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from sovereign.telemetry import reconcile_span
from sovereign_operator.constants import GROUP, VERSION
from sovereign_operator.reconcile.context import OperatorContext, operator_context
from sovereign_operator.reconcile.serving import ServingPass, ServingState, run_serving_pass

log = logging.getLogger(__name__)


def start_serving_loop(context: OperatorContext) -> None:
    """Called by the operator's startup handler, in kopf's event loop."""
    state = ServingState(context.dynamic, context.config)  # the runtime, chosen once
    if not state.runtime.serves:
        log.info(f"serving runtime {state.runtime.name!r}: ModelDeployments are admitted but not served")
        return
    context.serving_wake = asyncio.Event()
    context.serving_task = asyncio.create_task(_serve_forever(state, context.serving_wake))


async def stop_serving_loop(context: OperatorContext) -> None:
    """Called by the operator's cleanup handler."""
    task = context.serving_task
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# Async: it runs in kopf's event loop, the loop the serving loop's asyncio.Event belongs to. A DataSet's
# event too: a new index reaches its retriever and the gateways at once, and its Ready follows them.
@kopf.on.event(GROUP, VERSION, "modeldeployments")
@kopf.on.event(GROUP, VERSION, "tenants")
@kopf.on.event(GROUP, VERSION, "datasets")
async def wake_serving_loop(memo: kopf.Memo, **_: Any) -> None:
    wake = operator_context(memo).serving_wake
    if wake is not None:
        wake.set()


def _traced_serving_pass(state: ServingState) -> ServingPass:
    # One span per pass over every nation's ModelDeployments: the pass is level-based and global.
    with reconcile_span("ModelDeployment"):
        return run_serving_pass(state)


async def _serve_forever(state: ServingState, wake: asyncio.Event) -> None:
    interval = state.config.serving_interval_seconds
    last_error = ""
    while True:
        wake.clear()
        try:
            result = await asyncio.to_thread(_traced_serving_pass, state)
            if result.deployed:
                log.info(f"serving: {result.applications} applications for {', '.join(result.nations)}")
            last_error = ""
        except Exception as error:  # noqa: BLE001 — the loop must outlive any one failed pass
            message = f"serving pass failed: {type(error).__name__}: {error}"
            if message != last_error:  # once per distinct failure, not every few seconds
                log.warning(message)
            last_error = message
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=interval)
