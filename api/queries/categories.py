"""Category facet: categories.sql."""

from __future__ import annotations

from typing import TypedDict

from api.db import Executor
from api.queries import load_sql

SQL = load_sql("categories")


class CategoryCount(TypedDict):
    name: str
    count: int


async def categories(db: Executor) -> list[CategoryCount]:
    rows = await db.fetch("categories", SQL)
    return [CategoryCount(name=r["name"], count=int(r["slug_count"])) for r in rows]
