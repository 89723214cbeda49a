"""`pricecat migrate`: idempotent DDL for the raw table, its indexes, extensions and the API role.

Safe on a live table: the raw table is monthly-partitioned by `scraped_at` (a plain table from
before is converted online, see `pricecat.partitions`); indexes are built per partition with
CREATE INDEX CONCURRENTLY (never blocks the scraper's inserts), their progress printed to stderr;
an index left INVALID by an interrupted concurrent build is dropped and rebuilt.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from datetime import datetime

import asyncpg

from pricecat import partitions
from pricecat.config import (
    API_ROLE,
    OPS_SCHEMA,
    PUBLISHED_SCHEMA,
    Settings,
    parse_database_url,
    with_database,
)

log = logging.getLogger(__name__)

#: kept here for callers that read them from `pricecat.migrate`
RAW_INDEXES = partitions.RAW_INDEXES

#: how often the index build's progress is printed to stderr
PROGRESS_INTERVAL = 5.0

OPS_DDL = f"""
create schema if not exists {OPS_SCHEMA};
create table if not exists {OPS_SCHEMA}.refresh_runs (
    run_id bigint generated always as identity primary key,
    flow_run_id text,
    status text not null default 'running'
        check (status in ('running', 'published', 'failed', 'skipped', 'aborted', 'noop')),
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    duration_seconds numeric(10, 3),
    source_max_scraped_at timestamptz,
    source_age_seconds numeric(12, 3),
    freshness_status text,
    slug_rows bigint,
    slug_seller_rows bigint,
    timings jsonb not null default '{{}}'::jsonb,
    error text
);
-- columns added after the first release (create table if not exists does not add them)
alter table {OPS_SCHEMA}.refresh_runs add column if not exists mart_rows jsonb;
alter table {OPS_SCHEMA}.refresh_runs add column if not exists generation bigint;
-- 'noop': a run that found no new raw rows and published nothing (added after the first release)
alter table {OPS_SCHEMA}.refresh_runs drop constraint if exists refresh_runs_status_check;
alter table {OPS_SCHEMA}.refresh_runs add constraint refresh_runs_status_check
    check (status in ('running', 'published', 'failed', 'skipped', 'aborted', 'noop'));
create index if not exists refresh_runs_started_at_idx
    on {OPS_SCHEMA}.refresh_runs (started_at desc);
"""


async def ensure_database(settings: Settings) -> None:
    """Create the target database if it does not exist yet."""
    pg = parse_database_url(settings.database_url)
    try:
        conn = await asyncpg.connect(settings.database_url)
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(with_database(settings.database_url, "postgres"))
        try:
            exists = await admin.fetchval("select 1 from pg_database where datname = $1", pg.dbname)
            if not exists:
                # identifiers cannot be bound as parameters; quote it properly instead
                quoted = await admin.fetchval("select quote_ident($1)", pg.dbname)
                await admin.execute(f"create database {quoted}")
                log.info("created database %s", pg.dbname)
        finally:
            await admin.close()
    else:
        await conn.close()


async def _index(conn: asyncpg.Connection, name: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        """
        select c.oid, i.indisvalid
        from pg_index i
        inner join pg_class c on c.oid = i.indexrelid
        inner join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relname = $1
        """,
        name,
    )
    return row


PROGRESS_SQL = """
select phase, blocks_done, blocks_total, tuples_done, tuples_total
from pg_stat_progress_create_index
where pid = $1
"""


def _say(message: str) -> None:
    print(f"migrate: {message}", file=sys.stderr, flush=True)


async def build_with_progress(conn: asyncpg.Connection, sql: str, label: str,
                              watch: asyncpg.Connection | None,
                              interval: float = PROGRESS_INTERVAL) -> float:
    """Run one (concurrent) index build on `conn`; every `interval` seconds print its phase and
    blocks/tuples done from `pg_stat_progress_create_index`, read on the second connection
    `watch`, to stderr. Returns the build's seconds."""
    pid = conn.get_server_pid()
    started = time.monotonic()
    _say(f"building {label}")
    build = asyncio.ensure_future(conn.execute(sql))
    try:
        while True:
            done, _ = await asyncio.wait({build}, timeout=interval)
            if done:
                break
            if watch is None:
                continue
            row = await watch.fetchrow(PROGRESS_SQL, pid)
            if row is None:
                continue
            parts = [f"{label}: {row['phase']}"]
            if row["blocks_total"]:
                pct = 100.0 * row["blocks_done"] / row["blocks_total"]
                parts.append(f"blocks {row['blocks_done']:,}/{row['blocks_total']:,} ({pct:.0f}%)")
            if row["tuples_total"]:
                parts.append(f"tuples {row['tuples_done']:,}/{row['tuples_total']:,}")
            parts.append(f"{time.monotonic() - started:.0f} s")
            _say(", ".join(parts))
        await build
    except BaseException:
        build.cancel()
        raise
    seconds = time.monotonic() - started
    _say(f"built {label} in {seconds:.1f} s")
    return seconds


