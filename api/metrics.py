"""Prometheus metrics, aggregated across Sanic worker processes.

Sanic workers are separate processes, so ``serve()`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
fresh directory *before* any worker imports prometheus_client; each worker then writes its
samples to mmap files there and ``/metrics`` (answered by any one worker) merges all of them with
``MultiProcessCollector``. Without that variable (tests, a plain single process) the default
in-process registry is used.

Per-request counts (requests, latency, cache lookups) are tallied in a dict (``count``,
``observe``) and written to the metric at the end of the event-loop iteration that produced them
(one ``loop.call_soon``): in multiprocess mode every ``inc`` is a lock, a pid check and an mmap
write, and under load one iteration serves many requests, so the writes are batched. An idle
worker flushes right after the response (within microseconds), so /metrics is exact for
sequential clients; ``render`` flushes its own worker first.
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROCESS = bool(os.environ.get(MULTIPROC_ENV))

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter(
    "pricecat_http_requests_total",
    "HTTP requests by route, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "pricecat_http_request_duration_seconds",
    "Time from request received to response ready, by route.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
CACHE = Counter(
    "pricecat_cache_requests_total",
    "Cache lookups by endpoint and result (hit: memory or redis, miss: loaded from Postgres, "
    "bypass: Redis unreachable, answered from Postgres).",
    ["endpoint", "result", "layer"],
)
REDIS_DEGRADED = Counter(
    "pricecat_redis_degraded_total",
    "Requests answered without Redis because it was unreachable.",
    ["endpoint"],
)
DB_QUERIES = Counter(
    "pricecat_db_queries_total",
    "SQL statements executed, by query file.",
    ["query"],
)
DB_ERRORS = Counter(
    "pricecat_db_errors_total",
    "SQL statements that failed, by query file and kind.",
    ["query", "kind"],
)
DB_POOL_IN_USE = Gauge(
    "pricecat_db_pool_connections_in_use",
    "asyncpg connections currently checked out (summed over live workers).",
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "pricecat_db_pool_connections_max",
    "Configured asyncpg pool size (summed over live workers).",
    multiprocess_mode="livesum",
)
DB_ACQUIRE_WAIT = Histogram(
    "pricecat_db_pool_acquire_wait_seconds",
    "Time a cache miss queued for a pooled connection (one acquisition per miss).",
    buckets=(0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CACHE_STALE = Counter(
    "pricecat_cache_stale_served_total",
    "Soft-expired entries served at once while one background refresh per key revalidates.",
    ["endpoint"],
)
CACHE_REFRESH = Counter(
    "pricecat_cache_refresh_total",
    "Background refreshes of soft-expired entries by outcome (redis: another worker had "
    "already refreshed it; db: reloaded from Postgres; error: failed, the stale entry stays; "
    "dropped: the backlog was full; superseded: a newer data generation was published while "
    "it waited).",
    ["endpoint", "outcome"],
)
CACHE_FALLBACK = Counter(
    "pricecat_cache_fallback_total",
    "Loads that failed (Postgres unavailable or timed out) answered from the previous data "
    "generation's entry instead of 503.",
    ["endpoint"],
)
CACHE_LOCAL_ENTRIES = Gauge(
    "pricecat_cache_local_entries",
    "Entries in the workers' in-process cache (summed over live workers; bounded per worker by "
    "API_LOCAL_CACHE_ENTRIES).",
    multiprocess_mode="livesum",
)
CACHE_LOCAL_BYTES = Gauge(
    "pricecat_cache_local_bytes",
    "Bytes counted against the in-process cache bound (bodies, keys, per-entry overhead; summed "
    "over live workers; bounded per worker by API_LOCAL_CACHE_MB).",
    multiprocess_mode="livesum",
)
DATA_AGE = Gauge(
    "pricecat_data_age_seconds",
    "Seconds since the newest snapshot in the published read models (set on scrape).",
    multiprocess_mode="livemostrecent",
)
QUARANTINED = Gauge(
    "pricecat_quarantined_rows",
    "Raw rows the published build left out of the read models (negative price, blank slug or "
    "seller; catalog.catalog_quarantined_snapshots; set on scrape).",
    multiprocess_mode="livemostrecent",
)
#: the statuses pricecat_refresh_last_run_status reports (refresh_runs' finished outcomes;
#: 'running' and 'skipped' runs are not "the last run")
REFRESH_STATUSES = ("published", "noop", "failed", "aborted")
REFRESH_LAST_SECONDS = Gauge(
    "pricecat_refresh_last_run_seconds",
    "Duration of the last refresh run that published, found nothing new (noop), failed or was "
    "aborted (catalog_ops.refresh_runs.duration_seconds; set on scrape).",
    multiprocess_mode="livemostrecent",
)
REFRESH_LAST_TIMESTAMP = Gauge(
    "pricecat_refresh_last_run_timestamp_seconds",
    "When that run finished (Unix time; set on scrape).",
    multiprocess_mode="livemostrecent",
)
REFRESH_LAST_STATUS = Gauge(
    "pricecat_refresh_last_run_status",
    "1 for that run's status, 0 for the other statuses (published, noop, failed, aborted; set on "
    "scrape).",
    ["status"],
    multiprocess_mode="livemostrecent",
)
REFRESH_PUBLISHED_ROWS = Gauge(
    "pricecat_refresh_published_rows",
    "Rows per relation counted by the last refresh run that published (refresh_runs.mart_rows: "
    "the read models, the deals marts, catalog_quarantined_snapshots, and "
    "int_price_snapshots_arrived = raw rows that build took in as new; set on scrape).",
    ["relation"],
    multiprocess_mode="livemostrecent",
)
REFRESH_PUBLISHED_BUILD = Gauge(
    "pricecat_refresh_published_build_id",
    "The build id the last refresh run that published recorded (equal to "
    "pricecat_published_build_id unless a build was published outside the refresh; set on "
    "scrape).",
    multiprocess_mode="livemostrecent",
)
PUBLISHED_BUILD = Gauge(
    "pricecat_published_build_id",
    "The published build id (catalog.catalog_build_info.build_id: the data generation; set on "
    "scrape).",
    multiprocess_mode="livemostrecent",
)
PUBLISHED_BUILD_AGE = Gauge(
    "pricecat_published_build_age_seconds",
    "Seconds since the published build was built (catalog_build_info.built_at; set on scrape).",
    multiprocess_mode="livemostrecent",
)
WORKERS = Gauge(
    "pricecat_worker_up",
    "1 per live worker process (one series per pid in multiprocess mode).",
    multiprocess_mode="liveall",
)


_CHILDREN: dict[tuple[int, tuple[str, ...]], Any] = {}


def child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, memoized: the hot path skips prometheus_client's label
    validation and lock (labels come from a small fixed set: routes, endpoints, statuses)."""
    key = (id(metric), labels)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(*labels)
    return found


