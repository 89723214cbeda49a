"""Full `dbt build` of the read models at production size, mart sizes and row counts.

    .venv/bin/python -m bench.bench_dbt [--runs 2]

Builds into a throwaway schema of the `pricecat` database (never the published `catalog`), times
each run, reads per-node timings from run_results.json, measures the marts' table + index sizes,
then drops the schema.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import asyncpg

from bench.common import machine, replace_section, today
from pricecat.config import Settings
from pricecat.dbt import run_dbt

SCHEMA = "catalog_bench_dbt"
MARTS = ("catalog_slug_seller_summary", "catalog_slug_summary")


async def _sizes(settings: Settings) -> tuple[int, dict[str, tuple[int, int, int]]]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        raw_rows = await conn.fetchval("select count(*) from public.product_price_snapshots")
        out: dict[str, tuple[int, int, int]] = {}
        for mart in MARTS:
            rel = f"{SCHEMA}.{mart}"
            rows = await conn.fetchval(f"select count(*) from {rel}")  # noqa: S608 (constants)
            table = await conn.fetchval("select pg_table_size($1::regclass)", rel)
            indexes = await conn.fetchval("select pg_indexes_size($1::regclass)", rel)
            out[mart] = (rows, table, indexes)
        return raw_rows, out
    finally:
        await conn.close()


async def _drop(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(f"drop schema if exists {SCHEMA} cascade")
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    settings = Settings.from_env()
    load_before = os.getloadavg()[0]
    walls: list[float] = []
    nodes: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            asyncio.run(_drop(settings))
            started = time.perf_counter()
            proc = run_dbt(settings, ["build"], schema=SCHEMA, target_path=tmp, capture=True)
            walls.append(time.perf_counter() - started)
            if proc.returncode != 0:
                print(proc.stdout[-4000:])
                raise SystemExit("dbt build failed")
            results = json.loads((Path(tmp) / "run_results.json").read_text())["results"]
            nodes = {r["unique_id"]: r["execution_time"] for r in results}
            print(f"run {i + 1}: dbt build {walls[-1]:.1f} s wall")
    raw_rows, sizes = asyncio.run(_sizes(settings))
    asyncio.run(_drop(settings))
    models = {k.split(".")[-1]: v for k, v in nodes.items() if k.startswith("model.")}
    tests_seconds = sum(v for k, v in nodes.items() if k.startswith(("test.", "unit_test.")))
    mib = 1024 * 1024
    lines = [
        "Command: `.venv/bin/python -m bench.bench_dbt` — "
        f"{today()}, {machine()}, load average {load_before:.1f} at start.",
        "",
        f"Full `dbt build` (seeds, staging view, both marts, every data and unit test) over "
        f"{raw_rows:,} raw snapshots into a throwaway schema; {args.runs} runs.",
        "",
        "| run | wall s |",
        "|---|---:|",
        *[f"| {i + 1} | {w:.1f} |" for i, w in enumerate(walls)],
        "",
        "Node times of the last run (dbt's execution_time):",
        "",
        "| node | s |",
        "|---|---:|",
        *[f"| {name} | {sec:.1f} |" for name, sec in sorted(models.items())],
        f"| all tests ({sum(1 for k in nodes if k.startswith(('test.', 'unit_test.')))}) "
        f"| {tests_seconds:.1f} |",
        "",
        "| mart | rows | table MiB | indexes MiB |",
        "|---|---:|---:|---:|",
        *[
            f"| {m} | {r:,} | {t / mib:.1f} | {ix / mib:.1f} |"
            for m, (r, t, ix) in sizes.items()
        ],
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        replace_section("dbt build and mart sizes", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
