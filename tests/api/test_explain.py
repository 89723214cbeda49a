"""EXPLAIN every .sql file the API runs against the built marts (a renamed column fails here, not
in production), and assert that the hot paths can use an index.

The fixture tables are tiny, so the planner rightly prefers sequential scans and sorts; the
index assertions therefore run with ``set enable_seqscan = off`` (catalog pages also
``enable_sort = off``; recent_snapshots ``enable_bitmapscan = off``) in that session, which
proves an index CAN serve the query (and, with no Sort node left, its ORDER BY); on the
2.08M-row seed the planner picks these indexes by cost.

The catalog arguments are built by the API's own functions (``page_statement``,
``filter_args``), so the parameter layout tested is the one served."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from api.filters import CatalogFilters
from api.queries import all_sql_files, catalog, load_sql
from pricecat.config import Settings
from tests.api.test_deals import EXPLAIN_ARGS as DEALS_ARGS

SORTS = ("name", "price_asc", "price_desc", "newest", "relevance")


def filters(**kwargs: Any) -> CatalogFilters:
    base: dict[str, Any] = {
        "availability": "any", "min_price": None, "max_price": None, "categories": (),
        "q": None, "sort": "name",
    }
    base.update(kwargs)
    return CatalogFilters(**base)


#: every filter at once (q needs the relevance file anyway)
ALL_FILTERS = filters(
    availability="available", min_price=Decimal("100"), max_price=Decimal("900"),
    categories=("strategické",), q="katan",
)


def sorted_by(f: CatalogFilters, sort: str) -> CatalogFilters:
    return replace(f, sort=sort, _hash=[])


def page_args(f: CatalogFilters) -> tuple[Any, ...]:
    return catalog.page_statement(f, 24, 0)[2]


ARGS: dict[str, tuple[Any, ...]] = {
    **{
        f"catalog_page_{sort}": page_args(sorted_by(ALL_FILTERS, sort)) for sort in SORTS
    },
    # q only: the hot-path check below wants the trigram index, not the price or category one
    "catalog_page_relevance": page_args(filters(q="osadnici katan", sort="relevance")),
    "catalog_count": catalog.filter_args(ALL_FILTERS),
    "product_summary": ("osadnici-z-katanu",),
    "product_sellers": ("osadnici-z-katanu",),
    "image_url": ("osadnici-z-katanu",),
    "suggest": ("osadnici", "%osadnici%", "osadnici%", "% osadnici%", "any", 8, True),
    "categories": (),
    "recent_snapshots": (100,),
    "data_age": (),
    "quarantined": (),
    "refresh_runs": (),
    "published_build": (),
    "replication": (),
    "read_models": (),
    **DEALS_ARGS,  # deals_page, deals_count (their index checks: tests/api/test_deals.py)
}

#: a monthly partition of the raw table (pricecat/partitions.py) stands for the raw table
RAW_PARTITION = re.compile(r"^product_price_snapshots_(before_\d{4}_\d\d|p\d{4}_\d\d|default)$")

#: query -> the project's relations its plan reads (hand-written from the .sql files; the staging
#: view unfolds into the raw table and the availability_rules seed of its classifier)
RELATIONS: dict[str, set[str]] = {
    **{f"catalog_page_{sort}": {"catalog_slug_summary"} for sort in SORTS},
    "catalog_count": {"catalog_slug_summary"},
    "product_summary": {"catalog_slug_summary", "catalog_slug_market_lows"},
    "product_sellers": {"catalog_slug_seller_summary", "catalog_slug_seller_deals"},
    "image_url": {"catalog_slug_summary"},
    "suggest": {"catalog_slug_summary"},
    "categories": {"catalog_slug_summary"},
    "recent_snapshots": {"product_price_snapshots", "availability_rules"},
    "data_age": {"catalog_slug_summary", "refresh_runs"},
    "quarantined": {"catalog_quarantined_snapshots"},
    "refresh_runs": {"refresh_runs"},
    "published_build": {"catalog_build_info"},
    "replication": set(),
    "read_models": set(),
    "deals_page": {"catalog_slug_seller_deals"},
    "deals_count": {"catalog_slug_seller_deals"},
    "deals_badges": {"catalog_slug_market_lows"},
}

#: query -> (table, column that the used index must cover)
HOT_PATHS = {
    "product_summary": [("catalog_slug_summary", "slug")],
    "product_sellers": [("catalog_slug_seller_summary", "slug")],
    "image_url": [("catalog_slug_summary", "slug")],
    "suggest": [("catalog_slug_summary", "search_text")],
    "recent_snapshots": [
        ("product_price_snapshots", "scraped_at"),
        ("product_price_snapshots", "product_name_normalized"),
    ],
    # q's anchor pattern (the longest word, a plain LIKE) lets the trigram index narrow it
    "catalog_page_relevance": [("catalog_slug_summary", "search_text")],
}

#: sort -> key of the mart index (as pg_indexes prints it) whose order is the sort's ORDER BY
ORDER_INDEX = {
    "name": '(name COLLATE "cs-x-icu", slug)',
    "price_asc": "(min_price, slug)",
    "price_desc": "(min_price DESC NULLS LAST, slug)",
    "newest": "(first_seen_at DESC NULLS LAST, slug)",
}

#: unfiltered and lightly filtered pages: each must be an index scan in its sort's order + limit
LIGHT_FILTERS = {
    "unfiltered": filters(),
    "available": filters(availability="available"),
    "preorder": filters(availability="preorder"),
    "price_range": filters(min_price=Decimal("100"), max_price=Decimal("900")),
    "category": filters(categories=("strategické",)),
}

#: filter -> (index key fragment that must serve the count, filters)
COUNT_INDEX = {
    "category": ("USING gin (categories)", filters(categories=("strategické",))),
    "availability": ("(availability_status)", filters(availability="preorder")),
    "price_range": ("(min_price", filters(min_price=Decimal("100"), max_price=Decimal("900"))),
    "q": ("gin_trgm_ops", filters(q="katan")),
}


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out.extend(_nodes(child))
    return out


async def _plan(
    settings: Settings, sql: str, args: tuple[Any, ...], off: tuple[str, ...] = ()
) -> dict[str, Any]:
    conn = await asyncpg.connect(settings.api_database_url)
    try:
        for setting in off:
            await conn.execute(f"set {setting} = off")
        raw = await conn.fetchval("explain (format json, verbose) " + sql, *args)
        plan: dict[str, Any] = json.loads(raw)[0]["Plan"]
        return plan
    finally:
        await conn.close()


async def _explain(settings: Settings, name: str, seqscan: bool) -> dict[str, Any]:
    off: tuple[str, ...] = ()
    if not seqscan:
        off = ("enable_seqscan",)
        if name == "recent_snapshots":  # else a bitmap scan + sort wins on 95 rows
            off += ("enable_bitmapscan",)
    return await _plan(settings, load_sql(name), ARGS[name], off)


async def _index_defs(settings: Settings) -> dict[str, tuple[str, str]]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        # an index on a partition counts for its partitioned table (the raw table is partitioned
        # by month: pricecat/partitions.py)
        rows = await conn.fetch(
            "select i.indexname, coalesce(parent.relname, i.tablename) as tablename, i.indexdef "
            "from pg_indexes as i "
            "left join pg_inherits as inh "
            "on inh.inhrelid = format('%I.%I', i.schemaname, i.tablename)::regclass "
            "left join pg_class as parent on parent.oid = inh.inhparent "
            "where i.schemaname in ('catalog', 'public')"
        )
        return {r["indexname"]: (r["tablename"], r["indexdef"]) for r in rows}
    finally:
        await conn.close()


def _used_indexes(
    plan: dict[str, Any], indexes: dict[str, tuple[str, str]]
) -> list[tuple[str, str]]:
    return [
        indexes[n["Index Name"]]
        for n in _nodes(plan)
        if "Index Name" in n and n["Index Name"] in indexes
    ]


def test_every_sql_file_has_explain_arguments() -> None:
    assert sorted(ARGS) == all_sql_files() == sorted(RELATIONS)


def test_every_sort_has_its_own_page_file() -> None:
    assert sorted(catalog.PAGE_SQL) == sorted(SORTS)
    assert {name for name, _ in catalog.PAGE_SQL.values()} == {
        f"catalog_page_{s}" for s in SORTS
    }
    for sort in ORDER_INDEX:  # a plain ORDER BY, no per-request CASE chains
        assert "case" not in catalog.PAGE_SQL[sort][1].split("order by")[-1]


@pytest.mark.parametrize("name", sorted(ARGS))
def test_explain_runs_as_the_api_role(db_settings: Settings, name: str) -> None:
    """The API role can plan every query, and the plan reads exactly the relations written
    down for it (a query pointed at the wrong table or the raw table fails here)."""
    plan = asyncio.run(_explain(db_settings, name, seqscan=True))
    read = {
        RAW_PARTITION.sub("product_price_snapshots", n["Relation Name"])
        for n in _nodes(plan)
        if "Relation Name" in n and n.get("Schema") in ("catalog", "public", "catalog_ops")
    }
    assert read == RELATIONS[name], (name, read)


@pytest.mark.parametrize("name", sorted(HOT_PATHS))
def test_hot_paths_can_use_an_index(db_settings: Settings, name: str) -> None:
    plan = asyncio.run(_explain(db_settings, name, seqscan=False))
    used = _used_indexes(plan, asyncio.run(_index_defs(db_settings)))
    for table, column in HOT_PATHS[name]:
        assert any(t == table and f"({column}" in d for t, d in used), (name, table, column, used)
    assert not any(n["Node Type"] == "Seq Scan" and n.get("Relation Name") in {
        t for t, _ in HOT_PATHS[name]} for n in _nodes(plan)), name


@pytest.mark.parametrize("case", sorted(LIGHT_FILTERS))
@pytest.mark.parametrize("sort", sorted(ORDER_INDEX))
def test_catalog_page_order_is_served_by_its_index(
    db_settings: Settings, sort: str, case: str
) -> None:
    """Limit over an index scan of the sort's own index, no Sort node: the page stops after
    offset + limit matching rows. (Without enable_sort = off the 28-row fixture would rather
    sort; with it, a plan could still sort at a prohibitive cost if no index had the order.)"""
    name, sql, args = catalog.page_statement(sorted_by(LIGHT_FILTERS[case], sort), 24, 48)
    assert name == f"catalog_page_{sort}"
    plan = asyncio.run(_plan(db_settings, sql, args, ("enable_seqscan", "enable_sort")))
    nodes = _nodes(plan)
    assert plan["Node Type"] == "Limit", plan
    assert not [n for n in nodes if n["Node Type"] in ("Sort", "Incremental Sort")], plan
    used = _used_indexes(plan, asyncio.run(_index_defs(db_settings)))
    assert any(
        t == "catalog_slug_summary" and d.endswith(ORDER_INDEX[sort]) for t, d in used
    ), (sort, case, used)


@pytest.mark.parametrize("case", sorted(COUNT_INDEX))
def test_catalog_count_on_filtered_sets_can_use_an_index(db_settings: Settings, case: str) -> None:
    fragment, f = COUNT_INDEX[case]
    plan = asyncio.run(
        _plan(db_settings, catalog.COUNT_SQL, catalog.filter_args(f), ("enable_seqscan",))
    )
    assert not [n for n in _nodes(plan) if n["Node Type"] == "Seq Scan"], plan
    used = _used_indexes(plan, asyncio.run(_index_defs(db_settings)))
    assert any(fragment in d for _, d in used), (case, used)


@pytest.mark.parametrize("availability", ["any", "available", "preorder", "unavailable"])
def test_page_availability_flags_select_the_same_rows_as_the_status(
    db_settings: Settings, availability: str
) -> None:
    """The page files filter on is_available/is_preorder (so the planner keeps walking the
    sort's index), the count on availability_status: both must select the same slugs."""

    async def go() -> tuple[list[str], list[str], int]:
        conn = await asyncpg.connect(db_settings.api_database_url)
        try:
            f = filters(availability=availability)
            _, sql, args = catalog.page_statement(f, 100, 0)
            page = [r["slug"] for r in await conn.fetch(sql, *args)]
            status = [
                r["slug"]
                for r in await conn.fetch(
                    "select slug from catalog.catalog_slug_summary "
                    "where $1::text = 'any' or availability_status = $1::text",
                    availability,
                )
            ]
            total = await conn.fetchval(catalog.COUNT_SQL, *catalog.filter_args(f))
            return page, status, int(total)
        finally:
            await conn.close()

    page, status, total = asyncio.run(go())
    assert sorted(page) == sorted(status)
    assert total == len(status) > 0


@pytest.mark.parametrize("q", ["katan", "osadnici katan", "z katanu osadnici", "ab", "xyzzy"])
def test_q_anchor_does_not_change_the_rows(db_settings: Settings, q: str) -> None:
    """The anchor (longest word's pattern) is implied by the every-word filter: adding it (or
    leaving it out for words without a trigram) never changes which slugs match."""

    async def go() -> tuple[list[str], list[str]]:
        conn = await asyncpg.connect(db_settings.api_database_url)
        try:
            f = filters(q=q, sort="relevance")
            _, sql, args = catalog.page_statement(f, 100, 0)
            page = sorted(r["slug"] for r in await conn.fetch(sql, *args))
            patterns, _anchor = catalog.q_patterns(f)
            plain = sorted(
                r["slug"]
                for r in await conn.fetch(
                    "select slug from catalog.catalog_slug_summary "
                    "where search_text like all($1::text[])",
                    patterns,
                )
            )
            return page, plain
        finally:
            await conn.close()

    page, plain = asyncio.run(go())
    assert page == plain
    if q in ("katan", "osadnici katan"):
        assert "osadnici-z-katanu" in page
    if q == "xyzzy":
        assert page == []


def test_q_anchor_is_the_longest_word_with_a_trigram() -> None:
    assert catalog.q_patterns(filters(q="z osadnici katan")) == (
        ["%z%", "%osadnici%", "%katan%"], "%osadnici%"
    )
    assert catalog.q_patterns(filters(q="ab c")) == (["%ab%", "%c%"], None)
    assert catalog.q_patterns(filters(q="50%_off")) == (["%50\\%\\_off%"], "%50\\%\\_off%")
    assert catalog.q_patterns(filters()) == ([], None)
