"""Raw reads use index paths on the monthly-partitioned raw table, with partition pruning.

200,000 seeded rows over 2,000 slugs (the production ratio of rows per slug is ~190; here ~100)
in the plain table of before partitioning, converted by `pricecat migrate` (pinned at 2025-03-10:
everything before April in the history partition), which then builds the indexes on every
partition; one scrape cycle appended in April and one in May (their own partitions), statistics
fresh. Plans only, no timings (those live in bench/bench_raw_index.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from pricecat import migrate
from pricecat.config import Settings
from tests import helpers
from tests.pricecat._util import run_seed
from tests.pricecat.test_partitions import create_legacy_table

pytestmark = pytest.mark.slow

INDEX = "idx_product_price_snapshots_slug_scraped_id"
#: both raw indexes that lead with the slug
SLUG_INDEXES = (INDEX, "idx_product_price_snapshots_slug_seller_scraped")
SLUG_DETAIL_SQL = """
select id, scraped_at, seller, product_code, product_name_original, price, availability
from public.product_price_snapshots
where product_name_normalized = $1
order by scraped_at
"""
ROWS = 200_000
HISTORY = "product_price_snapshots_before_2025_04"
APRIL, MAY = "product_price_snapshots_p2025_04", "product_price_snapshots_p2025_05"
DEFAULT = "product_price_snapshots_default"


@pytest.fixture(scope="module")
def big(base_settings: Settings) -> Iterator[Settings]:
    settings = helpers.settings_for_database(base_settings, helpers.unique_db_name("pricecat_idx"))
    create_legacy_table(settings, indexes=False)
    try:
        assert run_seed(settings, rows=ROWS, slugs=2_000, seed=11) == 0
        # converts, then builds the indexes concurrently on every partition, then analyze
        migrate.run(settings, now=datetime(2025, 3, 10, tzinfo=UTC))
        assert run_seed(settings, append_cycle=True, now="2025-04-10T00:00:00Z") == 0
        assert run_seed(settings, append_cycle=True, now="2025-05-10T00:00:00Z") == 0
        helpers.fetch(settings, "analyze public.product_price_snapshots")
        yield settings
    finally:
        helpers.drop_database(settings)


@pytest.fixture(scope="module")
def index_parent(big: Settings) -> dict[str, str]:
    """Partition index name -> the parent's (partitioned) index it is attached to."""
    rows = helpers.fetch(
        big,
        """
        select c.relname as child, p.relname as parent
        from pg_inherits h
        inner join pg_class c on c.oid = h.inhrelid
        inner join pg_class p on p.oid = h.inhparent
        where c.relkind = 'i'
        """,
    )
    return {r["child"]: r["parent"] for r in rows}


def _scanned(nodes: list[dict[str, Any]]) -> dict[str, str]:
    """Partition -> how it is read (a leaf scan node type; bitmap heap scans by their index)."""
    out: dict[str, str] = {}
    for node in nodes:
        if "Relation Name" in node and node["Node Type"] != "Bitmap Heap Scan":
            out[node["Relation Name"]] = node["Node Type"]
        elif node["Node Type"] == "Bitmap Heap Scan":
            out[node["Relation Name"]] = "Bitmap Heap Scan"
    return out


