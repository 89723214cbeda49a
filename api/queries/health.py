"""Readiness, data age and the refresh's outcome: read_models.sql, data_age.sql,
replication.sql, quarantined.sql, refresh_runs.sql, published_build.sql."""

from __future__ import annotations

import json

from api.db import Database
from api.encoding import timestamp
from api.queries import JsonObject, load_sql
from pricecat.generation import GENERATION_SQL

READ_MODELS_SQL = load_sql("read_models")
DATA_AGE_SQL = load_sql("data_age")
QUARANTINED_SQL = load_sql("quarantined")
REPLICATION_SQL = load_sql("replication")
REFRESH_RUNS_SQL = load_sql("refresh_runs")
PUBLISHED_BUILD_SQL = load_sql("published_build")


async def missing_read_models(db: Database) -> list[str]:
    rows = await db.fetch("read_models", READ_MODELS_SQL)
    return [r["relation"] for r in rows if not r["is_present"]]


async def data_age(db: Database) -> JsonObject:
    """{"data_as_of", "published_at", "age_seconds"} (/readyz: api.schemas.Ready)."""
    r = await db.fetchrow("data_age", DATA_AGE_SQL)
    if r is None:  # pragma: no cover - the query always returns one row
        return dict(data_as_of=None, published_at=None, age_seconds=None)
    age = r["age_seconds"]
    return dict(
        data_as_of=timestamp(r["data_as_of"]),
        published_at=timestamp(r["published_at"]),
        age_seconds=None if age is None else round(float(age), 3),
    )


async def generation(db: Database) -> tuple[int, int | None]:
    """(published build id, the build it replaced) from catalog_build_info."""
    row = await db.fetchrow("generation", GENERATION_SQL)
    if row is None:
        return 0, None
    previous = row["previous_build_id"]
    return int(row["build_id"]), None if previous is None else int(previous)


async def quarantined_rows(db: Database) -> int:
    """Raw rows the published build left out (catalog_quarantined_snapshots)."""
    return int(await db.fetchval("quarantined", QUARANTINED_SQL))


async def replication(db: Database) -> JsonObject:
    """{"role": 'primary' or 'replica', "replay_lag_seconds": the replica's replay lag (0 when
    caught up)} (/readyz: api.schemas.Ready)."""
    r = await db.fetchrow("replication", REPLICATION_SQL)
    if r is None:  # pragma: no cover - the query always returns one row
        return dict(role="primary", replay_lag_seconds=0.0)
    return dict(
        role="replica" if r["is_replica"] else "primary",
        replay_lag_seconds=round(float(r["replay_lag_seconds"]), 3),
    )


async def refresh_runs(db: Database) -> JsonObject:
    """The last finished refresh run (published, noop, failed or aborted) and the row counts of
    the last published one: {"status", "finished_at_epoch", "duration_seconds",
    "published_generation", "published_rows": {relation: rows}}; None where there is no run."""
    r = await db.fetchrow("refresh_runs", REFRESH_RUNS_SQL)
    if r is None:  # pragma: no cover - the query always returns one row
        return dict(status=None, finished_at_epoch=None, duration_seconds=None,
                    published_generation=None, published_rows={})
    rows = r["published_mart_rows"]
    return dict(
        status=r["status"],
        finished_at_epoch=r["finished_at_epoch"],
        duration_seconds=r["duration_seconds"],
        published_generation=r["published_generation"],
        published_rows={str(k): int(v) for k, v in json.loads(rows).items()} if rows else {},
    )


async def published_build(db: Database) -> tuple[int, float] | None:
    """(published build id, seconds since it was built); None when catalog_build_info is empty."""
    r = await db.fetchrow("published_build", PUBLISHED_BUILD_SQL)
    if r is None:
        return None
    return int(r["build_id"]), float(r["age_seconds"])
