"""The data generation: the id of the build the published read models come from.

Every build of the marts writes one row into ``catalog_build_info`` with a ``build_id`` drawn
from the sequence ``catalog_ops.build_ids`` (models/marts/catalog/catalog_build_info.sql). The
table is published with the other marts by the schema swap, so reading
``catalog.catalog_build_info`` tells which build the ``catalog`` tables belong to, on the primary
and on any replica that has replayed the swap. The id is unique per build and never reused: a
Redis restart or flush cannot send it back in time, and memos keyed by it (catalog totals) can
never serve another build's numbers.

API cache keys embed it (``<ns>:g<build_id>:...``), so a publish turns the whole cache over at
once; an answer of several statements re-reads it to prove every statement read the same build.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from pricecat.config import PUBLISHED_SCHEMA

BUILD_INFO_TABLE = "catalog_build_info"
#: The generation of the published read models and the one it replaced (constant names only).
GENERATION_SQL = (
    f"select build_id, previous_build_id from {PUBLISHED_SCHEMA}.{BUILD_INFO_TABLE}"  # noqa: S608
)


class GenerationMoved(Exception):
    """The published build changed while an answer was being read (a publish happened between
    its statements, or since its cache key's generation was read)."""

    def __init__(self, expected: int, found: int) -> None:
        super().__init__(f"expected build {expected}, found {found}")
        self.expected = expected
        self.found = found


async def read_build(conn: Any) -> tuple[int, int | None]:
    """(build id, previous build id) of the published read models; (0, None) when nothing (or a
    build older than catalog_build_info) is published. ``conn``: an asyncpg connection."""
    try:
        row = await conn.fetchrow(GENERATION_SQL)
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        return 0, None
    if row is None:
        return 0, None
    previous = row["previous_build_id"]
    return int(row["build_id"]), None if previous is None else int(previous)


async def read_generation(conn: Any) -> int:
    """The published build id (0 when nothing is published)."""
    return (await read_build(conn))[0]
