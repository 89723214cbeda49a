"""`pricecat migrate`: idempotent DDL for the raw table, its indexes, extensions and the API role.

Safe on a live table: indexes are built with CREATE INDEX CONCURRENTLY (never blocks the scraper's
inserts); an index left INVALID by an interrupted concurrent build is dropped and rebuilt.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from pricecat.config import (
    API_ROLE,
    OPS_SCHEMA,
    PUBLISHED_SCHEMA,
    Settings,
    parse_database_url,
    with_database,
)

log = logging.getLogger(__name__)

RAW_TABLE_DDL = """
create table if not exists public.product_price_snapshots (
    id bigint generated always as identity primary key,
    scraped_at timestamptz not null,
    seller text not null,
    product_code text,
    product_name_original text not null,
    product_name_normalized text not null,
    price numeric(12, 2),
    availability text,
    url text,
    image_url text,
    description text,
    categories text
)
"""

#: (name, definition after "on public.product_price_snapshots")
RAW_INDEXES: list[tuple[str, str]] = [
    (
        "idx_product_price_snapshots_slug_scraped_id",
        "(product_name_normalized, scraped_at, id)",
    ),
    ("idx_product_price_snapshots_scraped_at_desc", "(scraped_at desc)"),
    (
        "idx_product_price_snapshots_slug_seller_scraped",
        "(product_name_normalized, seller, scraped_at)",
    ),
    (
        "idx_product_price_snapshots_name_trgm",
        "using gin (product_name_original public.gin_trgm_ops)",
    ),
    ("idx_product_price_snapshots_code_trgm", "using gin (product_code public.gin_trgm_ops)"),
]

OPS_DDL = f"""
create schema if not exists {OPS_SCHEMA};
create table if not exists {OPS_SCHEMA}.refresh_runs (
    run_id bigint generated always as identity primary key,
    flow_run_id text,
    status text not null default 'running'
        check (status in ('running', 'published', 'failed', 'skipped', 'aborted')),
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


async def _create_index(conn: asyncpg.Connection, name: str, definition: str) -> None:
    valid = await conn.fetchval(
        """
        select i.indisvalid
        from pg_index i
        inner join pg_class c on c.oid = i.indexrelid
        inner join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relname = $1
        """,
        name,
    )
    if valid is False:
        log.warning("index %s is INVALID (interrupted build): rebuilding", name)
        await conn.execute(f"drop index concurrently if exists public.{name}")
    await conn.execute(
        f"create index concurrently if not exists {name} "
        f"on public.product_price_snapshots {definition}"
    )


async def create_raw_table(conn: asyncpg.Connection) -> None:
    await conn.execute("create extension if not exists pg_trgm with schema public")
    await conn.execute("create extension if not exists unaccent with schema public")
    await conn.execute(RAW_TABLE_DDL)


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


async def migrate(settings: Settings, *, indexes: bool = True) -> None:
    await ensure_database(settings)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await create_raw_table(conn)
        await conn.execute(OPS_DDL)
        if indexes:
            for name, definition in RAW_INDEXES:
                await _create_index(conn, name, definition)
            await conn.execute("analyze public.product_price_snapshots")
        await ensure_api_role(conn)
    finally:
        await conn.close()


def run(settings: Settings, *, indexes: bool = True) -> None:
    asyncio.run(migrate(settings, indexes=indexes))
