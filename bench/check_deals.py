"""Recompute the deals mart from the raw snapshots in Python (an independent implementation of
docs/DESIGN.md "Deals") for every offer with a discount or a reduction plus a random sample, and
compare with the built `catalog_slug_seller_deals`.

    DATABASE_URL=... .venv/bin/python -m bench.check_deals [--schema catalog] [--sample 500]

Exits 1 on any mismatch (prints the first ones).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import asyncpg

from pricecat.config import Settings

DAY = timedelta(days=1)


def expected(
    snapshots: list[asyncpg.Record], as_of: datetime, offered: bool
) -> dict[str, Any]:
    """snapshots: (id, scraped_at, price) of one offer in (scraped_at, id) order."""
    # price in force: the latest priced snapshot at each instant; steps on changes
    priced = [s for s in snapshots if s["price"] is not None and s["scraped_at"] <= as_of]
    latest_at_instant: dict[datetime, Decimal] = {}
    for s in priced:
        latest_at_instant[s["scraped_at"]] = s["price"]
    steps: list[tuple[datetime, Decimal]] = []
    for at, price in sorted(latest_at_instant.items()):
        if not steps or steps[-1][1] != price:
            steps.append((at, price))
    ends = [s[0] for s in steps[1:]] + [None]
    out: dict[str, Any] = {"price": steps[-1][1] if steps else None}
    for days in (30, 90, 365):
        start = as_of - days * DAY
        inside = [(p, end or as_of) for (at, p), end in zip(steps, ends, strict=True)
                  if end is None or end > start]
        low = min((p for p, _ in inside), default=None)
        out[f"low_{days}d_price"] = low
        out[f"low_{days}d_at"] = max((e for p, e in inside if p == low), default=None)
    prior = discount = reduced_at = None
    if len(steps) >= 2 and steps[-1][1] < steps[-2][1]:
        reduced_at = steps[-1][0]
        first_seen = snapshots[0]["scraped_at"]
        if first_seen <= reduced_at - 30 * DAY:
            window = [p for (at, p), end in zip(steps, ends, strict=True)
                      if at < reduced_at and end is not None and end > reduced_at - 30 * DAY]
            prior = min(window)
            if offered and steps[-1][1] < prior:
                discount = ((prior - steps[-1][1]) / prior * 100).quantize(
                    Decimal("0.1"), rounding=ROUND_HALF_UP
                )
    out.update(reduced_at=reduced_at, prior_price=prior, discount_percent=discount)
    return out


async def check(settings: Settings, schema: str, sample: int) -> int:
    conn = await asyncpg.connect(settings.database_url)
    try:
        mart = f"{schema}.catalog_slug_seller_deals"
        rows = await conn.fetch(
            f"(select * from {mart} where reduced_at is not null)"  # noqa: S608 (CLI input)
            f" union (select * from {mart} order by random() limit $1)",
            sample,
        )
        bad = 0
        for row in rows:
            snapshots = await conn.fetch(
                "select id, scraped_at, price from public.product_price_snapshots "
                "where product_name_normalized = $1 and seller = $2 order by scraped_at, id",
                row["slug"], row["seller"],
            )
            want = expected(snapshots, row["as_of"], row["is_available"] or row["is_preorder"])
            got = {k: row[k] for k in want}
            if got != want:
                bad += 1
                if bad <= 5:
                    print("MISMATCH", row["slug"], row["seller"], got, want, file=sys.stderr)
        discounts = sum(1 for r in rows if r["discount_percent"] is not None)
        print(f"checked {len(rows)} offers ({discounts} with a discount): {bad} mismatches")
        return 1 if bad else 0
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schema", default="catalog")
    parser.add_argument("--sample", type=int, default=500)
    args = parser.parse_args()
    return asyncio.run(check(Settings.from_env(), args.schema, args.sample))


if __name__ == "__main__":
    raise SystemExit(main())
