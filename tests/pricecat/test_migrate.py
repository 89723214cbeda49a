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


CHILD_INDEX_SQL = """
select c.relname as name, i.indisvalid as is_valid, h.inhparent::regclass::text as parent
from pg_index i
inner join pg_class c on c.oid = i.indexrelid
left join pg_inherits h on h.inhrelid = i.indexrelid
where i.indrelid = $1::regclass and not i.indisprimary
"""


def _children(settings: Settings, partition: str) -> dict[str, tuple[bool, str | None]]:
    return {
        r["name"]: (r["is_valid"], r["parent"])
        for r in helpers.fetch(settings, CHILD_INDEX_SQL, f"public.{partition}")
    }


def test_every_partition_has_the_five_indexes(migrated: Settings) -> None:
    parts = [r["relname"] for r in helpers.fetch(
        migrated,
        "select c.relname from pg_inherits h inner join pg_class c on c.oid = h.inhrelid "
        "where h.inhparent = 'public.product_price_snapshots'::regclass",
    )]
    assert len(parts) == 4  # history, two months ahead, default
    for part in parts:
        children = _children(migrated, part)
        assert sorted(parent or "" for _, parent in children.values()) == sorted(
            EXPECTED_INDEXES
        ), part
        assert all(valid for valid, _ in children.values()), part


def test_invalid_index_is_rebuilt(migrated: Settings) -> None:
    """A partition's index that is INVALID is rebuilt (REINDEX CONCURRENTLY) and stays attached."""
    parent = "idx_product_price_snapshots_scraped_at_desc"
    history = helpers.fetch(
        migrated,
        "select c.relname from pg_inherits h inner join pg_class c on c.oid = h.inhrelid "
        "where h.inhparent = 'public.product_price_snapshots'::regclass "
        "and c.relname like 'product_price_snapshots_before_%'",
    )[0]["relname"]
    child = next(n for n, (_, p) in _children(migrated, history).items() if p == parent)

    async def invalidate() -> None:
        conn = await asyncpg.connect(migrated.database_url)
        try:
            await conn.execute(
                "update pg_index set indisvalid = false where indexrelid = $1::regclass",
                f"public.{child}",
            )
        finally:
            await conn.close()

    asyncio.run(invalidate())
    assert _children(migrated, history)[child] == (False, parent)
    migrate.run(migrated)
    rebuilt = {n: v for n, v in _children(migrated, history).items() if v[1] == parent}
    assert list(rebuilt.values()) == [(True, parent)]


def test_leftover_of_an_interrupted_build_is_dropped_and_rebuilt(base_settings: Settings) -> None:
    """An INVALID, unattached partition index under the name migrate would build is replaced."""
    settings = helpers.settings_for_database(base_settings, helpers.unique_db_name("pricecat_mig"))
    migrate.run(settings, indexes=False)
    try:
        part = helpers.fetch(
            settings,
            "select c.relname from pg_inherits h inner join pg_class c on c.oid = h.inhrelid "
            "where h.inhparent = 'public.product_price_snapshots'::regclass order by 1 limit 1",
        )[0]["relname"]
        leftover = f"{part}_scraped_at_desc"
        helpers.fetch(settings, f"create index {leftover} on public.{part} (scraped_at desc)")
        helpers.fetch(
            settings,
            "update pg_index set indisvalid = false where indexrelid = $1::regclass",
            f"public.{leftover}",
        )
        migrate.run(settings)
        assert _children(settings, part)[leftover] == (
            True, "idx_product_price_snapshots_scraped_at_desc"
        )
    finally:
        helpers.drop_database(settings)


def test_index_build_progress_goes_to_stderr(base_settings: Settings,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    settings = helpers.settings_for_database(base_settings, helpers.unique_db_name("pricecat_mig"))
    migrate.run(settings, indexes=False)
    try:
        capsys.readouterr()
        migrate.run(settings, progress_interval=0.01)
        err = capsys.readouterr().err
        # 5 indexes x 4 partitions, each announced and timed
        assert err.count("migrate: building product_price_snapshots_") == 20, err
        assert err.count("migrate: built product_price_snapshots_") == 20, err
    finally:
        helpers.drop_database(settings)


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
