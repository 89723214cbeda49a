"""Type-ahead: suggest.sql."""

from __future__ import annotations

from typing import TypedDict

from api.db import Executor
from api.encoding import money
from api.filters import SuggestQuery, like_escape
from api.queries import load_sql

SQL = load_sql("suggest")
#: shorter queries match by substring only (see suggest.sql)
MIN_SIMILARITY_LENGTH = 3


class Suggestion(TypedDict):
    slug: str
    name: str | None
    hero_image_url: str | None
    min_price: float | None
    is_available: bool
    is_preorder: bool


async def suggest(db: Executor, query: SuggestQuery) -> list[Suggestion]:
    escaped = like_escape(query.q)
    rows = await db.fetch(
        "suggest",
        SQL,
        query.q,
        f"%{escaped}%",
        f"{escaped}%",
        f"% {escaped}%",
        query.availability,
        query.limit,
        len(query.q) >= MIN_SIMILARITY_LENGTH,
    )
    return [
        Suggestion(
            slug=r["slug"],
            name=r["name"],
            hero_image_url=r["hero_image_url"],
            min_price=money(r["min_price"]),
            is_available=bool(r["is_available"]),
            is_preorder=bool(r["is_preorder"]),
        )
        for r in rows
    ]
