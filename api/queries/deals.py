"""Current deals: deals_page.sql (a page, discount desc) and deals_count.sql (exact total);
catalog-card badges: deals_badges.sql."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from api.db import Executor
from api.encoding import money, timestamp
from api.queries import JsonObject, load_sql

PAGE_SQL = load_sql("deals_page")
COUNT_SQL = load_sql("deals_count")
BADGES_SQL = load_sql("deals_badges")

#: availability -> (is_available, is_preorder) wanted; a deal is always one or the other
AVAILABILITY_FLAGS: dict[str, tuple[bool | None, bool | None]] = {
    "any": (None, None),
    "available": (True, None),
    "preorder": (None, True),
}
#: one deal (api.schemas.DealItem)
Deal = JsonObject
#: strongest first; the mart's is_lowest_* flags
BADGES = (
    ("lowest_ever", "is_lowest_ever"),
    ("lowest_365d", "is_lowest_365d"),
    ("lowest_90d", "is_lowest_90d"),
    ("lowest_30d", "is_lowest_30d"),
)


@dataclass(frozen=True)
class DealFilters:
    min_discount: Decimal
    availability: str
    categories: tuple[str, ...]
    seller: str | None

    def args(self) -> tuple[Any, ...]:
        """$1..$5 of deals_page.sql and deals_count.sql."""
        is_available, is_preorder = AVAILABILITY_FLAGS[self.availability]
        return (self.min_discount, is_available, is_preorder, list(self.categories), self.seller)

    def key(self) -> str:
        return (
            f"{self.min_discount}:{self.availability}:{','.join(self.categories)}:"
            f"{self.seller or ''}"
        )


def badges(row: asyncpg.Record) -> list[str]:
    return [name for name, column in BADGES if row[column]]


async def deals_page(db: Executor, f: DealFilters, limit: int, offset: int) -> list[Deal]:
    """A page of deals (items of api.schemas.DealsPage)."""
    rows = await db.fetch("deals_page", PAGE_SQL, *f.args(), limit, offset)
    return [
        dict(
            slug=r["slug"],
            name=r["name"],
            seller=r["seller"],
            price=money(r["price"]),
            prior_price=money(r["prior_price"]),
            discount_percent=money(r["discount_percent"]),
            reduced_at=timestamp(r["reduced_at"]),
            is_available=bool(r["is_available"]),
            is_preorder=bool(r["is_preorder"]),
            badges=badges(r),
        )
        for r in rows
    ]


async def deals_count(db: Executor, f: DealFilters) -> int:
    return int(await db.fetchval("deals_count", COUNT_SQL, *f.args()))


async def deals_listing(
    db: Executor, f: DealFilters, limit: int, offset: int
) -> tuple[list[Deal], int]:
    """A page and the exact total (the count is skipped when the page proves it)."""
    items = await deals_page(db, f, limit, offset)
    if 0 < len(items) < limit or (offset == 0 and not items):
        return items, offset + len(items)
    return items, await deals_count(db, f)


async def slug_badges(db: Executor, slugs: list[str]) -> list[JsonObject]:
    """api.schemas.SlugBadges of the slugs whose cheapest offered price is a market low (slugs
    without a badge are left out)."""
    rows = await db.fetch("deals_badges", BADGES_SQL, slugs)
    out: list[JsonObject] = []
    for r in rows:
        found = [name for name, column in BADGES[1:] if r[column]]
        if found:
            out.append(dict(slug=r["slug"], badges=found))
    return out
