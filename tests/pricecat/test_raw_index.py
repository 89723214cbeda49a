"""The site's slug-detail query uses the (slug, scraped_at, id) index on a realistic table.

200,000 seeded rows over 2,000 slugs (the production ratio of rows per slug is ~190; here ~100),
indexes built by `pricecat migrate` after the load, statistics fresh. Plans only, no timings
(those live in bench/bench_raw_index.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from pricecat import migrate
from pricecat.config import Settings
from tests import helpers
from tests.pricecat._util import run_seed

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


@pytest.fixture(scope="module")
def big(base_settings: Settings) -> Iterator[Settings]:
    settings = helpers.settings_for_database(base_settings, helpers.unique_db_name("pricecat_idx"))
    migrate.run(settings, indexes=False)
    try:
        assert run_seed(settings, rows=ROWS, slugs=2_000, seed=11) == 0
        migrate.run(settings)  # builds the indexes concurrently, then analyze
        yield settings
    finally:
        helpers.drop_database(settings)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _explain(settings: Settings, slugs: list[str], *, bitmap: bool = True) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            if not bitmap:
                await conn.execute("set enable_bitmapscan = off")
            plans = []
            for slug in slugs:
                raw = await conn.fetchval(f"explain (format json) {SLUG_DETAIL_SQL}", slug)
                plans.append(json.loads(raw)[0]["Plan"])
            return plans
        finally:
            await conn.close()

    return asyncio.run(go())


def test_table_is_realistic(big: Settings) -> None:
    row = helpers.fetch(
        big,
        """
        select count(*) as row_count, count(distinct product_name_normalized) as slug_count
        from public.product_price_snapshots
        """,
    )[0]
    assert row["row_count"] == ROWS >= 200_000
    assert row["slug_count"] == 2_000
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


def test_slug_detail_query_uses_the_slug_index(big: Settings, sample_slugs: list[str]) -> None:
    """Default planner settings: the slug index drives the query, never a sequential scan.

    With default costs Postgres 15 picks a Bitmap Index Scan on a slug-leading index (+ a sort of
    the few hundred rows) for slugs with many snapshots (they sit on as many heap pages), and a
    plain Index Scan on the (slug, scraped_at, id) index for small ones; both read only the
    slug's rows.
    """
    for slug, plan in zip(sample_slugs, _explain(big, sample_slugs), strict=True):
        nodes = list(_nodes(plan))
        kinds = [n["Node Type"] for n in nodes]
        assert "Seq Scan" not in kinds, (slug, kinds)
        scans = [
            n for n in nodes
            if n["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Index Scan")
        ]
        assert len(scans) == 1, (slug, kinds)
        scan = scans[0]
        if scan["Node Type"] == "Bitmap Index Scan":
            # a bitmap only collects the slug's heap pages: either slug-leading index serves
            assert scan["Index Name"] in SLUG_INDEXES, (slug, scan["Index Name"])
        else:
            assert scan["Index Name"] == INDEX, (slug, scan["Index Name"])
            assert "Sort" not in kinds, (slug, kinds)
        assert scan["Index Cond"].startswith("(product_name_normalized = "), scan


def test_index_scan_delivers_time_order(big: Settings, sample_slugs: list[str]) -> None:
    """Without bitmap scans it is a plain Index Scan on the slug index with no sort step:
    (product_name_normalized, scraped_at, id) yields the slug's rows in scraped_at order."""
    for slug, plan in zip(sample_slugs, _explain(big, sample_slugs, bitmap=False), strict=True):
        nodes = list(_nodes(plan))
        kinds = [n["Node Type"] for n in nodes]
        assert kinds == ["Index Scan"], (slug, kinds)
        assert plan["Index Name"] == INDEX
        assert plan["Relation Name"] == "product_price_snapshots"
        assert plan["Index Cond"].startswith("(product_name_normalized = "), plan


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
