"""`python -m sovereign_operator`: wait for the Lease, then run kopf in-process while holding it.

The one place the operator is wired: the configuration (read once), the one Kubernetes API client (the
Lease's, then every handler's), kopf's settings and the OperatorContext in memo (made by the one startup
handler below), the timers whose intervals come from the configuration, and the cleanup.

Exit codes: 0 after SIGTERM/SIGINT (the Lease is released), 1 when the Lease was lost (the supervisor —
Deployment or `sovereign up` — restarts the process, which then waits as a standby).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from typing import Any

import kopf
from kubernetes.client import ApiClient

from sovereign.clients.kubernetes import ensure_namespace, load_api_client
from sovereign.telemetry import configure_metrics, configure_tracing, flush_tracing
from sovereign_operator.admission_server import configure_admission  # registers the webhooks' handlers
from sovereign_operator.config import OperatorConfig
from sovereign_operator.constants import OFFBOARDING_FINALIZER
from sovereign_operator.handlers import dataset as dataset_handlers
from sovereign_operator.handlers import policy as policy_handlers
from sovereign_operator.handlers import serving as serving_handlers
from sovereign_operator.handlers import tenant as tenant_handlers
from sovereign_operator.health import HealthServer, LeaderLabel, ObservedLeaseElector
from sovereign_operator.leader import default_identity
from sovereign_operator.reconcile.context import OperatorContext, operator_context

log = logging.getLogger("sovereign_operator")
LOST_LEASE_EXIT_CODE = 1


def main() -> int:
    debug = os.environ.get("SOVEREIGN_OPERATOR_DEBUG") == "1"  # kopf's own debug logs, for diagnosis
    kopf.configure(debug=debug, verbose=debug)
    logging.getLogger().setLevel(logging.DEBUG if debug else logging.INFO)
    # One line per Ray status poll would drown the operator's own log.
    logging.getLogger("httpx").setLevel(logging.DEBUG if debug else logging.WARNING)
    config = OperatorConfig.from_environment()
    # Spans go to OTEL_EXPORTER_OTLP_ENDPOINT when set; metrics are served when SOVEREIGN_METRICS_PORT is.
    configure_tracing("sovereign-operator")
    configure_metrics("sovereign-operator", config.metrics_port)
    api = load_api_client()
    ensure_namespace(api, config.platform_namespace)
    elector = ObservedLeaseElector(
        api, config.platform_namespace, config.lease_name, default_identity(), config.lease_duration_seconds
    )
    # Served from start so that a standby passes the Deployment's probes too (kopf's needs leadership).
    if config.health_port:
        HealthServer(elector, config.health_port).start()
    leader_label = LeaderLabel(api, config.pod_namespace, config.pod_name)
    leader_label.set(False)  # a restarted container may still carry its previous run's label
    elector.wait_for_leadership()
    leader_label.set(True)

    stop, lost = threading.Event(), threading.Event()
    renewer = threading.Thread(target=elector.keep_renewing, args=(stop, lost), name="lease", daemon=True)
    renewer.start()
    threading.Thread(target=_exit_if_stuck, args=(lost, elector.renew_interval), daemon=True).start()
    tenant_handlers.register_drift_timer(config.reconcile_interval_seconds)
    dataset_handlers.register_dataset_timer(config.dataset_poll_seconds)
    policy_handlers.register_refused_bundle_timer(config.reconcile_interval_seconds)
    liveness = f"http://127.0.0.1:{config.liveness_port}/healthz" if config.liveness_port else None
    kopf.run(
        clusterwide=True,
        standalone=True,  # no kopf peering: the Lease decides who acts
        stop_flag=stop,
        memo=kopf.Memo(config=config, api=api, stop_flag=stop),  # for start_operator
        liveness_endpoint=liveness,
    )
    stop.set()
    leader_label.set(False)
    flush_tracing()
    if lost.is_set():
        log.error("exiting: the Lease was lost; a restarted process will wait as a standby")
        return LOST_LEASE_EXIT_CODE
    elector.release()
    return 0


@kopf.on.startup()
async def start_operator(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger, **_: Any
) -> None:
    """kopf's settings, the OperatorContext every handler reads, then what must exist before any event."""
    config: OperatorConfig = memo.config
    api: ApiClient = memo.api
    settings.persistence.finalizer = OFFBOARDING_FINALIZER
    configure_admission(settings, config)  # the validating webhook, when SOVEREIGN_WEBHOOK_* say where
    settings.posting.level = logging.INFO  # kopf.info() becomes a Normal Event on the object
    settings.watching.server_timeout = 60  # re-establish watches now and then (reconnects are cheap)
    # Blocking calls (API discovery, the bundle's pass) run in a thread, off kopf's event loop.
    if "context" not in memo:  # made once, even when kopf retries this handler
        memo.context = await asyncio.to_thread(OperatorContext.connect, config, api)
    context = operator_context(memo)
    await asyncio.to_thread(policy_handlers.publish_policy_bundle_at_start, context=context, logger=logger)
    serving_handlers.start_serving_loop(context)


@kopf.on.cleanup()
async def stop_operator(memo: kopf.Memo, **_: Any) -> None:
    if "context" in memo:  # the startup handler ran
        await serving_handlers.stop_serving_loop(operator_context(memo))
    # kopf waits for a threading.Event stop flag in its default executor; when kopf stops for another
    # reason (SIGTERM), that wait must end too, or the executor's shutdown blocks the exit forever.
    memo.stop_flag.set()


def _exit_if_stuck(lost: threading.Event, grace: float) -> None:
    """Once the Lease is lost kopf must stop promptly; if it does not, end the process (fencing)."""
    lost.wait()
    if not threading.Event().wait(grace * 2):
        sys.stderr.write("lease lost and kopf did not stop in time: exiting\n")
        sys.stderr.flush()
        os._exit(LOST_LEASE_EXIT_CODE)


if __name__ == "__main__":
    sys.exit(main())
