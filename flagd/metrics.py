"""Prometheus metrics: what each worker counts, and `GET /metrics`, which adds up every worker.

With several workers `flagd serve` points PROMETHEUS_MULTIPROC_DIR at a fresh directory before they
start (prometheus-client's multiprocess mode): every worker writes its values to memory-mapped files
there and a scrape, answered by any worker (or by the separate port the supervisor opens), reads them
all. Counters and histograms add up; gauges say how they combine (`livesum`: over live workers;
`all`: one series per worker, labelled by pid). Without the variable (one process, tests) the values
live in this process.

The metric objects are module-level, as prometheus-client expects; they sit in this module's own
registry, not the library's default one.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "flagd_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "flagd_http_request_seconds",
    "Time to answer an HTTP request (to its first body byte for streams), by route.",
    ["route"],
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CONNECTIONS = Gauge(
    "flagd_connections",
    "HTTP connections open.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
CONNECTIONS_CLOSED = Counter(
    "flagd_connections_closed",
    "Connections the server closed to protect itself, by reason: header_timeout, body_timeout, evicted "
    "(waiting for its request headers when the cap was reached), refused (503 too_many_connections), slow_stream (a change stream whose client did not read what it was sent).",
    ["reason"],
    registry=REGISTRY,
)
STREAMS_OPEN = Gauge(
    "flagd_streams_open",
    "Change streams open (`/v1/flags/stream`, `/v1/client/stream`).",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
ACCESS_LOG_DROPPED = Counter(
    "flagd_access_log_dropped",
    "Access-log lines dropped because the log could not keep up (its buffers are bounded; requests never wait).",
    registry=REGISTRY,
)
EVALUATIONS = Counter(
    "flagd_evaluations", "OFREP flag evaluations, by flag and reason.", ["flag", "reason"], registry=REGISTRY
)
EXPOSURES = Counter(
    "flagd_exposures",
    "Exposures logged: 'server' ones recorded from OFREP evaluations, 'client' ones received.",
    ["source"],
    registry=REGISTRY,
)
EVENTS = Counter(
    "flagd_events",
    "Events received, by kind and outcome (accepted, rejected, deduplicated: accepted again).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
EVENTS_REJECTED = Counter(
    "flagd_events_rejected", "Events refused, by the reason's code.", ["code"], registry=REGISTRY
)
QUEUE_DEPTH = Gauge(
    "flagd_event_queue_depth",
    "Events waiting for their group commit.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
COMMIT_EVENTS = Histogram(
    "flagd_group_commit_events",
    "Events per group commit.",
    registry=REGISTRY,
    buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 20000),
)
COMMIT_SECONDS = Histogram(
    "flagd_group_commit_seconds",
    "Time of one group commit (COPY, moves, commit).",
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
POOL_SIZE = Gauge(
    "flagd_db_pool_connections",
    "Database connections open in the pools.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
POOL_IN_USE = Gauge(
    "flagd_db_pool_connections_in_use",
    "Database connections lent out.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
RESULTS_REPLICA_READS = Counter(
    "flagd_results_replica_reads",
    "Results reads with FLAGD_RESULTS_DATABASE_URL set, by where they went: replica (it had replayed the "
    "primary's writes), lagging or unreachable (read on the primary instead).",
    ["outcome"],
    registry=REGISTRY,
)
CONFIG_VERSION = Gauge(
    "flagd_config_version",
    "The flag configuration version each worker serves.",
    registry=REGISTRY,
    multiprocess_mode="all",
)
CONFIG_UPDATED = Gauge(
    "flagd_config_updated_timestamp_seconds",
    "When the served configuration version was written (its age is time() minus this).",
    registry=REGISTRY,
    multiprocess_mode="all",
)

DATA_HEALTH_OPEN = Gauge(
    "flagd_data_health_open_alarms",
    "Data-health alarms open, by kind (volume_anomaly, schema_drift, duplicate_burst) and event name; every "
    "worker reads them from the database after each detector round (labels bounded by the names judged).",
    ["kind", "event"],
    registry=REGISTRY,
    multiprocess_mode="livemax",
)

_REQUEST_CHILDREN: dict[tuple[str, str, int], Any] = {}
_SECONDS_CHILDREN: dict[str, Any] = {}


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

EVENT_PLAN_VIOLATIONS = Counter(
    "flagd_event_plan_violations",
    "Violations of the tracking plan, by planned event name ('_unplanned' for the others), code and the mode "
    "that applied (observe: stored; enforce: refused).",
    ["event", "code", "mode"],
    registry=REGISTRY,
)


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request (the labelled children are cached: the hot path is two lookups). Labels
    stay bounded: route templates, the standard methods (others count as OTHER), status codes."""
    if method not in _METHODS:
        method = "OTHER"
    key = (route, method, status)
    counter = _REQUEST_CHILDREN.get(key)
    if counter is None:
        counter = _REQUEST_CHILDREN.setdefault(key, REQUESTS.labels(route, method, str(status)))
    counter.inc()
    histogram = _SECONDS_CHILDREN.get(route)
    if histogram is None:
        histogram = _SECONDS_CHILDREN.setdefault(route, REQUEST_SECONDS.labels(route))
    histogram.observe(seconds)


UNKNOWN_FLAG = "(unknown)"
_EVALUATION_CHILDREN: dict[tuple[str, str], Any] = {}


def count_evaluation(flag: str, reason: str) -> None:
    """One OFREP evaluation. Callers pass "(unknown)" for a flag that does not exist, so the series (and
    this cache of them) are bounded by the flags defined times the reasons."""
    key = (flag, reason)
    child = _EVALUATION_CHILDREN.get(key)
    if child is None:
        child = _EVALUATION_CHILDREN.setdefault(key, EVALUATIONS.labels(flag, reason))
    child.inc()


def multiprocess() -> bool:
    """Whether this process writes its values to PROMETHEUS_MULTIPROC_DIR (decided when prometheus-client
    was first imported here)."""
    return bool(os.environ.get(MULTIPROC_ENV)) and values.ValueClass.__name__ != "MutexValue"


def scrape_registry() -> CollectorRegistry:
    """What a scrape reads: every worker's files in multiprocess mode, else this process's registry."""
    if multiprocess():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry
    return REGISTRY


def serve_on_port(port: int, host: str, directory: str | None) -> None:
    """Open the metrics on a port of their own, from the supervisor: all workers' files in `directory`
    (several workers), or this process's registry (one worker runs in this process)."""
    if directory is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
    else:
        registry = REGISTRY
    start_http_server(port, addr=host, registry=registry)


def exposition() -> bytes:
    """The metrics of every worker (multiprocess mode) or of this process, in the text format."""
    return generate_latest(scrape_registry())


def worker_exited() -> None:
    """A worker that stops cleanly takes its live gauges with it."""
    if multiprocess():
        mark_process_dead(os.getpid())
