"""Monthly partitions of the raw table: a fresh layout, months ahead, DEFAULT, the online conversion
of a plain table (no row rewritten, ATTACH without a scan, ids continue), idempotence, seed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg
import pytest

from pricecat import migrate, partitions
from pricecat.config import API_ROLE, Settings
from tests import helpers
from tests.pricecat._util import CHECKSUM_SQL, fetchval, run_seed

#: run_seed's newest scrape is 2025-03-01 12:00 UTC; "now" for migrate is pinned next to it
NOW = datetime(2025, 3, 10, tzinfo=UTC)

PARTITIONS_SQL = """
select c.relname as name, pg_get_expr(c.relpartbound, c.oid) as bound
from pg_inherits h inner join pg_class c on c.oid = h.inhrelid
where h.inhparent = 'public.product_price_snapshots'::regclass
order by 1
"""
#: the layout a migrate pinned at NOW must produce (bounds rendered in UTC)
EXPECTED_LAYOUT = {
    "product_price_snapshots_before_2025_04":
        "FOR VALUES FROM (MINVALUE) TO ('2025-04-01 00:00:00+00')",
    "product_price_snapshots_p2025_04":
        "FOR VALUES FROM ('2025-04-01 00:00:00+00') TO ('2025-05-01 00:00:00+00')",
    "product_price_snapshots_p2025_05":
        "FOR VALUES FROM ('2025-05-01 00:00:00+00') TO ('2025-06-01 00:00:00+00')",
    "product_price_snapshots_default": "DEFAULT",
}
INSERT_SQL = """
insert into public.product_price_snapshots
    (scraped_at, seller, product_name_original, product_name_normalized, price)
