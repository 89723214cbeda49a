"""`pricecat simulate-scraper`: a stand-in for the scraper, so a newcomer can watch prices change.

Every ``--every`` seconds it appends one scrape cycle (one snapshot per existing slug + seller,
with the generator's price changes, sell-outs and NULL prices; ``pricecat.seed.append_cycle``)
stamped with the current time, until stopped or ``--cycles`` are done. The scheduled refresh
then publishes them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from pricecat.config import Settings
from pricecat.seed import append_cycle


async def _simulate(settings: Settings, every: float, cycles: int, seed: int) -> int:
    done = 0
    while cycles <= 0 or done < cycles:
        started = time.monotonic()
        conn = await asyncpg.connect(settings.database_url)
        try:
            stats = await append_cycle(
                conn, seed + done, datetime.now(UTC), interval=timedelta(seconds=every)
            )
        finally:
            await conn.close()
        done += 1
        print(
            f"simulate-scraper: cycle {done}: {stats.rows:,} rows at {stats.max_scraped_at} "
            f"({stats.seconds:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
        if cycles > 0 and done >= cycles:
            break
        await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))
    return 0


def main(settings: Settings, args: argparse.Namespace) -> int:
    if args.every <= 0:
        print("simulate-scraper: --every must be > 0", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_simulate(settings, args.every, args.cycles, args.seed))
    except ValueError as exc:  # e.g. the raw table is empty
        print(f"simulate-scraper: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
