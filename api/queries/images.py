"""The image proxy's lookup: image_url.sql (the slug's hero image URL, from the read model)."""

from __future__ import annotations

from typing import NamedTuple

from api.db import Executor
from api.queries import load_sql

IMAGE_URL_SQL = load_sql("image_url")


class ImageSource(NamedTuple):
    name: str | None
    url: str | None


async def hero_image(db: Executor, slug: str) -> ImageSource | None:
    """The slug's name and hero image URL; None = unknown slug."""
    r = await db.fetchrow("image_url", IMAGE_URL_SQL, slug)
    if r is None:
        return None
    return ImageSource(name=r["name"], url=r["hero_image_url"] or None)
