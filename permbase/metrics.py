"""Prometheus metrics (prometheus-client), exposed at `/metrics`.

With several worker processes (`python -m api.serve --workers N`) every process
writes its values under PROMETHEUS_MULTIPROC_DIR (set by api/serve.py before the
workers start) and `exposition()` adds them up: `/metrics` is the whole server,
whichever worker answers. A gauge says how its processes' values combine."""

from __future__ import annotations

import gc
import os
import time

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

CACHE_HITS = Counter(
    "permissions_cache_hits_total", "Permission entries served from Redis"
)
CACHE_MISSES = Counter(
    "permissions_cache_misses_total",
    "Permission entries not usable from Redis (absent, stale, corrupt, or Redis skipped)",
)
CACHE_INVALIDATIONS = Counter(
    "permissions_cache_invalidations_total",
    "Permission cache invalidations, by scope",
    ["scope"],
)
CACHE_STALE_WRITES_REFUSED = Counter(
    "permissions_cache_stale_writebacks_refused_total",
    "Write-backs refused because the entry was invalidated after it was read",
)
CACHE_CORRUPT = Counter(
    "permissions_cache_corrupt_entries_total",
    "Cached values that did not parse or validate (treated as misses)",
)
REDIS_ERRORS = Counter(
    "redis_errors_total", "Redis calls that failed or timed out", ["op"]
)
REDIS_ROUND_TRIPS = Counter(
    "redis_round_trips_total", "Packets of commands sent to Redis"
)
BREAKER_OPEN = Gauge(
    "redis_circuit_breaker_open",
    "1 while Redis is skipped after repeated failures (in any worker)",
    multiprocess_mode="livemax",
)
LOADER_BATCH_SIZE = Histogram(
    "permissions_loader_batch_size",
    "Users per permission loader batch",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
LOADER_SQL_SECONDS = Histogram(
    "permissions_loader_sql_seconds",
    "Time of the one SQL query for a batch's misses",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
SQL_STATEMENTS = Counter("sql_statements_total", "SQL statements executed")
INVALIDATION_FAILURES = Counter(
    "permissions_cache_invalidation_failures_total",
    "Passes of the change stream that could not reach Redis (the change log keeps the changes; the cache is distrusted until one succeeds)",
)

CACHE_REFRESHED = Counter(
    "permissions_cache_refreshed_total",
    "Entries reloaded from PostgreSQL and written back by the cache keeper",
)
CACHE_REFILLED = Counter(
    "permissions_cache_refilled_total",
    "Entries the change stream invalidated, reloaded by the keeper right after",
)
STREAM_APPLIED = Counter(
    "permission_changes_applied_total",
    "Changes of the database's permission change log applied to Redis by this instance",
)
STREAM_LAG_SECONDS = Histogram(
    "permission_changes_lag_seconds",
    "Seconds from a permission change's write (in its transaction) to its application to Redis",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STREAM_POSITION = Gauge(
    "permission_changes_position",
    "This instance's position in the permission change log: every transaction below "
    "this id is applied (compare instances; the database's own is "
    "pg_snapshot_xmin(pg_current_snapshot())); with several workers, the lowest",
    multiprocess_mode="livemin",
)
STREAM_SINCE_PASS_SECONDS = Gauge(
    "permission_changes_seconds_since_pass",
    "Seconds since this instance's change stream last reached Redis, as of its last "
    "poll (readyz reports it behind past 3 poll intervals and 5 s); with several "
    "workers, the highest",
    multiprocess_mode="livemax",
)
CACHE_REFRESH_SECONDS = Histogram(
    "permissions_cache_refresh_seconds",
    "Duration of one keeper pass over every active user",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)

GRAPHQL_PREPARED = Counter(
    "graphql_prepared_requests_total",
    "Query requests served by the fast lane (a document validated before; api/lane.py)",
)

GRAPHQL_REPLAYED = Counter(
    "graphql_responses_replayed_total",
    "Remembered answers tried (`ResponseCache`, schema/engine/prepared.py): replayed, changed (an "
    "entry they were computed from changed), failed (reading the entries failed)",
    ["outcome"],
)

QUERY_REFUSED = Counter(
    "graphql_queries_refused_total",
    "Query documents refused by a limit before validation or execution (schema/engine/limits.py), by limit",
    ["limit"],
)
POOL_EXHAUSTED = Counter(
    "pool_exhausted_total",
    "Waits for a pool connection that found every connection in use (answered SERVICE_BUSY or a cache miss), by pool",
    ["pool"],
)

GC_PAUSE = Histogram(
    "python_gc_pause_seconds",
    "Time spent in each garbage collection, by generation",
    ["generation"],
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)


def exposition() -> bytes:
    """What `/metrics` serves: this process's metrics, or every worker's added up
    when the server runs several (PROMETHEUS_MULTIPROC_DIR)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def install_gc_timer() -> None:
    """Time every collection (gc.callbacks): pauses show up in /metrics."""
    started: list[float] = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            GC_PAUSE.labels(str(info.get("generation", -1))).observe(
                time.perf_counter() - started[0]
            )

    if not any(getattr(cb, "_permgraph", False) for cb in gc.callbacks):
        callback._permgraph = True  # type: ignore[attr-defined]  # a marker: a second create_app adds no second timer
        gc.callbacks.append(callback)


__all__ = [
    "GC_PAUSE",
    "GRAPHQL_PREPARED",
    "GRAPHQL_REPLAYED",
    "POOL_EXHAUSTED",
    "QUERY_REFUSED",
    "exposition",
    "install_gc_timer",
    "BREAKER_OPEN",
    "CACHE_CORRUPT",
    "CACHE_HITS",
    "CACHE_INVALIDATIONS",
    "CACHE_MISSES",
    "CACHE_REFILLED",
    "CACHE_REFRESHED",
    "STREAM_APPLIED",
    "STREAM_LAG_SECONDS",
    "STREAM_POSITION",
    "STREAM_SINCE_PASS_SECONDS",
    "CACHE_REFRESH_SECONDS",
    "CACHE_STALE_WRITES_REFUSED",
    "INVALIDATION_FAILURES",
    "LOADER_BATCH_SIZE",
    "LOADER_SQL_SECONDS",
    "REDIS_ERRORS",
    "REDIS_ROUND_TRIPS",
    "SQL_STATEMENTS",
]
