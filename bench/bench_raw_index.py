"""Slug-detail query on the raw table: latency before vs after the raw-table indexes, in one run.

    .venv/bin/python -m bench.bench_raw_index [--after 1000] [--before 40] [--seed-time]

Against DATABASE_URL (default: database `pricecat` holding the 2.08M-row seed, migrated with
indexes). The site's query

    select ... from public.product_price_snapshots
    where product_name_normalized = $1 order by scraped_at

runs for randomly sampled slugs on two connections to the same table:

* **before** — index use disabled for that session (`enable_indexscan`, `enable_bitmapscan`,
  `enable_indexonlyscan` off), i.e. the plan the site had with only the primary key: a
  (parallel) sequential scan;
* **after** — default planner settings with the migrated indexes.

Latency is client-side wall time of `fetch` (plan + execute + transfer of the slug's rows),
warm cache. `--seed-time` also times `pricecat migrate --no-indexes`, `pricecat seed` (defaults)
and `pricecat migrate` on a throwaway database. Figures go to the "Raw table: slug-detail query"
section of docs/BENCHMARKS.md (`--no-write` to only print).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import REPO_ROOT, machine, percentile, replace_section, today
from pricecat.config import Settings, parse_database_url, with_database

SECTION = "Raw table: slug-detail query"
SLUG_DETAIL_SQL = """
select id, scraped_at, seller, product_code, product_name_original, price, availability,
       url, image_url