values ($1, 'test-seller', 'Test Game', 'test-game', 9.99)
returning id, tableoid::regclass::text as partition
"""


def layout(settings: Settings) -> dict[str, str]:
    async def go() -> dict[str, str]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            await conn.execute("set timezone = 'UTC'")
            return {r["name"]: r["bound"] for r in await conn.fetch(PARTITIONS_SQL)}
        finally:
            await conn.close()

    return asyncio.run(go())


def create_legacy_table(settings: Settings, *, indexes: bool) -> None:
    """The raw table as `pricecat migrate` left it before partitioning."""

    async def go() -> None:
        await migrate.ensure_database(settings)
        conn = await asyncpg.connect(settings.database_url)
        try:
            await conn.execute("create extension if not exists pg_trgm with schema public")
            await conn.execute("create extension if not exists unaccent with schema public")
            await conn.execute(partitions.LEGACY_TABLE_DDL)
            if indexes:
                for name, definition in partitions.RAW_INDEXES:
                    await conn.execute(
                        f"create index {name} on public.product_price_snapshots {definition}"
                    )
        finally:
            await conn.close()

    asyncio.run(go())


def relfilenodes(settings: Settings) -> dict[str, int]:
    rows = helpers.fetch(
        settings,
        """
        select c.relname, c.relfilenode
        from pg_class c inner join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'i')
            and (c.relname like 'product_price_snapshots%'
                or c.relname like 'idx_product_price_snapshots%')
        """,
    )
    return {r["relname"]: r["relfilenode"] for r in rows}


def insert(settings: Settings, scraped_at: datetime) -> tuple[int, str]:
    row = helpers.fetch(settings, INSERT_SQL, scraped_at)[0]
    return row["id"], row["partition"]


@pytest.fixture()
def scratch(base_settings: Settings) -> Iterator[Settings]:
    settings = helpers.settings_for_database(base_settings, helpers.unique_db_name("pricecat_part"))
    try:
        yield settings
    finally:
        helpers.drop_database(settings)


# --- fresh database ------------------------------------------------------------------------------


def test_fresh_database_gets_the_partitioned_table(scratch: Settings) -> None:
    migrate.run(scratch, now=NOW)
    assert fetchval(
        scratch, "select relkind::text from pg_class where oid = 'public.product_price_snapshots'"
        "::regclass"
    ) == "p"
    assert layout(scratch) == EXPECTED_LAYOUT
    # primary key (id, scraped_at); id from the owned sequence
    assert fetchval(
        scratch,
        "select pg_get_constraintdef(oid) from pg_constraint "
        "where conrelid = 'public.product_price_snapshots'::regclass and contype = 'p'",
    ) == "PRIMARY KEY (id, scraped_at)"
    assert fetchval(
        scratch, "select pg_get_serial_sequence('public.product_price_snapshots', 'id')"
    ) == "public.product_price_snapshots_id_seq"
    # every partition carries the primary key and the five raw indexes, attached to the parent's
    counts = helpers.fetch(
        scratch,
        """
        select c.relname, count(ci.oid) as n
        from pg_inherits h
        inner join pg_class c on c.oid = h.inhrelid
        left join pg_index i on i.indrelid = c.oid
        left join pg_class ci on ci.oid = i.indexrelid and ci.relispartition
        where h.inhparent = 'public.product_price_snapshots'::regclass
        group by 1
        """,
    )
    assert {r["relname"]: r["n"] for r in counts} == dict.fromkeys(EXPECTED_LAYOUT, 6)


def test_rows_route_by_month_and_beyond_the_last_partition_to_default(scratch: Settings) -> None:
    migrate.run(scratch, now=NOW, indexes=False)
    assert insert(scratch, datetime(2024, 1, 5, tzinfo=UTC)) == (
        1, "product_price_snapshots_before_2025_04")
    assert insert(scratch, datetime(2025, 5, 31, 23, 59, tzinfo=UTC)) == (
        2, "product_price_snapshots_p2025_05")
    # beyond the last monthly partition: kept (DEFAULT), not refused
    late_id, part = insert(scratch, datetime(2025, 7, 2, tzinfo=UTC))
    assert (late_id, part) == (3, "product_price_snapshots_default")

    async def ahead() -> list[str]:
        conn = await asyncpg.connect(scratch.database_url)
        try:
            return await partitions.ensure_partitions(
                conn, months_ahead=2, now=datetime(2025, 6, 20, tzinfo=UTC)
            )
        finally:
            await conn.close()

    # June, July, August get partitions; the July row moves out of DEFAULT into its month
    assert asyncio.run(ahead()) == [
        "product_price_snapshots_p2025_06",
        "product_price_snapshots_p2025_07",
        "product_price_snapshots_p2025_08",
    ]
    assert helpers.fetch(
        scratch,
        "select id, tableoid::regclass::text as p from public.product_price_snapshots "
        "where scraped_at >= '2025-07-01' order by id",
    ) == [(3, "product_price_snapshots_p2025_07")]
    assert fetchval(scratch, "select count(*) from public.product_price_snapshots_default") == 0
    assert asyncio.run(ahead()) == []  # idempotent


def test_seed_truncate_and_append_cycle_on_the_partitioned_table(scratch: Settings) -> None:
    migrate.run(scratch, now=NOW, indexes=False)
    assert run_seed(scratch, rows=2_000, slugs=50) == 0
    first = fetchval(scratch, CHECKSUM_SQL)
    assert fetchval(scratch, "select min(id) || '-' || max(id) from "
                             "public.product_price_snapshots") == "1-2000"
    # --truncate restarts the ids (the sequence is owned by the column) and reproduces the seed
    assert run_seed(scratch, rows=2_000, slugs=50, truncate=True) == 0
    assert fetchval(scratch, CHECKSUM_SQL) == first
    assert run_seed(scratch, append_cycle=True, now="2025-04-03T08:00:00Z") == 0
    by_part = helpers.fetch(
        scratch,
        "select tableoid::regclass::text as p, count(*) as n, min(id) as lo "
        "from public.product_price_snapshots group by 1 order by 1",
    )
    assert [r["p"] for r in by_part] == [
        "product_price_snapshots_before_2025_04", "product_price_snapshots_p2025_04"]
    assert by_part[0]["n"] == 2_000
    assert by_part[1]["lo"] == 2_001


def test_load_rows_helper_fills_the_partitioned_table(scratch: Settings) -> None:
    migrate.run(scratch, now=NOW, indexes=False)
    rows = [
        {"scraped_at": datetime(2025, 2, 1, tzinfo=UTC), "seller": "a",
         "product_name_original": "A", "product_name_normalized": "a"},
        {"scraped_at": datetime(2025, 4, 2, tzinfo=UTC), "seller": "b",
         "product_name_original": "B", "product_name_normalized": "b"},
    ]
    assert helpers.load_rows(scratch, rows) == 2
    assert [tuple(r) for r in helpers.fetch(
        scratch,
        "select id, seller, tableoid::regclass::text from public.product_price_snapshots "
        "order by id",
    )] == [(1, "a", "product_price_snapshots_before_2025_04"),
           (2, "b", "product_price_snapshots_p2025_04")]


# --- converting a plain table --------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted(base_settings: Settings) -> Iterator[dict[str, object]]:
    """A plain table with 3,000 seeded rows, its five indexes, a view on it and a gap in the
    identity sequence, converted by `migrate.convert_to_partitioned` on a connection that logs
    DEBUG1 messages (Postgres says there when ATTACH skips its validation scan)."""
    settings = helpers.settings_for_database(base_settings, helpers.unique_db_name("pricecat_conv"))
    create_legacy_table(settings, indexes=True)
    try:
        assert run_seed(settings, rows=3_000, slugs=60) == 0
        before = {
            "checksum": fetchval(settings, CHECKSUM_SQL),
            "filenodes": relfilenodes(settings),
        }

        async def prepare_and_convert() -> tuple[partitions.ConversionReport, list[str]]:
            conn = await asyncpg.connect(settings.database_url)
            messages: list[str] = []
            try:
                await conn.execute(migrate.OPS_DDL)
                await migrate.ensure_api_role(conn)
                await conn.execute(
                    "create view public.raw_prices as "
                    "select id, price from public.product_price_snapshots"
                )
                # ids 3001..3005 taken and rolled back: the next id must be 3006
                await conn.execute("begin")
                for _ in range(5):
                    await conn.execute(
                        "insert into public.product_price_snapshots (scraped_at, seller, "
                        "product_name_original, product_name_normalized) "
                        "values (now(), 'x', 'x', 'x')"
                    )
                await conn.execute("rollback")
                conn.add_log_listener(lambda _c, msg: messages.append(str(msg.message)))
                await conn.execute("set client_min_messages = debug1")
                report = await partitions.convert_to_partitioned(conn, now=NOW)
                await conn.execute("set client_min_messages = notice")
                return report, messages
            finally:
                await conn.close()

        report, messages = asyncio.run(prepare_and_convert())
        migrate.run(settings, now=NOW)  # the rest of migrate: nothing left to convert
        yield {"settings": settings, "before": before, "report": report, "messages": messages}
    finally:
        helpers.drop_database(settings)


def test_conversion_layout_and_no_row_rewritten(converted: dict[str, object]) -> None:
    settings = converted["settings"]
    before = converted["before"]
    assert isinstance(settings, Settings) and isinstance(before, dict)
    assert layout(settings) == EXPECTED_LAYOUT
    assert fetchval(settings, CHECKSUM_SQL) == before["checksum"]
    after = relfilenodes(settings)
    # the old table's file is the history partition's file, and so are its five indexes
    old = before["filenodes"]
    assert after["product_price_snapshots_before_2025_04"] == old["product_price_snapshots"]
    for name, _ in partitions.RAW_INDEXES:
        renamed = partitions.partition_index_name("product_price_snapshots_before_2025_04", name)
        assert after[renamed] == old[name], name
    # the validated CHECK let ATTACH skip its scan, and it is gone afterwards
    messages = converted["messages"]
    assert isinstance(messages, list)
    assert (
        'partition constraint for table "product_price_snapshots_before_2025_04" is implied by '
        "existing constraints" in messages
    ), messages
    assert fetchval(
        settings,
        "select count(*) from pg_constraint where contype = 'c' and conrelid = "
        "'public.product_price_snapshots_before_2025_04'::regclass",
    ) == 0


def test_conversion_keeps_ids_grants_and_views(converted: dict[str, object]) -> None:
    settings = converted["settings"]
    report = converted["report"]
    assert isinstance(settings, Settings) and isinstance(report, partitions.ConversionReport)
    assert report.next_id == 3_006
    assert report.views_recreated == ["public.raw_prices"]
    # the scraper's insert (no id) continues the sequence; the row lands in its month
    assert insert(settings, datetime(2025, 4, 2, tzinfo=UTC)) == (
        3_006, "product_price_snapshots_p2025_04")
    # what changed for the scraper: an explicit id is accepted now (no identity column)
    explicit = helpers.fetch(
        settings,
        "insert into public.product_price_snapshots (id, scraped_at, seller, "
        "product_name_original, product_name_normalized) "
        "values (7, '2025-04-03', 'x', 'x', 'x') returning id",
    )
    assert explicit[0]["id"] == 7
    # the view reads the partitioned parent (all 3,002 rows), not the renamed old table
    assert fetchval(settings, "select count(*) from public.raw_prices") == 3_002

    async def as_api() -> tuple[int, type[BaseException] | None]:
        conn = await asyncpg.connect(settings.api_database_url)
        try:
            n = await conn.fetchval("select count(*) from public.product_price_snapshots")
            try:
                await conn.execute(INSERT_SQL.replace("returning id, tableoid::regclass::text "
                                                      "as partition", ""),
                                   datetime(2025, 4, 2, tzinfo=UTC))
            except asyncpg.PostgresError as exc:
                return n, type(exc)
            return n, None
        finally:
            await conn.close()

    count, refused = asyncio.run(as_api())
    assert (count, refused) == (3_002, asyncpg.InsufficientPrivilegeError)
    helpers.fetch(settings, "delete from public.product_price_snapshots where id in (7, 3006)")
    assert API_ROLE


def test_migrate_on_a_partitioned_table_changes_nothing(converted: dict[str, object]) -> None:
    settings = converted["settings"]
    assert isinstance(settings, Settings)
    catalog_sql = """
        select c.relname, c.relfilenode, c.relkind::text
        from pg_class c inner join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public'
        order by 1
    """
    before = [tuple(r) for r in helpers.fetch(settings, catalog_sql)]
    migrate.run(settings, now=NOW)
    assert [tuple(r) for r in helpers.fetch(settings, catalog_sql)] == before
    assert layout(settings) == EXPECTED_LAYOUT


def test_refresh_flow_step_creates_the_months_ahead(scratch: Settings) -> None:
    """The flow's ensure-partitions task (its function, no Prefect server) on a table last
    migrated in March 2025: the current month and the next two get their partitions."""
    from flows.partitions import ensure_partitions

    migrate.run(scratch, now=NOW, indexes=False)
    current = partitions.month_start(datetime.now(UTC))
    expected = [
        f"product_price_snapshots_p{partitions.add_months(current, k):%Y_%m}" for k in range(3)
    ]
    assert current >= datetime(2025, 6, 1, tzinfo=UTC)  # clear of the layout made at NOW
    assert asyncio.run(ensure_partitions.fn(scratch)) == expected
    assert set(layout(scratch)) == set(EXPECTED_LAYOUT) | set(expected)
    assert asyncio.run(ensure_partitions.fn(scratch)) == []
