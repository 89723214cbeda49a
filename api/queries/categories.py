"""Category facet: categories.sql."""

from __future__ import annotations

from api.db import Executor
from api.queries import JsonObject, load_sql

SQL = load_sql("categories")


async def categories(db: Executor) -> list[JsonObject]:
    """api.schemas.CategoryCount, most products first."""
    rows = await db.fetch("categories", SQL)
    return [dict(name=r["name"], count=int(r["slug_count"])) for r in rows]
