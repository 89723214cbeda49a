"""Publishing a build: the swap of `catalog_build` in as `catalog` in one short transaction, and
the cleanup of the schemas earlier runs left behind."""

from __future__ import annotations

import asyncpg
from prefect import get_run_logger, task

from flows.db import connect
from flows.retry import RETRY_DELAYS, TASK_OPTIONS, RefreshError
from pricecat.config import API_ROLE, BUILD_SCHEMA, PUBLISHED_SCHEMA, Settings

OLD_SCHEMA_PREFIX = f"{PUBLISHED_SCHEMA}_old_"

#: The publish transaction gives up (and retries) after waiting this long for a lock.
PUBLISH_LOCK_TIMEOUT = "2s"
#: Dropping the old schema waits at most this long behind readers still on the old tables.
DROP_LOCK_TIMEOUT = "1s"
#: A run that takes longer than this is cancelled (and releases the lock).


@task(name="cleanup-leftovers", retries=3, retry_delay_seconds=RETRY_DELAYS, **TASK_OPTIONS)
async def cleanup_leftovers(settings: Settings) -> list[str]:
    """Drop `catalog_build` (left by killed runs) and every `catalog_old_*` but the newest (the
    schema the last publish replaced: replicas may still be reading it)."""
    logger = get_run_logger()
    conn = await connect(settings)
    dropped: list[str] = []
    try:
        names = await conn.fetch(
            """
            select nspname from pg_namespace
            where nspname = $1 or starts_with(nspname, $2)
            order by nspname
            """,
            BUILD_SCHEMA,
            OLD_SCHEMA_PREFIX,
        )
        old = [r for r in names if r["nspname"] != BUILD_SCHEMA]  # oldest first (stamped names)
        if old:
            names = [r for r in names if r is not old[-1]]
        for record in names:
            name: str = record["nspname"]
            try:
                await drop_schema(conn, name)
                dropped.append(name)
            except asyncpg.LockNotAvailableError:
                logger.warning("schema %s is still in use; a later run drops it", name)
        if dropped:
            logger.info("dropped leftover schemas: %s", ", ".join(dropped))
        return dropped
    finally:
        await conn.close()


async def drop_schema(conn: asyncpg.Connection, name: str) -> None:
    quoted = await conn.fetchval("select quote_ident($1)", name)
    async with conn.transaction():
        await conn.execute("select set_config('lock_timeout', $1, true)", DROP_LOCK_TIMEOUT)
        await conn.execute(f"drop schema if exists {quoted} cascade")



@task(
    name="publish",
    retries=4,
    retry_delay_seconds=[1.0, 2.0, 4.0, 8.0],
    retry_jitter_factor=0.5,
    **TASK_OPTIONS,
)
async def publish(settings: Settings, stamp: str) -> str | None:
    """Swap `catalog_build` in as `catalog` in one short transaction. Returns the old schema."""
    logger = get_run_logger()
    old_name = f"{OLD_SCHEMA_PREFIX}{stamp}"
    conn = await connect(settings)
    try:
        async with conn.transaction():
            await conn.execute("select set_config('lock_timeout', $1, true)", PUBLISH_LOCK_TIMEOUT)
            exists = await conn.fetch(
                "select nspname from pg_namespace where nspname = any($1::text[])",
                [PUBLISHED_SCHEMA, BUILD_SCHEMA],
            )
            present = {r["nspname"] for r in exists}
            if BUILD_SCHEMA not in present:
                raise RefreshError(f"schema {BUILD_SCHEMA} vanished before publish")
            has_role = await conn.fetchval("select 1 from pg_roles where rolname = $1", API_ROLE)
            if has_role:
                await conn.execute(f"grant usage on schema {BUILD_SCHEMA} to {API_ROLE}")
                await conn.execute(
                    f"grant select on all tables in schema {BUILD_SCHEMA} to {API_ROLE}"
                )
            else:
                logger.warning("role %s is missing (run `pricecat migrate`)", API_ROLE)
            if PUBLISHED_SCHEMA in present:
                await conn.execute(f"alter schema {PUBLISHED_SCHEMA} rename to {old_name}")
            await conn.execute(f"alter schema {BUILD_SCHEMA} rename to {PUBLISHED_SCHEMA}")
    finally:
        await conn.close()
    logger.info("published: %s is now %s", BUILD_SCHEMA, PUBLISHED_SCHEMA)
    return old_name if PUBLISHED_SCHEMA in present else None