from public.product_price_snapshots
where product_name_normalized = $1
order by scraped_at
"""
NO_INDEX_SETTINGS = (
    "set enable_indexscan = off",
    "set enable_bitmapscan = off",
    "set enable_indexonlyscan = off",
)


@dataclass
class Series:
    label: str
    plan: str
    times_ms: list[float]
    rows: list[int]

    def p(self, pct: float) -> float:
        return percentile(self.times_ms, pct)


def _plan_summary(plan: dict[str, Any]) -> str:
    parts: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        label = node["Node Type"]
        if "Index Name" in node:
            label += f" on {node['Index Name']}"
        parts.append(label)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan)
    return " → ".join(parts)


async def _series(settings: Settings, label: str, slugs: list[str], *, indexes: bool) -> Series:
    conn = await asyncpg.connect(settings.database_url)
    try:
        if not indexes:
            for sql in NO_INDEX_SETTINGS:
                await conn.execute(sql)
        raw = await conn.fetchval(f"explain (format json) {SLUG_DETAIL_SQL}", slugs[0])
        plan = _plan_summary(json.loads(raw)[0]["Plan"])
        for slug in slugs[:3]:  # warm-up: prepare, caches
            await conn.fetch(SLUG_DETAIL_SQL, slug)
        times: list[float] = []
        rows: list[int] = []
        for k, slug in enumerate(slugs):
            started = time.perf_counter()
            result = await conn.fetch(SLUG_DETAIL_SQL, slug)
            times.append((time.perf_counter() - started) * 1000)
            rows.append(len(result))
            if not indexes and (k + 1) % 10 == 0:
                print(f"  {label}: {k + 1}/{len(slugs)}", file=sys.stderr)
        return Series(label, plan, times, rows)
    finally:
        await conn.close()


async def _facts(settings: Settings) -> dict[str, Any]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        row = await conn.fetchrow(
            """
            select
                (select count(*) from public.product_price_snapshots) as row_count,
                pg_size_pretty(pg_table_size('public.product_price_snapshots')) as table_size,
                pg_size_pretty(pg_indexes_size('public.product_price_snapshots')) as index_size,
                (select pg_size_pretty(pg_relation_size(
                    'public.idx_product_price_snapshots_slug_scraped_id'::regclass))
                ) as slug_index_size,
                current_setting('server_version') as server_version,
                current_setting('shared_buffers') as shared_buffers,
                current_setting('max_parallel_workers_per_gather') as parallel_workers
            """
        )
        slugs = [
            r[0] for r in await conn.fetch(
                "select distinct product_name_normalized from public.product_price_snapshots "
                "order by 1"
            )
        ]
        return {**dict(row), "slugs": slugs}
    finally:
        await conn.close()


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _seed_times(settings: Settings) -> dict[str, float]:
    """Time the documented seeding sequence on a throwaway database (dropped afterwards)."""
    dbname = f"pricecat_bench_seed_{os.getpid()}"
    url = with_database(settings.database_url, dbname)
    env = {**os.environ, "DATABASE_URL": url}
    cli = str(Path(sys.executable).parent / "pricecat")
    try:
        return {
            "migrate --no-indexes": _timed([cli, "migrate", "--no-indexes"], env),
            "seed": _timed([cli, "seed"], env),
            "migrate": _timed([cli, "migrate"], env),
        }
    finally:
        async def drop() -> None:
            admin = await asyncpg.connect(with_database(settings.database_url, "postgres"))
            try:
                await admin.execute(f'drop database if exists "{dbname}" with (force)')
            finally:
                await admin.close()

        asyncio.run(drop())


def _render(facts: dict[str, Any], before: Series, after: Series, seed_times: dict[str, float],
            command: str, sample_seed: int) -> str:
    ratio50 = before.p(50) / after.p(50)
    ratio95 = before.p(95) / after.p(95)
    mean_rows = sum(after.rows) / len(after.rows)
    lines = [
        f"Command: `{command}` — {today()}, {machine()}, PostgreSQL "
        f"{facts['server_version'].split()[0]} (shared_buffers {facts['shared_buffers']}, "
        f"max_parallel_workers_per_gather {facts['parallel_workers']}); other processes shared "
        "the machine.",
        "",
        f"Data: database `{facts['database']}`, {facts['row_count']:,} snapshots, "
        f"{len(facts['slugs']):,} slugs (the default `pricecat seed`), table "
        f"{facts['table_size']}, all raw indexes {facts['index_size']} (slug index "
        f"{facts['slug_index_size']}).",
        "",
        "Query: the site's slug-detail query (`SLUG_DETAIL_SQL` in the benchmark: filter on "
        "`product_name_normalized = $1`, ordered by `scraped_at`) for slugs sampled at random "
        f"(seed {sample_seed}; {mean_rows:.0f} rows per slug on average); client-side wall time "
        "of one `fetch` (plan + execute + transfer), warm cache.",
        "",
        "| | samples | p50 ms | p95 ms | max ms | plan |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for s in (before, after):
        lines.append(
            f"| {s.label} | {len(s.times_ms)} | {s.p(50):.2f} | {s.p(95):.2f} | "
            f"{max(s.times_ms):.2f} | {s.plan} |"
        )
    lines += [
        "",
        f"**Ratio (before / after): p50 ×{ratio50:.0f}, p95 ×{ratio95:.0f}.**",
        "",
        "\"Before\" is the same table and session type with index use disabled for that "
        "session (`set enable_indexscan = off; set enable_bitmapscan = off; "
        "set enable_indexonlyscan = off`), which reproduces the old plan (only the primary key "
        "existed, so Postgres scanned the whole table). \"After\" uses default planner settings "
        "with the indexes from `pricecat migrate`.",
    ]
    if "Bitmap" in after.plan:
        lines[-1] += (
            " With default costs (random_page_cost 4) Postgres picks a bitmap scan of a "
            "slug-leading index plus an in-memory sort of the slug's few hundred rows (they sit "
            "on as many heap pages); a plain index scan in (slug, scraped_at, id) order would "
            "skip the sort. Both read only the slug's rows."
        )
    if seed_times:
        lines += [
            "",
            "Seeding the benchmark data from scratch (throwaway database, same commands as "
            "`scripts/up.sh`):",
            "",
            "| step | seconds |",
            "|---|---:|",
        ]
        notes = {
            "seed": " (2,080,000 rows through COPY, then analyze)",
            "migrate": " (the five raw indexes, built concurrently, then analyze)",
        }
        lines += [
            f"| `pricecat {k}`{notes.get(k, '')} | {v:.1f} |" for k, v in seed_times.items()
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--after", type=int, default=1000, help="slugs measured with indexes")
    parser.add_argument("--before", type=int, default=40,
                        help="slugs measured without index use (each is a full scan)")
    parser.add_argument("--sample-seed", type=int, default=1)
    parser.add_argument("--seed-time", action="store_true",
                        help="also time migrate --no-indexes / seed / migrate on a throwaway db")
    parser.add_argument("--no-write", action="store_true", help="print, don't touch BENCHMARKS.md")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    facts = asyncio.run(_facts(settings))
    facts["database"] = parse_database_url(settings.database_url).dbname
    if facts["row_count"] == 0:
        print("bench: the raw table is empty; run `pricecat seed` first", file=sys.stderr)
        return 1
    rng = random.Random(args.sample_seed)
    slugs = facts["slugs"]
    after_slugs = [rng.choice(slugs) for _ in range(args.after)]
    before_slugs = [rng.choice(slugs) for _ in range(args.before)]
    print(f"bench: after (indexes), {len(after_slugs)} slugs", file=sys.stderr)
    after = asyncio.run(_series(settings, "after (indexes)", after_slugs, indexes=True))
    print(f"bench: before (index use off), {len(before_slugs)} slugs", file=sys.stderr)
    before = asyncio.run(_series(settings, "before (no index use)", before_slugs, indexes=False))
    seed_times = _seed_times(settings) if args.seed_time else {}

    command = ".venv/bin/python -m bench.bench_raw_index" + (
        " " + " ".join(argv if argv is not None else sys.argv[1:])
    ).rstrip()
    body = _render(facts, before, after, seed_times, command, args.sample_seed)
    print(body)
    if not args.no_write:
        replace_section(SECTION, body)
        print(f"bench: wrote section '{SECTION}' of docs/BENCHMARKS.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
