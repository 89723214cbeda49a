"""Catalog listing: catalog_page_<sort>.sql (a page of cards; one static file per sort order,
picked from the fixed ``PAGE_SQL`` mapping, so each ORDER BY is exactly its index's key) and
catalog_count.sql (exact total; its EXPLAIN gives total_estimate). ``catalog_listing`` runs them
on one connection (pass a Session: one pool acquisition) and skips the count when the page
itself proves the total."""

from __future__ import annotations

import json
from typing import Any

from api.db import Executor
from api.encoding import money, timestamp
from api.filters import CatalogFilters, like_escape
from api.queries import JsonObject, load_sql

#: sort -> (query name, SQL). Fixed at import: no SQL is built from request values.
PAGE_SQL: dict[str, tuple[str, str]] = {
    sort: (f"catalog_page_{sort}", load_sql(f"catalog_page_{sort}"))
    for sort in ("name", "price_asc", "price_desc", "newest", "relevance")
}
#: availability -> (is_available, is_preorder) wanted by the page queries; the mart derives
#: availability_status from the same two flags (available > preorder > unavailable).
AVAILABILITY_FLAGS: dict[str, tuple[bool | None, bool | None]] = {
    "any": (None, None),
    "available": (True, None),
    "preorder": (None, True),
    "unavailable": (False, False),
}
#: words shorter than this have no trigram: the GIN index can't narrow a LIKE on them
MIN_ANCHOR_CHARS = 3
COUNT_SQL = load_sql("catalog_count")
ESTIMATE_SQL = "explain (format json)\n" + COUNT_SQL


def q_patterns(f: CatalogFilters) -> tuple[list[str], str | None]:
    """LIKE patterns of q's words (each must match) and the anchor: the longest word's pattern,
    a single LIKE the trigram index can serve (null when no word has a trigram)."""
    words = f.q.split(" ") if f.q else []
    patterns = [f"%{like_escape(w)}%" for w in words]
    longest = max(words, key=len, default="")
    anchor = f"%{like_escape(longest)}%" if len(longest) >= MIN_ANCHOR_CHARS else None
    return patterns, anchor


def filter_args(f: CatalogFilters) -> tuple[Any, ...]:
    """$1..$6 of catalog_count.sql."""
    patterns, anchor = q_patterns(f)
    return (f.availability, f.min_price, f.max_price, list(f.categories), patterns, anchor)


def page_statement(f: CatalogFilters, limit: int, offset: int) -> tuple[str, str, tuple[Any, ...]]:
    """(query name, SQL, arguments) of the page query for ``f.sort``."""
    name, sql = PAGE_SQL[f.sort]
    patterns, anchor = q_patterns(f)
    is_available, is_preorder = AVAILABILITY_FLAGS[f.availability]
    args: tuple[Any, ...] = (
        is_available, is_preorder, f.min_price, f.max_price, list(f.categories), patterns,
        anchor, limit, offset,
    )
    if f.sort == "relevance":
        q = f.q or ""
        escaped = like_escape(q)
        args += (q, f"{escaped}%", f"% {escaped}%")
    return name, sql, args


async def catalog_page(
    db: Executor, f: CatalogFilters, limit: int, offset: int
) -> list[JsonObject]:
    """A page of api.schemas.CatalogCard."""
    name, sql, args = page_statement(f, limit, offset)
    rows = await db.fetch(name, sql, *args)
    return [
        dict(
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


async def catalog_count(db: Executor, f: CatalogFilters) -> int:
    return int(await db.fetchval("catalog_count", COUNT_SQL, *filter_args(f)))


async def catalog_estimate(db: Executor, f: CatalogFilters) -> int:
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


async def catalog_listing(
    db: Executor,
    f: CatalogFilters,
    limit: int,
    offset: int,
    known: tuple[int, int] | None = None,
) -> JsonObject:
    """Page + exact total + estimate: {"items", "total", "total_estimate"} (api/reads.py adds
    page and page_size: api.schemas.CatalogPage). ``known`` = (total, estimate) already
    computed for these filters in this data generation (another page of them): only the page
    query runs. Else a short page (0 < rows < limit, or no rows on page 1) is the last one, so it
    proves the total and the count is skipped; the estimate is the count's EXPLAIN (planning
    only)."""
    items = await catalog_page(db, f, limit, offset)
    if known is not None:
        total, estimate = known
    else:
        if 0 < len(items) < limit or (offset == 0 and not items):
            total = offset + len(items)
        else:
            total = await catalog_count(db, f)
        estimate = await catalog_estimate(db, f)
    return dict(items=items, total=total, total_estimate=estimate)
