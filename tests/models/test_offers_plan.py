"""A young history (one or two snapshots per offer) must not blow up the planner's estimates for
int_seller_offers_merged.

The model once joined its picked-texts CTE once per text (five joins): the planner, knowing
nothing of a CTE's id uniqueness, multiplied its row estimates at every join (~10^17 rows for
32k offers), sized its hash tables by them (GBs, in batches) and a full rebuild of 50,000 raw
rows over 11,059 games did not end in ten minutes. This test builds what the model reads from a
young history (`pricecat seed`, ~1.5 snapshots per offer), compiles its full-rebuild SQL and
checks the planner's row estimate for the whole statement stays within a small factor of the
offers it yields (one row per offer): a value from the planner, not a timing.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from bench.procs import PRICECAT
from pricecat.config import Settings
from pricecat.dbt import run_dbt
from tests import helpers

ROWS, SLUGS = 6000, 1300
MODEL = "int_seller_offers_merged"


@pytest.fixture(scope="module")
def young(base_settings: Settings) -> Iterator[Settings]:
    with helpers.throwaway_database(base_settings, "pricecat_young") as settings:
        env = {**os.environ, "DATABASE_URL": settings.database_url}
        subprocess.run(
            [PRICECAT, "seed", "--rows", str(ROWS), "--slugs", str(SLUGS)],
            env=env, check=True, capture_output=True,
        )
        yield settings


async def _fetch(settings: Settings, sql: str) -> object:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def test_full_rebuild_estimate_stays_near_the_offers(young: Settings, tmp_path: Path) -> None:
    schema = "young"
    upstream = run_dbt(
        young,
        ["build", "--select", f"+{MODEL}", "--exclude", MODEL, "resource_type:test",
         "resource_type:unit_test",
         "--full-refresh"],
        schema=schema, target_path=str(tmp_path), capture=True,
    )
    assert upstream.returncode == 0, upstream.stdout[-4000:]
    compiled = run_dbt(
        young, ["compile", "--select", MODEL, "--full-refresh"],
        schema=schema, target_path=str(tmp_path), capture=True,
    )
    assert compiled.returncode == 0, compiled.stdout[-4000:]
    [sql_file] = (tmp_path / "compiled").rglob(f"{MODEL}.sql")
    sql = sql_file.read_text()

    offers = asyncio.run(_fetch(young, (
        "select count(distinct (product_name_normalized, seller)) "
        "from public.product_price_snapshots"
    )))
    assert isinstance(offers, int) and offers > 1000  # the young shape: ~1.5 rows per offer
    plan = asyncio.run(_fetch(young, f"explain (format json) {sql}"))
    estimate = json.loads(str(plan))[0]["Plan"]["Plan Rows"]
    # one row per offer; the five-join form estimated 27 million here (3,794 offers)
    assert estimate <= 100 * offers, f"planner expects {estimate:,} rows for {offers:,} offers"