async def ensure_raw_indexes(conn: asyncpg.Connection, *, watch: asyncpg.Connection | None = None,
                             interval: float = PROGRESS_INTERVAL) -> list[str]:
    """The five raw indexes on the partitioned parent and on every partition.

    For each: `CREATE INDEX ... ON ONLY` the parent (catalog only, INVALID while a partition lacks
    it), then per partition without it `CREATE INDEX CONCURRENTLY` (never blocks the scraper) and
    `ALTER INDEX ... ATTACH PARTITION` (the parent index turns valid once every partition has
    one). A partition index left INVALID by an interrupted build is dropped and rebuilt; an
    attached one that is INVALID is rebuilt with REINDEX CONCURRENTLY. Returns the indexes built.
    """
    built: list[str] = []
    parts = [p.name for p in await partitions.list_partitions(conn)]
    for name, definition in RAW_INDEXES:
        if await _index(conn, name) is None:
            await partitions.run_locked(conn, f"create index {name}", [
                f"create index if not exists {name} on only {partitions.PARENT} {definition}"
            ])
        for part in parts:
            child = await conn.fetchrow(
                """
                select c.relname, i.indisvalid
                from pg_inherits h
                inner join pg_class c on c.oid = h.inhrelid
                inner join pg_index i on i.indexrelid = c.oid
                where h.inhparent = $1::regclass and i.indrelid = $2::regclass
                """,
                f"public.{name}",
                f"public.{part}",
            )
            if child is not None:
                if not child["indisvalid"]:
                    log.warning("index %s is INVALID: rebuilding", child["relname"])
                    await build_with_progress(
                        conn, f"reindex index concurrently public.{child['relname']}",
                        f"{child['relname']} (reindex)", watch, interval,
                    )
                    built.append(child["relname"])
                continue
            index = partitions.partition_index_name(part, name)
            existing = await _index(conn, index)
            if existing is not None and not existing["indisvalid"]:
                log.warning("index %s is INVALID (interrupted build): rebuilding", index)
                await conn.execute(f"drop index concurrently if exists public.{index}")
                existing = None
            if existing is None:
                await build_with_progress(
                    conn,
                    f"create index concurrently if not exists {index} on public.{part} "
                    f"{definition}",
                    index, watch, interval,
                )
                built.append(index)
            await partitions.run_locked(conn, f"attach index {index}", [
                f"alter index public.{name} attach partition public.{index}"
            ])
    return built


async def create_raw_table(conn: asyncpg.Connection, *, now: datetime | None = None) -> None:
    """Extensions, and the partitioned raw table when there is none (a plain table from before
    partitioning is left as it is: `migrate` converts it)."""
    await conn.execute("create extension if not exists pg_trgm with schema public")
    await conn.execute("create extension if not exists unaccent with schema public")
    if await partitions.table_kind(conn) is None:
        await partitions.create_partitioned_table(conn, now=now)


async def ensure_api_role(conn: asyncpg.Connection) -> None:
    """The API's role: LOGIN, SELECT on the raw table and the read models, nothing else."""
    await conn.execute(
        f"""
        do $$
        begin
            if not exists (select 1 from pg_roles where rolname = '{API_ROLE}') then
                create role {API_ROLE} login nosuperuser nocreatedb nocreaterole noinherit;
            end if;
        end
        $$
        """  # noqa: S608 (API_ROLE is a constant)
    )
    dbname = await conn.fetchval("select quote_ident(current_database())")
    await conn.execute("revoke create on schema public from public")
    await conn.execute(f"grant connect on database {dbname} to {API_ROLE}")
    await conn.execute(f"grant usage on schema public to {API_ROLE}")
    await conn.execute(f"grant select on public.product_price_snapshots to {API_ROLE}")
    await conn.execute(f"grant usage on schema {OPS_SCHEMA} to {API_ROLE}")
    await conn.execute(f"grant select on all tables in schema {OPS_SCHEMA} to {API_ROLE}")
    has_catalog = await conn.fetchval(
        "select 1 from pg_namespace where nspname = $1", PUBLISHED_SCHEMA
    )
    if has_catalog:
        await conn.execute(f"grant usage on schema {PUBLISHED_SCHEMA} to {API_ROLE}")
        await conn.execute(f"grant select on all tables in schema {PUBLISHED_SCHEMA} to {API_ROLE}")


async def migrate(settings: Settings, *, indexes: bool = True, now: datetime | None = None,
                  months_ahead: int = partitions.MONTHS_AHEAD,
                  progress_interval: float = PROGRESS_INTERVAL) -> None:
    """Extensions; the raw table (created partitioned, or a plain one converted online); the
    months ahead; the ops table; the raw indexes on every partition (with progress on stderr);
    the API role. Running it again changes nothing."""
    await ensure_database(settings)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await create_raw_table(conn, now=now)
        if await partitions.table_kind(conn) == "r":
            _say("converting public.product_price_snapshots to monthly partitions")
            report = await partitions.convert_to_partitioned(
                conn, now=now, months_ahead=months_ahead
            )
            _say(f"converted: {report.history_partition} holds everything before "
                 f"{report.cutoff:%Y-%m-%d}; writers were locked out for "
                 f"{report.swap_seconds:.3f} s")
        created = await partitions.ensure_partitions(conn, months_ahead, now=now)
        if created:
            _say(f"created partitions {', '.join(created)}")
        await conn.execute(OPS_DDL)
        if indexes:
            watch = await asyncpg.connect(settings.database_url)
            try:
                await ensure_raw_indexes(conn, watch=watch, interval=progress_interval)
            finally:
                await watch.close()
            await conn.execute("analyze public.product_price_snapshots")
        await ensure_api_role(conn)
    finally:
        await conn.close()


def run(settings: Settings, *, indexes: bool = True, now: datetime | None = None,
        months_ahead: int = partitions.MONTHS_AHEAD,
        progress_interval: float = PROGRESS_INTERVAL) -> None:
    asyncio.run(migrate(settings, indexes=indexes, now=now, months_ahead=months_ahead,
                        progress_interval=progress_interval))
