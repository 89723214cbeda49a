"""Prometheus metrics, aggregated across Sanic worker processes.

Sanic workers are separate processes, so ``serve()`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
fresh directory *before* any worker imports prometheus_client; each worker then writes its
samples to mmap files there and ``/metrics`` (answered by any one worker) merges all of them with
``MultiProcessCollector``. Without that variable (tests, a plain single process) the default
in-process registry is used.
"""

from __future__ import annotations

import os
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


def render() -> tuple[bytes, str]:
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
