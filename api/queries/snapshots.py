"""Newest raw snapshots with the previous price: recent_snapshots.sql."""

from __future__ import annotations

from api.db import Executor
from api.encoding import money, timestamp
from api.queries import JsonObject, load_sql

SQL = load_sql("recent_snapshots")


async def recent_snapshots(db: Executor, limit: int) -> list[JsonObject]:
    """api.schemas.RecentSnapshot, newest first."""
    rows = await db.fetch("recent_snapshots", SQL, limit)
    return [
        dict(
            slug=r["slug"],
            seller=r["seller"],
            price=money(r["price"]),
            previous_price=money(r["previous_price"]),
            availability_raw=r["availability_raw"],
            is_available=bool(r["is_available"]),
            is_preorder=bool(r["is_preorder"]),
            scraped_at=timestamp(r["scraped_at"]),
        )
        for r in rows
    ]