def _assert_seq_scans_only_on_the_empty_default(big: Settings, nodes: list[dict[str, Any]]) -> None:
    seq = {n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan"}
    assert seq <= {DEFAULT}, seq
    if seq:
        empty = "select count(*) as n from public.product_price_snapshots_default"
        assert helpers.fetch(big, empty)[0]["n"] == 0


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _explain(settings: Settings, slugs: list[Any], *, bitmap: bool = True,
             sql: str = SLUG_DETAIL_SQL) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            if not bitmap:
                await conn.execute("set enable_bitmapscan = off")
            plans = []
            for slug in slugs:
                raw = await conn.fetchval(f"explain (format json) {sql}", slug)
                plans.append(json.loads(raw)[0]["Plan"])
            return plans
        finally:
            await conn.close()

    return asyncio.run(go())


def test_table_is_realistic(big: Settings) -> None:
    rows = helpers.fetch(
        big,
        """
        select tableoid::regclass::text as part, count(*) as row_count,
               count(distinct product_name_normalized) as slug_count
        from public.product_price_snapshots
        group by 1 order by 1
        """,
    )
    found = {r["part"]: (r["row_count"], r["slug_count"]) for r in rows}
    listings = found[APRIL][0]
    assert found == {HISTORY: (ROWS, 2_000), APRIL: (listings, 2_000), MAY: (listings, 2_000)}
    assert ROWS >= 200_000 and listings > 2_000
    valid = helpers.fetch(
        big,
        "select i.indisvalid from pg_index i where i.indexrelid = $1::regclass",
        f"public.{INDEX}",
    )
    assert valid[0]["indisvalid"] is True


@pytest.fixture(scope="module")
def sample_slugs(big: Settings) -> list[str]:
    """The slug with the most snapshots, the one with the fewest, a typical one, a missing one."""
    rows = helpers.fetch(
        big,
        """
        (select product_name_normalized as slug, count(*) as n
         from public.product_price_snapshots group by 1 order by 2 desc, 1 limit 1)
        union all
        (select product_name_normalized, count(*)
         from public.product_price_snapshots group by 1 order by 2, 1 limit 1)
        union all
        (select product_name_normalized, count(*)
         from public.product_price_snapshots where id = 100000 group by 1)
        """,
    )
    assert rows[0]["n"] > rows[1]["n"] >= 1
    return [r["slug"] for r in rows] + ["no-such-slug"]


def test_slug_detail_query_uses_the_slug_index(big: Settings, sample_slugs: list[str],
                                               index_parent: dict[str, str]) -> None:
    """Default planner settings: every partition holding rows is read through its copy of a
    slug-leading index, never sequentially (no partition can be pruned: the query has no
    scraped_at condition). The empty DEFAULT partition gets a free Seq Scan (0 pages).

    With default costs Postgres 15 picks a Bitmap Index Scan on a slug-leading index (+ a sort of
    the few hundred rows) for slugs with many snapshots (they sit on as many heap pages), and a
    plain Index Scan on the (slug, scraped_at, id) index for small ones; both read only the
    slug's rows.
    """
    for slug, plan in zip(sample_slugs, _explain(big, sample_slugs), strict=True):
        nodes = list(_nodes(plan))
        assert set(_scanned(nodes)) == {HISTORY, APRIL, MAY, DEFAULT}, (slug, _scanned(nodes))
        _assert_seq_scans_only_on_the_empty_default(big, nodes)
        scans = [
            n for n in nodes
            if n["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Index Scan")
        ]
        assert len(scans) == 3, (slug, [n["Node Type"] for n in nodes])
        for scan in scans:
            if scan["Node Type"] == "Bitmap Index Scan":
                # a bitmap only collects the slug's heap pages: either slug-leading index serves
                assert index_parent[scan["Index Name"]] in SLUG_INDEXES, (slug, scan)
            else:
                assert index_parent[scan["Index Name"]] == INDEX, (slug, scan["Index Name"])
            assert scan["Index Cond"].startswith("(product_name_normalized = "), scan


def test_index_scan_per_partition_in_time_order(big: Settings, sample_slugs: list[str],
                                               index_parent: dict[str, str]) -> None:
    """Without bitmap scans each partition is a plain Index Scan on its copy of the slug index,
    which yields that partition's rows in scraped_at order. The DEFAULT partition (its range is
    not ordered against the months) keeps Postgres from a plain ordered Append: it merges the
    partitions' ordered streams (Merge Append) or sorts the slug's few hundred rows once."""
    for slug, plan in zip(sample_slugs, _explain(big, sample_slugs, bitmap=False), strict=True):
        nodes = list(_nodes(plan))
        # a Sort over an Append, or a Merge Append of the partitions' ordered scans
        assert plan["Node Type"] in ("Sort", "Merge Append"), (slug, plan["Node Type"])
        assert plan["Sort Key"] == ["product_price_snapshots.scraped_at"], plan["Sort Key"]
        _assert_seq_scans_only_on_the_empty_default(big, nodes)
        # the empty DEFAULT is read by a free Seq Scan or by any index: not checked
        scans = [
            n for n in nodes if n["Node Type"] == "Index Scan" and n["Relation Name"] != DEFAULT
        ]
        assert {n["Relation Name"] for n in scans} == {HISTORY, APRIL, MAY}
        assert {index_parent[n["Index Name"]] for n in scans} == {INDEX}
        for scan in scans:
            assert scan["Index Cond"].startswith("(product_name_normalized = "), scan


#: an incremental refresh's reads of the new raw rows (a scraped_at watermark, an id watermark)
SINCE_SQL = "select * from public.product_price_snapshots where scraped_at >= $1"
AFTER_ID_SQL = "select * from public.product_price_snapshots where id > $1"


def test_incremental_read_by_scraped_at_prunes_to_the_newest_month(
    big: Settings, index_parent: dict[str, str]
) -> None:
    """`scraped_at >= watermark` reads only May (and DEFAULT, which holds rows beyond the last
    month), through May's scraped_at index; history and April are pruned at plan time."""
    newest = helpers.fetch(big, "select max(scraped_at) as t from public.product_price_snapshots")[
        0
    ]["t"]
    watermark = newest - timedelta(minutes=2)
    nodes = list(_nodes(_explain(big, [watermark], sql=SINCE_SQL)[0]))
    assert set(_scanned(nodes)) == {MAY, DEFAULT}, _scanned(nodes)
    _assert_seq_scans_only_on_the_empty_default(big, nodes)
    may = [n for n in nodes if n.get("Relation Name") == MAY]
    assert [n["Node Type"] for n in may] == ["Index Scan"]
    assert index_parent[may[0]["Index Name"]] == "idx_product_price_snapshots_scraped_at_desc"


def test_incremental_read_prunes_at_run_time_with_a_generic_plan(big: Settings) -> None:
    """A prepared statement on its generic plan (no value known at plan time) prunes when it
    starts: EXPLAIN shows the removed subplans."""

    async def go() -> dict[str, Any]:
        conn = await asyncpg.connect(big.database_url)
        try:
            await conn.execute("set plan_cache_mode = force_generic_plan")
            await conn.execute(f"prepare since(timestamptz) as {SINCE_SQL}")
            raw = await conn.fetchval(
                "explain (format json) execute since('2025-05-09 23:50:00+00')"
            )
            plan: dict[str, Any] = json.loads(raw)[0]["Plan"]
            return plan
        finally:
            await conn.close()

    plan = asyncio.run(go())
    assert plan["Node Type"] == "Append"
    assert plan["Subplans Removed"] == 2  # history and April
    assert {n["Relation Name"] for n in plan["Plans"]} == {MAY, DEFAULT}


def test_incremental_read_by_id_uses_each_partitions_primary_key(
    big: Settings, index_parent: dict[str, str]
) -> None:
    """`id > watermark` cannot prune (id is not the partition key); every partition holding rows
    is read through its primary key (id, scraped_at) index."""
    top = helpers.fetch(big, "select max(id) as n from public.product_price_snapshots")[0]["n"]
    nodes = list(_nodes(_explain(big, [top - 100], sql=AFTER_ID_SQL)[0]))
    assert set(_scanned(nodes)) == {HISTORY, APRIL, MAY, DEFAULT}
    _assert_seq_scans_only_on_the_empty_default(big, nodes)
    scans = [n for n in nodes if n["Node Type"] == "Index Scan"]
    assert {n["Relation Name"] for n in scans} == {HISTORY, APRIL, MAY}
    assert {index_parent[n["Index Name"]] for n in scans} == {"product_price_snapshots_pkey"}


def test_slug_detail_query_returns_the_slug_in_time_order(big: Settings) -> None:
    slug = helpers.fetch(
        big, "select product_name_normalized as slug from public.product_price_snapshots "
        "where id = 1234"
    )[0]["slug"]
    rows = helpers.fetch(big, SLUG_DETAIL_SQL, slug)
    expected = helpers.fetch(
        big,
        "select count(*) as n from public.product_price_snapshots "
        "where product_name_normalized = $1",
        slug,
    )[0]["n"]
    assert len(rows) == expected > 1
    times = [r["scraped_at"] for r in rows]
    assert times == sorted(times)
