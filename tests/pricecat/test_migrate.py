"""`pricecat migrate`: idempotent DDL, valid named indexes, extensions, a read-only API role."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest

from pricecat import migrate
from pricecat.config import API_ROLE, Settings
from tests import helpers
from tests.pricecat._util import run_seed

EXPECTED_INDEXES = {
    "idx_product_price_snapshots_slug_scraped_id": (
        "(product_name_normalized, scraped_at, id)"
    ),
    "idx_product_price_snapshots_scraped_at_desc": "(scraped_at DESC)",
    "idx_product_price_snapshots_slug_seller_scraped": (
        "(product_name_normalized, seller, scraped_at)"
    ),
    "idx_product_price_snapshots_name_trgm": "USING gin (product_name_original gin_trgm_ops)",
    "idx_product_price_snapshots_code_trgm": "USING gin (product_code gin_trgm_ops)",
}

INDEX_SQL = """
select c.relname as name, i.indisvalid as is_valid, i.indisready as is_ready,
       pg_get_indexdef(i.indexrelid) as definition
from pg_index i
inner join pg_class c on c.oid = i.indexrelid
where i.indrelid = 'public.product_price_snapshots'::regclass and not i.indisprimary
"""


@pytest.fixture(scope="module")
def migrated(base_settings: Settings) -> Iterator[Settings]:
    settings = helpers.settings_for_database(base_settings, helpers.unique_db_name("pricecat_mig"))
    # first run creates the database itself (it does not exist yet)
    migrate.run(settings)
    try:
        # a few rows so the grants are checked against real data
        assert run_seed(settings, rows=2_000, slugs=50) == 0
        migrate.run(settings)  # second run on a populated table: a no-op
        migrate.run(settings, indexes=False)
        yield settings
    finally:
        helpers.drop_database(settings)


def test_idempotent_and_all_indexes_valid(migrated: Settings) -> None:
    migrate.run(migrated)  # once more
    rows = helpers.fetch(migrated, INDEX_SQL)
    found = {r["name"]: r for r in rows}
    assert set(found) == set(EXPECTED_INDEXES)
    for name, columns in EXPECTED_INDEXES.items():
        assert found[name]["is_valid"] is True, name
        assert found[name]["is_ready"] is True, name
        assert found[name]["definition"].endswith(columns), found[name]["definition"]
    assert helpers.fetch(migrated, "select count(*) as n from public.product_price_snapshots")[0][
        "n"
    ] == 2_000


def test_extensions(migrated: Settings) -> None:
    rows = helpers.fetch(
        migrated,
        """
        select e.extname, n.nspname
        from pg_extension e inner join pg_namespace n on n.oid = e.extnamespace
        """,
    )
    found = {r["extname"]: r["nspname"] for r in rows}
    assert found.get("pg_trgm") == "public"
    assert found.get("unaccent") == "public"
    assert helpers.fetch(migrated, "select public.unaccent('Předobjednávka') as v")[0]["v"] == (
        "Predobjednavka"
    )


def test_invalid_index_is_rebuilt(migrated: Settings) -> None:
    """An index left INVALID (an interrupted concurrent build) is dropped and built again."""
    name = "idx_product_price_snapshots_scraped_at_desc"

    async def invalidate() -> None:
        conn = await asyncpg.connect(migrated.database_url)
        try:
            await conn.execute(
                "update pg_index set indisvalid = false where indexrelid = $1::regclass",
                f"public.{name}",
            )
        finally:
            await conn.close()

    asyncio.run(invalidate())
    assert {r["name"]: r["is_valid"] for r in helpers.fetch(migrated, INDEX_SQL)}[name] is False
    migrate.run(migrated)
    assert {r["name"]: r["is_valid"] for r in helpers.fetch(migrated, INDEX_SQL)}[name] is True


def test_no_indexes_flag_creates_only_the_table(base_settings: Settings) -> None:
    settings = helpers.settings_for_database(base_settings, helpers.unique_db_name("pricecat_mig"))
    migrate.run(settings, indexes=False)
    try:
        assert helpers.fetch(settings, INDEX_SQL) == []
        assert helpers.fetch(
            settings, "select count(*) as n from public.product_price_snapshots"
        )[0]["n"] == 0
    finally:
        helpers.drop_database(settings)


async def _as_api(settings: Settings, sql: str) -> object:
    conn = await asyncpg.connect(settings.api_database_url)
    try:
        user = await conn.fetchval("select current_user")
        assert user == API_ROLE
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def test_api_role_can_select(migrated: Settings) -> None:
    assert migrated.api_database_url.startswith(f"postgresql://{API_ROLE}@")
    count = asyncio.run(_as_api(migrated, "select count(*) from public.product_price_snapshots"))
    assert count == 2_000
    runs = asyncio.run(_as_api(migrated, "select count(*) from catalog_ops.refresh_runs"))
    assert runs == 0


@pytest.mark.parametrize(
    "sql",
    [
        "insert into public.product_price_snapshots (scraped_at, seller, product_name_original, "
        "product_name_normalized) values (now(), 'x', 'x', 'x')",
        "update public.product_price_snapshots set price = 1 where id = 1",
        "delete from public.product_price_snapshots where id = 1",
        "truncate public.product_price_snapshots",
        "create table public.api_was_here (id int)",
        "create schema api_was_here",
        "insert into catalog_ops.refresh_runs (status) values ('running')",
    ],
)
def test_api_role_cannot_write(migrated: Settings, sql: str) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        asyncio.run(_as_api(migrated, sql))
    # nothing changed
    assert helpers.fetch(migrated, "select count(*) as n from public.product_price_snapshots")[0][
        "n"
    ] == 2_000
