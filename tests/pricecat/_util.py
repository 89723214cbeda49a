"""Helpers shared by the pricecat tests: run `pricecat seed` in-process on a throwaway database."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import asyncpg

from pricecat import seed
from pricecat.config import Settings

#: content checksum of the raw table (row text distinguishes NULL from '')
CHECKSUM_SQL = """
select md5(string_agg(t::text, e'\\n' order by t.id))
from public.product_price_snapshots as t
"""


def seed_args(**overrides: Any) -> argparse.Namespace:
    values: dict[str, Any] = {
        "rows": 20_000,
        "slugs": 500,
        "seed": 7,
        "now": "2025-03-01T12:00:00Z",
        "append_cycle": False,
        "history_multiplier": 1,
        "if_empty": False,
        "truncate": False,
    }
    values.update(overrides)
    return argparse.Namespace(**values)


def run_seed(settings: Settings, **overrides: Any) -> int:
    return seed.main(settings, seed_args(**overrides))


def fetchval(settings: Settings, sql: str, *args: Any) -> Any:
    async def go() -> Any:
        conn = await asyncpg.connect(settings.database_url)
        try:
            await conn.execute("set timezone = 'UTC'")
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(go())
