"""Catalog listing: catalog_page.sql (a page of cards) and catalog_count.sql (exact total; its
EXPLAIN gives total_estimate)."""

from __future__ import annotations

import json
from typing import Any, TypedDict

from api.db import Database
from api.encoding import money, timestamp
from api.params import CatalogFilters, like_escape
from api.queries import load_sql

PAGE_SQL = load_sql("catalog_page")
COUNT_SQL = load_sql("catalog_count")
ESTIMATE_SQL = "explain (format json)\n" + COUNT_SQL


class CatalogCard(TypedDict):
    slug: str
    name: str | None
    hero_image_url: str | None
    min_price: float | None
    min_price_seller: str | None
    seller_count: int
    is_available: bool
    is_preorder: bool
    categories: list[str]
    last_scraped_at: str | None


def filter_args(f: CatalogFilters) -> tuple[Any, ...]:
    """$1..$5 shared by catalog_page.sql and catalog_count.sql."""
    words = f.q.split(" ") if f.q else []
    patterns = [f"%{like_escape(w)}%" for w in words]
    return (f.availability, f.min_price, f.max_price, list(f.categories), patterns)


async def catalog_page(
    db: Database, f: CatalogFilters, limit: int, offset: int
) -> list[CatalogCard]:
    q = f.q or ""
    escaped = like_escape(q)
    rows = await db.fetch(
        "catalog_page",
        PAGE_SQL,
        *filter_args(f),
        f.q,
        f"{escaped}%",
        f"% {escaped}%",
        f.sort,
        limit,
        offset,
    )
    return [
        CatalogCard(
            slug=r["slug"],
            name=r["name"],
            hero_image_url=r["hero_image_url"],
            min_price=money(r["min_price"]),
            min_price_seller=r["min_price_seller"],
            seller_count=int(r["seller_count"]),
            is_available=bool(r["is_available"]),
            is_preorder=bool(r["is_preorder"]),
            categories=list(r["categories"] or []),
            last_scraped_at=timestamp(r["last_scraped_at"]),
        )
        for r in rows
    ]


async def catalog_count(db: Database, f: CatalogFilters) -> int:
    return int(await db.fetchval("catalog_count", COUNT_SQL, *filter_args(f)))


async def catalog_estimate(db: Database, f: CatalogFilters) -> int:
    """The planner's estimate of the matching rows (no rows are read)."""
    raw = await db.fetchval("catalog_count_estimate", ESTIMATE_SQL, *filter_args(f))
    plan = json.loads(raw)[0]["Plan"] if isinstance(raw, str) else raw[0]["Plan"]
    return estimate_from_plan(plan)


def estimate_from_plan(plan: dict[str, Any]) -> int:
    """Row estimate of the node feeding the top-level count(*) aggregate."""
    node = plan
    while node.get("Node Type") in ("Aggregate", "Gather", "Gather Merge") and node.get("Plans"):
        node = node["Plans"][0]
    return int(round(float(node.get("Plan Rows", 0))))
