"""The refresh's run log and lock: the advisory lock that serializes refreshes, the
`catalog_ops.refresh_runs` row of each run, the published build id and the mart row counts."""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg
from prefect import get_run_logger, task

from flows.db import connect
from flows.retry import RETRY_DELAYS, TASK_OPTIONS
from pricecat import migrate
from pricecat.config import API_ROLE, OPS_SCHEMA, PUBLISHED_SCHEMA, Settings
from pricecat.generation import read_generation

#: Key of the session-level advisory lock that serializes refreshes of one database (advisory
#: locks are per database). Visible in pg_locks as locktype 'advisory', objid 1_902_210_227.
REFRESH_LOCK_KEY = 1_902_210_227
#: The published relations whose row counts go into the run log (`mart_rows`), the run's
#: artifact and the API's /metrics: the read models, the deals marts,
#: catalog_quarantined_snapshots (raw rows left out of the read models for breaking a row-level
#: rule, see docs/OPERATIONS.md) and int_price_snapshots_arrived (the raw rows the build took in
#: as new; on a full rebuild the ids above max(id) - snapshot_id_overlap, which the snapshot
#: ledger records).
QUARANTINE = "catalog_quarantined_snapshots"
ARRIVED = "int_price_snapshots_arrived"
DEALS_MARTS = ("catalog_slug_seller_deals", "catalog_slug_market_lows", "catalog_deal_events")
MARTS = ("catalog_slug_summary", "catalog_slug_seller_summary", *DEALS_MARTS, QUARANTINE, ARRIVED)

log = logging.getLogger(__name__)


@task(name="acquire-lock", retries=3, retry_delay_seconds=RETRY_DELAYS, **TASK_OPTIONS)
async def acquire_lock(settings: Settings) -> asyncpg.Connection | None:
    """A dedicated connection holding the refresh lock, or None when another run holds it."""
    conn = await connect(settings)
    try:
        got = await conn.fetchval("select pg_try_advisory_lock($1::bigint)", REFRESH_LOCK_KEY)
    except BaseException:
        await conn.close()
        raise
    if not got:
        await conn.close()
        return None
    return conn


async def release_lock(conn: asyncpg.Connection) -> None:
    try:
        await conn.fetchval("select pg_advisory_unlock($1::bigint)", REFRESH_LOCK_KEY)
    except Exception as exc:  # closing the session releases it anyway
        log.warning("could not release the refresh lock explicitly: %s", exc)
    finally:
        await conn.close()


async def _ensure_ops_table(conn: asyncpg.Connection) -> None:
    """Run migrate.OPS_DDL when the run log lacks a later column or the 'noop' status."""
    current = await conn.fetchval(
        """
        select count(*) = 2
            and exists (
                select from pg_constraint
                where conname = 'refresh_runs_status_check'
                    and pg_get_constraintdef(oid) like '%noop%'
            )
        from information_schema.columns
        where table_schema = $1 and table_name = 'refresh_runs'
            and column_name in ('mart_rows', 'generation')
        """,
        OPS_SCHEMA,
    )
    if not current:
        await conn.execute(migrate.OPS_DDL)
        if await conn.fetchval("select 1 from pg_roles where rolname = $1", API_ROLE):
            await conn.execute(f"grant usage on schema {OPS_SCHEMA} to {API_ROLE}")
            await conn.execute(f"grant select on {OPS_SCHEMA}.refresh_runs to {API_ROLE}")


#: rows older than the kept days go, except the two the flow and /metrics read: the newest
#: published run (its build and row counts) and the newest run that built (changes.py)
PRUNE_SQL = f"""
delete from {OPS_SCHEMA}.refresh_runs
where
    started_at < now() - make_interval(days => $1)
    and status <> 'running'
    and run_id not in (
        select coalesce(max(r.run_id) filter (where r.status = 'published'), 0)
        from {OPS_SCHEMA}.refresh_runs as r
        union all
        select
            coalesce(max(r.run_id) filter (where r.status in ('published', 'failed', 'aborted')), 0)
        from {OPS_SCHEMA}.refresh_runs as r
    )
"""  # noqa: S608 (constant schema name)