#: counter child -> amount not yet written
_PENDING: dict[Any, float] = {}
#: histogram child -> [sum, count per bucket (the last: +Inf)] not yet written
_PENDING_HIST: dict[Any, list[float]] = {}
_flush_scheduled = False


def _schedule() -> None:
    global _flush_scheduled
    try:
        asyncio.get_running_loop().call_soon(flush)
    except RuntimeError:  # no loop (a script, a test): write now
        flush()
        return
    _flush_scheduled = True


def count(counter_child: Any, amount: float = 1.0) -> None:
    """``counter_child.inc(amount)``, batched (see the module docstring)."""
    _PENDING[counter_child] = _PENDING.get(counter_child, 0.0) + amount
    if not _flush_scheduled:
        _schedule()


def observe(histogram_child: Any, value: float) -> None:
    """``histogram_child.observe(value)``, batched; the child's buckets must be LATENCY_BUCKETS."""
    tally = _PENDING_HIST.get(histogram_child)
    if tally is None:
        tally = _PENDING_HIST[histogram_child] = [0.0] * (len(LATENCY_BUCKETS) + 2)
    tally[0] += value
    tally[1 + bisect_left(LATENCY_BUCKETS, value)] += 1  # le: value <= bound
    if not _flush_scheduled:
        _schedule()


def flush() -> None:
    """Write the tallied counts to the metrics (the mmap files in multiprocess mode)."""
    global _flush_scheduled
    _flush_scheduled = False
    if _PENDING:
        pending = list(_PENDING.items())
        _PENDING.clear()
        for counter_child, amount in pending:
            counter_child.inc(amount)
    if _PENDING_HIST:
        hists = list(_PENDING_HIST.items())
        _PENDING_HIST.clear()
        for histogram_child, tally in hists:
            # prometheus_client has no batch observe: add to the child's own sum and
            # (non-cumulative) bucket values, as Histogram.observe does one at a time
            histogram_child._sum.inc(tally[0])
            for i, n in enumerate(tally[1:]):
                if n:
                    histogram_child._buckets[i].inc(n)


def render() -> tuple[bytes, str]:
    flush()
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
