"""Reconcile spans and metrics: one span per reconcile pass, its duration and its failures on /metrics.

`configure_metrics(service, port)` installs an OTel meter provider whose PrometheusMetricReader is scraped at
`0.0.0.0:<port>/metrics`; without it the instruments are the API's no-ops. `reconcile_span(kind, ...)` wraps
one pass: span `reconcile <kind>`, histogram `sovereign.reconcile.duration` (s; Prometheus:
`sovereign_reconcile_duration_seconds`) by kind and outcome, counter `sovereign.reconcile.failures`
(`sovereign_reconcile_failures_total`) by kind and reason (an error's type name, never its message).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics

from sovereign.telemetry._tracing import INSTRUMENTATION, span

log = logging.getLogger(__name__)

SUCCESS, RETRY, ERROR, DELETED = "success", "retry", "error", "deleted"
FAILED_OUTCOMES = (RETRY, ERROR)
# Seconds, from a no-op pass to a slow Vault: the OTel default buckets are sized for milliseconds.
DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]

_metrics_port: int | None = None
_lock = threading.Lock()


def configure_metrics(service: str, port: int | None) -> bool:
    """Serve the process's metrics for Prometheus on `port` (once); returns whether they are served."""
    global _metrics_port
    with _lock:
        if port is None or _metrics_port is not None:
            return _metrics_port is not None
        # Imported here: a process without a metrics port never loads the SDK's metrics or a server.
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.resources import Resource
        from prometheus_client import start_http_server

        provider = MeterProvider(
            metric_readers=[PrometheusMetricReader()], resource=Resource.create({"service.name": service})
        )
        metrics.set_meter_provider(provider)
        start_http_server(port)
        _metrics_port = port
        log.info("metrics: %s serves Prometheus metrics on port %d", service, port)
        return True


class _Instruments:
    def __init__(self) -> None:
        meter = metrics.get_meter(INSTRUMENTATION)
        self.duration = meter.create_histogram(
            "sovereign.reconcile.duration",
            unit="s",
            description="How long one reconcile pass took, by kind and outcome.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.failures = meter.create_counter(
            "sovereign.reconcile.failures",
            unit="{failure}",
            description="Reconcile passes that failed or will be retried, by kind and error type.",
        )


_instruments: _Instruments | None = None


def _get_instruments() -> _Instruments:
    global _instruments
    with _lock:
        if _instruments is None:
            # The API's global meter is a proxy until configure_metrics: instruments made early still count.
            _instruments = _Instruments()
        return _instruments


@dataclass
class Reconcile:
    """The pass in progress; its handler may set `outcome`, and `reason` when the pass failed.

    A retry without a reason is a planned wait (e.g. for a namespace to go): not counted as a failure.
    """

    kind: str
    outcome: str = SUCCESS
    reason: str | None = None

    def failed(self, outcome: str, reason: str | None) -> None:
        self.outcome, self.reason = outcome, reason


def error_type(error: BaseException) -> str:
    """What a failure is counted by: the type of the error behind it (`raise ... from`), else its own."""
    return type(error.__cause__ or error).__name__


@contextmanager
def reconcile_span(kind: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Reconcile]:
    """One reconcile pass of `kind`: a span `reconcile <kind>` with `sovereign.outcome`, and its metrics.

    An exception leaving the block counts as outcome `error` unless the handler already said `retry`.
    """
    record = Reconcile(kind)
    started = time.perf_counter()
    instruments = _get_instruments()
    with span(f"reconcile {kind}", attributes={"sovereign.kind": kind, **(attributes or {})}) as current:
        try:
            yield record
        except BaseException as error:
            if record.outcome not in FAILED_OUTCOMES:
                record.failed(ERROR, error_type(error))
            raise
        finally:
            current.set_attribute("sovereign.outcome", record.outcome)
            instruments.duration.record(
                time.perf_counter() - started, {"kind": kind, "outcome": record.outcome}
            )
            if record.outcome in FAILED_OUTCOMES and record.reason is not None:
                instruments.failures.add(1, {"kind": kind, "reason": record.reason})
