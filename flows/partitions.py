"""The refresh flow's first step: the raw table's monthly partitions exist ahead of time.

Each run makes sure the current month and the next `MONTHS_AHEAD` months have a partition (LIKE +
ATTACH, see `pricecat.partitions`). Partitions exist two months before they are needed, so a run
that cannot get its lock (lock_timeout, retried inside) only logs a warning: the next run, 15
minutes later, tries again, and a row beyond the last month is kept by the DEFAULT partition.
"""

from __future__ import annotations

import logging

import asyncpg
from prefect import task
from prefect.cache_policies import NO_CACHE

from pricecat import partitions
from pricecat.config import Settings

log = logging.getLogger(__name__)


@task(name="ensure-partitions", cache_policy=NO_CACHE, persist_result=False)
async def ensure_partitions(settings: Settings) -> list[str]:
    """Create the missing monthly partitions; returns their names (usually none)."""
    conn = await asyncpg.connect(
        settings.database_url, timeout=10,
        server_settings={"application_name": "pricecat-refresh"},
    )
    try:
        created = await partitions.ensure_partitions(conn, partitions.MONTHS_AHEAD)
    except asyncpg.LockNotAvailableError as exc:
        log.warning("partitions ahead not created this run (lock not available): %s", exc)
        return []
    finally:
        await conn.close()
    if created:
        log.info("created raw partitions %s", ", ".join(created))
    return created
