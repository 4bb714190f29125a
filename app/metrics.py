"""Prometheus metrics of this process, or of all worker processes in multiprocess mode."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

REQUESTS = Counter(
    "grouped_users_requests",
    "HTTP requests answered, by route template, method and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "grouped_users_request_duration_seconds",
    "Time from request to the end of the response, by route template and method.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_FLIGHT = Gauge(
    "grouped_users_requests_in_flight",
    "Requests being handled now.",
    multiprocess_mode="livesum",
)
POOL_CHECKED_OUT = Gauge(
    "grouped_users_db_connections_in_use",
    "Database connections checked out of the pool.",
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "grouped_users_db_pool_size",
    "Database connections the pool keeps open.",
    multiprocess_mode="livesum",
)

MEDIA_TYPE = CONTENT_TYPE_LATEST


class Tally:
    """This process's requests in flight and answered, as plain numbers until flush().

    Each update of a Prometheus metric takes a lock and, with several workers,
    writes to a memory-mapped file: the counter and the in-flight gauge
    (three updates a request) were ~4 % of a point lookup. Requests
    add to this tally instead; flush() writes it to REQUESTS and IN_FLIGHT.
    It runs before every /metrics answer (this process's figures are then
    exact), about once a second while requests are in flight (the
    time-limit sweep, app.api.deadlines) and at shutdown; so another
    worker's figures reach /metrics within a second. The latency histogram
    is still observed per request: Prometheus's client has no way to add
    several observations at once.
    """

    def __init__(self) -> None:
        self.in_flight = 0
        # (method, route template, status) -> requests answered since the last flush.
        self.answered: dict[tuple[str, str, int], int] = {}

    def flush(self) -> None:
        answered, self.answered = self.answered, {}
        for (method, route, status), count in answered.items():
            REQUESTS.labels(method, route, str(status)).inc(count)
        IN_FLIGHT.set(self.in_flight)


TALLY = Tally()


def exposition() -> bytes:
    """The metrics in the Prometheus text format.

    With several worker processes (PROMETHEUS_MULTIPROC_DIR set, as serve
    does for --workers > 1) each writes its own files and any of them can
    report the sum.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
