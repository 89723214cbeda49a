"""Shared helpers for tests: throwaway databases, loading fixture rows, building the marts."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg

from bench.procs import wait_for_port as wait_for_port  # re-exported: tests/conftest.py
from pricecat import migrate
from pricecat.config import API_ROLE, Settings, parse_database_url, with_database, with_user
from pricecat.seed import COLUMNS

RAW_COLUMNS = COLUMNS


def unique_db_name(prefix: str = "pricecat_test") -> str:
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"


def settings_for_database(base: Settings, dbname: str) -> Settings:
    url = with_database(base.database_url, dbname)
    return base.model_copy(
        update={
            "database_url": url,
            "api_database_url": with_user(url, API_ROLE),
            "cache_namespace": f"pricecat:{dbname}",
        }
    )


async def _admin(settings: Settings) -> asyncpg.Connection:
    return await asyncpg.connect(with_database(settings.database_url, "postgres"))


def create_database(settings: Settings) -> None:
    """Create the database named by settings (migrate creates it and the schema + role)."""
    asyncio.run(migrate.migrate(settings, indexes=True))


def drop_database(settings: Settings) -> None:
    async def go() -> None:
        conn = await _admin(settings)
        try:
            name = parse_database_url(settings.database_url).dbname
            quoted = await conn.fetchval("select quote_ident($1)", name)
            await conn.execute(f"drop database if exists {quoted} with (force)")
        finally:
            await conn.close()

    asyncio.run(go())


def load_rows(settings: Settings, rows: Iterable[Mapping[str, Any]]) -> int:
    """Append rows to the raw table in the given order (ids follow that order)."""
    records: Sequence[tuple[Any, ...]] = [tuple(r.get(c) for c in RAW_COLUMNS) for r in rows]

    async def go() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            await conn.copy_records_to_table(
                "product_price_snapshots",
                schema_name="public",
                columns=list(RAW_COLUMNS),
                records=records,
            )
            await conn.execute("analyze public.product_price_snapshots")
        finally:
            await conn.close()

    asyncio.run(go())
    return len(records)


def dbt_build_into(
    settings: Settings, schema: str = "catalog", dbt_vars: Mapping[str, Any] | None = None
) -> None:
    """Plain `dbt build` (seeds, models, tests) straight into `schema`, then grant the API role.

    The refresh flow publishes through a schema swap instead; tests that only need built marts use
    this shortcut (no Prefect start-up).
    """
    from pricecat.dbt import run_dbt

    args = ["build"] if not dbt_vars else ["build", "--vars", json.dumps(dict(dbt_vars))]
    proc = run_dbt(settings, args, schema=schema, capture=True)
    if proc.returncode != 0:
        raise AssertionError(f"dbt build failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}")

    async def grant() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            await migrate.ensure_api_role(conn)
        finally:
            await conn.close()

    asyncio.run(grant())


@contextmanager
def throwaway_database(base: Settings, prefix: str) -> Iterator[Settings]:
    """A new database named after `prefix`, migrated and empty; dropped afterwards unless
    PRICECAT_KEEP_TEST_DB is set."""
    settings = settings_for_database(base, unique_db_name(prefix))
    create_database(settings)
    try:
        yield settings
    finally:
        if not os.environ.get("PRICECAT_KEEP_TEST_DB"):
            drop_database(settings)


@contextmanager
def raw_fixture_database(base: Settings, prefix: str) -> Iterator[Settings]:
    """A throwaway database, migrated, holding the hand-made raw rows (tests/fixtures/snapshots.py)
    and nothing built; dropped afterwards unless PRICECAT_KEEP_TEST_DB is set."""
    from tests.fixtures.snapshots import ROWS

    with throwaway_database(base, prefix) as settings:
        load_rows(settings, ROWS)
        yield settings


def publish_new_build(settings: Settings, schema: str = "catalog") -> int:
    """Give the build in `schema` a new id from the build sequence, as a publish would: the API
    sees a new data generation (the data itself is unchanged). Returns the new id."""

    async def go() -> int:
        conn = await asyncpg.connect(settings.database_url)
        try:
            value = await conn.fetchval(
                f"update {schema}.catalog_build_info "  # noqa: S608 - test-owned constant
                "set previous_build_id = build_id, build_id = nextval('catalog_ops.build_ids') "
                "returning build_id"
            )
            return int(value)
        finally:
            await conn.close()

    return asyncio.run(go())


def fetch(settings: Settings, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


def start_dbt_server(path: Path, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """`pricecat dbt-server --socket path` (pricecat/dbt_server.py) with ``env`` added to this
    environment, its log in ``log``; returns once it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pricecat.cli", "dbt-server", "--socket", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        env={**os.environ, **env},
    )
    deadline = time.monotonic() + 180
    while not path.exists():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the dbt fork server did not come up"
        time.sleep(0.2)
    return proc


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