@task(name="start-run-log", retries=3, retry_delay_seconds=RETRY_DELAYS, **TASK_OPTIONS)
async def start_run_log(settings: Settings, flow_run_id: str | None, status: str) -> int:
    """Insert this run's refresh_runs row; a 'running' run also marks dead runs as aborted."""
    conn = await connect(settings)
    try:
        await _ensure_ops_table(conn)
        if status == "running":
            # we hold the lock: any other 'running' row belongs to a killed process
            aborted = await conn.execute(
                f"""
                update {OPS_SCHEMA}.refresh_runs
                set status = 'aborted', finished_at = now(),
                    error = coalesce(error, 'process ended without finishing the run')
                where status = 'running'
                """  # noqa: S608 (constant schema name)
            )
            if aborted != "UPDATE 0":
                get_run_logger().warning("marked leftover 'running' rows as aborted (%s)", aborted)
        await conn.execute(PRUNE_SQL, settings.refresh_runs_keep_days)
        run_id: int = await conn.fetchval(
            f"""
            insert into {OPS_SCHEMA}.refresh_runs (flow_run_id, status, finished_at, error)
            values ($1, $2, case when $2 = 'running' then null else now() end, $3)
            returning run_id
            """,  # noqa: S608 (constant schema name)
            flow_run_id,
            status,
            "another refresh holds the lock" if status == "skipped" else None,
        )
        return run_id
    finally:
        await conn.close()


@task(name="read-generation", retries=3, retry_delay_seconds=RETRY_DELAYS, **TASK_OPTIONS)
async def published_generation(settings: Settings) -> int:
    """The build id now published: the data generation the API keys its caches by."""
    conn = await connect(settings)
    try:
        generation = await read_generation(conn)
    finally:
        await conn.close()
    get_run_logger().info("published build (data generation) %s", generation)
    return generation


@task(name="count-mart-rows", retries=3, retry_delay_seconds=RETRY_DELAYS, **TASK_OPTIONS)
async def count_mart_rows(settings: Settings) -> dict[str, int]:
    conn = await connect(settings)
    try:
        counts: dict[str, int] = {}
        for mart in MARTS:
            exists = await conn.fetchval(
                "select to_regclass($1) is not null", f"{PUBLISHED_SCHEMA}.{mart}"
            )
            if exists:
                counts[mart] = await conn.fetchval(
                    f"select count(*) from {PUBLISHED_SCHEMA}.{mart}"  # noqa: S608 (constant)
                )
        return counts
    finally:
        await conn.close()


#: The published build and the row counts of the refresh run that published it (NULL when the
#: last published run published another build, e.g. one built outside the flow).
PUBLISHED_BUILD_SQL = f"""
select
    b.build_id,
    case when r.generation = b.build_id then r.mart_rows::text end as mart_rows
from {PUBLISHED_SCHEMA}.catalog_build_info as b
left join lateral (
    select runs.generation, runs.mart_rows
    from {OPS_SCHEMA}.refresh_runs as runs
    where runs.status = 'published'
    order by runs.started_at desc
    limit 1
) as r on true
"""  # noqa: S608 (constant schema names)


async def published_build(settings: Settings) -> tuple[int | None, dict[str, int]]:
    """(build id now published, its relations' row counts as its refresh run recorded them):
    one query, for the report of a run that published nothing (noop, failed). (None, {}) when
    nothing is published."""
    conn = await connect(settings)
    try:
        if not await conn.fetchval(
            "select to_regclass($1) is not null", f"{PUBLISHED_SCHEMA}.catalog_build_info"
        ):
            return None, {}
        row = await conn.fetchrow(PUBLISHED_BUILD_SQL)
    finally:
        await conn.close()
    if row is None:
        return None, {}
    return int(row["build_id"]), json.loads(row["mart_rows"]) if row["mart_rows"] else {}


@task(name="finish-run-log", retries=3, retry_delay_seconds=RETRY_DELAYS, **TASK_OPTIONS)
async def finish_run_log(settings: Settings, run_id: int, fields: dict[str, Any]) -> None:
    """Update this run's refresh_runs row (status, timings, rows, error...)."""
    allowed = {
        "status", "duration_seconds", "source_max_scraped_at", "source_age_seconds",
        "freshness_status", "slug_rows", "slug_seller_rows", "timings", "error", "mart_rows",
        "generation",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown refresh_runs columns: {sorted(unknown)}")
    names = sorted(fields)
    values = [
        json.dumps(fields[n]) if n in ("timings", "mart_rows") else fields[n] for n in names
    ]
    assignments = ", ".join(
        f"{n} = ${i + 2}" + ("::jsonb" if n in ("timings", "mart_rows") else "")
        for i, n in enumerate(names)
    )
    conn = await connect(settings)
    try:
        await conn.execute(
            f"update {OPS_SCHEMA}.refresh_runs set finished_at = now(), {assignments} "  # noqa: S608
            "where run_id = $1",
            run_id,
            *values,
        )
    finally:
        await conn.close()


