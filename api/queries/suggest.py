"""Type-ahead: suggest.sql."""

from __future__ import annotations

from api.db import Executor
from api.encoding import money
from api.filters import SuggestQuery, like_escape
from api.queries import JsonObject, load_sql

SQL = load_sql("suggest")
#: shorter queries match by substring only (see suggest.sql)
MIN_SIMILARITY_LENGTH = 3


async def suggest(db: Executor, query: SuggestQuery) -> list[JsonObject]:
    """api.schemas.Suggestion, best first."""
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
        dict(
            slug=r["slug"],
            name=r["name"],
            hero_image_url=r["hero_image_url"],
            min_price=money(r["min_price"]),
            is_available=bool(r["is_available"]),
            is_preorder=bool(r["is_preorder"]),
        )
        for r in rows
    ]
