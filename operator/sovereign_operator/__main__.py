"""`python -m sovereign_operator`: wait for the Lease, then run kopf in-process while holding it.

Exit codes: 0 after SIGTERM/SIGINT (the Lease is released), 1 when the Lease was lost (the supervisor —
Deployment or `sovereign up` — restarts the process, which then waits as a standby).
"""

from __future__ import annotations

import logging
import os
import sys
import threading

import kopf

from sovereign.clients.kubernetes import ensure_namespace, load_api_client
from sovereign.telemetry import configure_metrics, configure_tracing, flush_tracing
from sovereign_operator.config import OperatorConfig
from sovereign_operator.handlers import dataset as dataset_handlers
from sovereign_operator.handlers import policy as policy_handlers  # noqa: F401  (registers its handlers)
from sovereign_operator.handlers import serving as serving_handlers  # noqa: F401  (registers its handlers)
from sovereign_operator.handlers import tenant as tenant_handlers
from sovereign_operator.health import HealthServer, LeaderLabel, ObservedLeaseElector
from sovereign_operator.leader import default_identity

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
    liveness = f"http://127.0.0.1:{config.liveness_port}/healthz" if config.liveness_port else None
    kopf.run(
        clusterwide=True,
        standalone=True,  # no kopf peering: the Lease decides who acts
        stop_flag=stop,
        memo=kopf.Memo(config=config, stop_flag=stop),
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


@kopf.on.cleanup()
def unblock_stop_flag(memo: kopf.Memo, **_: object) -> None:
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
