"""Prometheus metrics of a client's requests, retries and waits (``pip install 'vtrans[prometheus]'``).

    from prometheus_client import start_http_server
    from vtrans.client.prometheus import PrometheusHook

    client = vtrans.Client(url, hooks=[PrometheusHook()])  # into prometheus_client's global registry
    start_http_server(9100)

The metrics (labels in brackets; ``route`` is a template such as ``/v1/jobs/{id}``, never a job id):

- ``vtrans_client_requests_total[method, route, status]``: requests; ``status`` is the HTTP status,
  or the error when no answer came (``ConnectError``, ...);
- ``vtrans_client_request_duration_seconds[method, route]``: time to the answer (a long-poll's
  includes its hold);
- ``vtrans_client_retries_total[method, route, reason]``: retries, by the error they would have raised;
- ``vtrans_client_waits_total[result, transport]``: waits by how they ended: ``completed``,
  ``error``, ``timeout``, ``failed``;
- ``vtrans_client_wait_duration_seconds[result]``: how long waits took;
- ``vtrans_client_detection_lag_seconds``: from a job's ``finished_at`` to the client knowing.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "vtrans.client.prometheus needs prometheus-client: pip install 'vtrans[prometheus]'"
    ) from exc

from vtrans.client.hooks import Hook, RequestDetails, RetryDetails, WaitDetails

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
WAIT_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class _Metrics:
    requests: Counter
    request_duration: Histogram
    retries: Counter
    waits: Counter
    wait_duration: Histogram
    lag: Histogram


#: One set of metrics per registry: every PrometheusHook on a registry shares it (a registry
#: refuses a second metric of the same name).
_metrics: weakref.WeakKeyDictionary[CollectorRegistry, _Metrics] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _metrics_in(registry: CollectorRegistry) -> _Metrics:
    with _lock:
        metrics = _metrics.get(registry)
        if metrics is None:
            metrics = _Metrics(
                Counter(
                    "vtrans_client_requests",
                    "Requests the vtrans client sent, by method, route template and status (or error).",
                    ["method", "route", "status"],
                    registry=registry,
                ),
                Histogram(
                    "vtrans_client_request_duration_seconds",
                    "Seconds from sending a request to its answer (a long-poll's includes its hold).",
                    ["method", "route"],
                    buckets=REQUEST_BUCKETS,
                    registry=registry,
                ),
                Counter(
                    "vtrans_client_retries",
                    "Requests the vtrans client retried, by the error they would have raised.",
                    ["method", "route", "reason"],
                    registry=registry,
                ),
                Counter(
                    "vtrans_client_waits",
                    "Waits that ended, by result (completed, error, timeout, failed) and transport.",
                    ["result", "transport"],
                    registry=registry,
                ),
                Histogram(
                    "vtrans_client_wait_duration_seconds",
                    "Seconds a wait took, by result.",
                    ["result"],
                    buckets=WAIT_BUCKETS,
                    registry=registry,
                ),
                Histogram(
                    "vtrans_client_detection_lag_seconds",
                    "Seconds from a job's finished_at to the client learning it.",
                    buckets=LAG_BUCKETS,
                    registry=registry,
                ),
            )
            _metrics[registry] = metrics
        return metrics


class PrometheusHook(Hook):
    """Counts a client's requests, retries and waits into ``registry`` (default: prometheus_client's
    global ``REGISTRY``); the metrics are made on first use and shared by every hook on a registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.metrics = _metrics_in(REGISTRY if registry is None else registry)

    def on_request(self, details: RequestDetails) -> None:
        status = str(details.status) if details.status is not None else details.error or "error"
        self.metrics.requests.labels(details.method, details.route, status).inc()
        self.metrics.request_duration.labels(details.method, details.route).observe(details.elapsed)

    def on_retry(self, details: RetryDetails) -> None:
        reason = type(details.caused_by).__name__
        self.metrics.retries.labels(details.method, details.route, reason).inc()

    def on_wait(self, details: WaitDetails) -> None:
        self.metrics.waits.labels(details.result, details.transport).inc()
        self.metrics.wait_duration.labels(details.result).observe(details.waited)
        if details.lag is not None:
            self.metrics.lag.observe(max(0.0, details.lag))
