"""EXPLAIN every .sql file the API runs against the built marts (a renamed column fails here, not
in production), and assert that the hot paths can use an index.

The fixture tables are tiny, so the planner rightly prefers sequential scans; the index
assertions therefore run with ``set enable_seqscan = off`` (and, for recent_snapshots, also
``enable_bitmapscan = off``) in that session, which proves an index CAN serve the query; on the
2.08M-row seed the planner picks these indexes by cost (recent_snapshots: ~4 ms there)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from api.queries import all_sql_files, load_sql
from pricecat.config import Settings

ARGS: dict[str, tuple[Any, ...]] = {
    "catalog_page": (
        "available", Decimal("100"), Decimal("900"), ["strategické"], ["%katan%"], "katan",
        "katan%", "% katan%", "relevance", 24, 0,
    ),
    "catalog_count": ("any", None, None, [], []),
    "product_summary": ("osadnici-z-katanu",),
    "product_sellers": ("osadnici-z-katanu",),
    "suggest": ("osadnici", "%osadnici%", "osadnici%", "% osadnici%", "any", 8, True),
    "categories": (),
    "recent_snapshots": (100,),
    "data_age": (),
    "read_models": (),
}

#: query -> (table, column that the used index must cover)
HOT_PATHS = {
    "product_summary": [("catalog_slug_summary", "slug")],
    "product_sellers": [("catalog_slug_seller_summary", "slug")],
    "suggest": [("catalog_slug_summary", "search_text")],
    "recent_snapshots": [
        ("product_price_snapshots", "scraped_at"),
        ("product_price_snapshots", "product_name_normalized"),
    ],
}


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out.extend(_nodes(child))
    return out


async def _explain(settings: Settings, name: str, seqscan: bool) -> dict[str, Any]:
    conn = await asyncpg.connect(settings.api_database_url)
    try:
        if not seqscan:
            await conn.execute("set enable_seqscan = off")
            if name == "recent_snapshots":  # else a bitmap scan + sort wins on 95 rows
                await conn.execute("set enable_bitmapscan = off")
        raw = await conn.fetchval("explain (format json) " + load_sql(name), *ARGS[name])
        plan: dict[str, Any] = json.loads(raw)[0]["Plan"]
        return plan
    finally:
        await conn.close()


async def _index_columns(settings: Settings) -> dict[str, tuple[str, str]]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            "select indexname, tablename, indexdef from pg_indexes "
            "where schemaname in ('catalog', 'public')"
        )
        return {r["indexname"]: (r["tablename"], r["indexdef"]) for r in rows}
    finally:
        await conn.close()


def test_every_sql_file_has_explain_arguments() -> None:
    assert sorted(ARGS) == all_sql_files()


@pytest.mark.parametrize("name", sorted(ARGS))
def test_explain_runs_as_the_api_role(db_settings: Settings, name: str) -> None:
    plan = asyncio.run(_explain(db_settings, name, seqscan=True))
    assert plan["Node Type"]


@pytest.mark.parametrize("name", sorted(HOT_PATHS))
def test_hot_paths_can_use_an_index(db_settings: Settings, name: str) -> None:
    plan = asyncio.run(_explain(db_settings, name, seqscan=False))
    indexes = asyncio.run(_index_columns(db_settings))
    used = [
        indexes[n["Index Name"]]
        for n in _nodes(plan)
        if "Index Name" in n and n["Index Name"] in indexes
    ]
    for table, column in HOT_PATHS[name]:
        assert any(t == table and f"({column}" in d for t, d in used), (name, table, column, used)
    assert not any(n["Node Type"] == "Seq Scan" and n.get("Relation Name") in {
        t for t, _ in HOT_PATHS[name]} for n in _nodes(plan)), name
