"""Readers across the publish: database reads of the API's product query while incremental
refreshes build and swap the read models.

    .venv/bin/python -m bench.bench_refresh [--refreshes 3] [--workers 4] [--baseline 20]
        [--no-write]

Against DATABASE_URL (default: database `pricecat` with the 2.08M-row seed, migrated and
refreshed once, so `catalog` is published). What bench_incremental measures (full rebuild,
incremental refresh after one scrape cycle, no-op) is not repeated here; this benchmark only asks
what readers see while refreshes run:

1. a steady stream of API-like reads (`--workers` asyncpg connections as the API role, each
   issuing the product-by-slug pair of queries — the summary row, then the seller rows — back to
   back with a 10 ms pause, slugs drawn at random) for a quiet `--baseline`;
2. then `--refreshes` times: `pricecat seed --append-cycle` (one new snapshot per slug + seller),
   then `pricecat refresh` (incremental: merge, build, test, publish by schema swap; a refresh
   with nothing new would be a no-op and publish nothing). A watcher polls the relation OID every
   20 ms to time each swap.

Reported: p50/p99/max latency and errors of the reads, quiet, during the refreshes and in the
±2 s around each publish; per refresh its wall time and the flow's own step timings
(`catalog_ops.refresh_runs.timings`: changes, cleanup, build, publish, dbt node time per type).
Figures go to the "Refresh" section of docs/BENCHMARKS.md (`--no-write` to only print).
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
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench.common import machine, percentile, replace_section, today
from bench.procs import PRICECAT, REPO_ROOT
from pricecat.config import API_ROLE, Settings, parse_database_url, with_user

SECTION = "Refresh"

SUMMARY_SQL = "select * from catalog.catalog_slug_summary where slug = $1"
SELLERS_SQL = (
    "select * from catalog.catalog_slug_seller_summary where slug = $1 order by seller_priority"
)
OID_SQL = "select to_regclass('catalog.catalog_slug_summary')::oid"

NOTES = (
    "Publish is one short transaction (grant, two schema renames; the `publish` step above); the"
    " old schema is kept until a later run's cleanup (replicas may still read it). Wall minus"
    " flow time is the `pricecat refresh` process's own start-up (Python, Prefect's ephemeral"
    " server), which the served schedule (`pricecat schedule`, see bench_freshness) does not"
    " start per run."
)


@dataclass
class Sample:
    at: float
    seconds: float
    error: str | None = None


@dataclass
class Stream:
    samples: list[Sample] = field(default_factory=list)
    swaps: list[float] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def reader(dsn: str, slugs: list[str], stream: Stream, seed: int) -> None:
    rng = random.Random(seed)
    conn = await asyncpg.connect(dsn)
    try:
        while not stream.stop.is_set():
            slug = rng.choice(slugs)
            t0 = time.monotonic()
            error = None
            try:
                row = await conn.fetchrow(SUMMARY_SQL, slug)
                sellers = await conn.fetch(SELLERS_SQL, slug)
                if row is None or not sellers:
                    error = f"empty answer for {slug}"
            except Exception as exc:
                error = repr(exc)
            stream.samples.append(Sample(t0, time.monotonic() - t0, error))
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def watcher(dsn: str, stream: Stream) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        last = await conn.fetchval(OID_SQL)
        while not stream.stop.is_set():
            oid = await conn.fetchval(OID_SQL)
            if oid != last:
                stream.swaps.append(time.monotonic())
                last = oid
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def pricecat(*args: str) -> tuple[int, float, str]:
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        str(PRICECAT), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        cwd=REPO_ROOT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, time.monotonic() - t0, out.decode(errors="replace")


async def last_run_id(settings: Settings) -> int:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return int(await conn.fetchval(
            "select coalesce(max(run_id), 0) from catalog_ops.refresh_runs"
        ))
    finally:
        await conn.close()


async def refresh(settings: Settings) -> dict[str, Any]:
    """One `pricecat refresh` that publishes; retried while another run holds the lock."""
    for _attempt in range(40):
        before = await last_run_id(settings)
        rc, wall, out = await pricecat("refresh")
        if rc != 0:
            sys.stderr.write(out[-5000:])
            raise SystemExit(f"pricecat refresh failed (exit {rc})")
        conn = await asyncpg.connect(settings.database_url)
        try:
            row = await conn.fetchrow(
                "select run_id, status, duration_seconds, timings from catalog_ops.refresh_runs"
                " where run_id > $1 and status <> 'skipped' order by run_id limit 1",
                before,
            )
        finally:
            await conn.close()
        if row is not None:
            break
        print("  another refresh holds the lock; retrying in 15 s", flush=True)
        await asyncio.sleep(15)
    else:
        raise SystemExit("gave up waiting for the refresh lock")
    if row["status"] != "published":
        raise SystemExit(f"refresh run {row['run_id']} ended '{row['status']}', not published"
                         " (nothing new?)")
    result = dict(row)
    result["timings"] = json.loads(row["timings"])
    result["wall"] = wall
    print(f"  refresh run {row['run_id']}: wall {wall:.1f} s, flow {row['duration_seconds']} s,"
          f" {result['timings']}", flush=True)
    return result


def stats(samples: list[Sample]) -> dict[str, float]:
    ok = [s.seconds * 1000 for s in samples if s.error is None]
    if not ok:
        return {"n": len(samples), "errors": len(samples), "p50": 0, "p99": 0, "max": 0}
    return {
        "n": len(samples),
        "errors": sum(1 for s in samples if s.error is not None),
        "p50": percentile(ok, 50),
        "p99": percentile(ok, 99),
        "max": max(ok),
    }


def split_line(r: dict[str, Any]) -> str:
    t = r["timings"]
    return ", ".join([
        f"wall {r['wall']:.1f} s (flow {float(r['duration_seconds']):.1f} s)",
        f"changes {t.get('changes', 0) * 1000:.0f} ms",
        f"cleanup {t.get('cleanup', 0) * 1000:.0f} ms",
        f"build {t.get('build', 0):.1f} s",
        f"publish {t.get('publish', 0) * 1000:.0f} ms",
    ])


def node_line(r: dict[str, Any]) -> str:
    t = r["timings"]
    names = [("dbt_models", "models"), ("dbt_tests", "data tests"),
             ("dbt_unit_tests", "unit tests"), ("dbt_seeds", "seeds")]
    return ", ".join(f"{label} {t[k]:.1f} s" for k, label in names if k in t)


def fmt(st: dict[str, float]) -> str:
    return (f"{int(st['n'])} requests, {int(st['errors'])} errors, p50 {st['p50']:.1f} ms,"
            f" p99 {st['p99']:.1f} ms, max {st['max']:.1f} ms")


async def main_async(args: argparse.Namespace) -> str:
    settings = Settings.from_env()
    pg = parse_database_url(settings.database_url)
    api_dsn = with_user(settings.database_url, API_ROLE)
    load = os.getloadavg()
    conn = await asyncpg.connect(settings.database_url)
    try:
        raw_rows = await conn.fetchval("select count(*) from public.product_price_snapshots")
    finally:
        await conn.close()
    print(f"database {pg.dbname}: {raw_rows:,} raw rows", flush=True)

    conn = await asyncpg.connect(api_dsn)
    try:
        records = await conn.fetch("select slug from catalog.catalog_slug_summary")
        slugs = [r["slug"] for r in records]
    finally:
        await conn.close()
    if not slugs:
        raise SystemExit("catalog.catalog_slug_summary is empty: run `pricecat refresh` first")

    print(f"{args.workers} readers: {args.baseline} s baseline, then {args.refreshes} x"
          " (append a scrape cycle, refresh)", flush=True)
    stream = Stream()
    tasks = [asyncio.create_task(reader(api_dsn, slugs, stream, i)) for i in range(args.workers)]
    tasks.append(asyncio.create_task(watcher(api_dsn, stream)))
    await asyncio.sleep(args.baseline)
    baseline_end = time.monotonic()
    during: list[dict[str, Any]] = []
    appended: list[float] = []
    for i in range(args.refreshes):
        rc, seconds, out = await pricecat("seed", "--append-cycle", "--seed", str(200 + i))
        if rc != 0:
            sys.stderr.write(out[-3000:])
            raise SystemExit("pricecat seed --append-cycle failed")
        appended.append(seconds)
        during.append(await refresh(settings))
    load_end = time.monotonic()
    await asyncio.sleep(2)
    stream.stop.set()
    await asyncio.gather(*tasks)

    conn = await asyncpg.connect(settings.database_url)
    try:
        rows_after = await conn.fetchval("select count(*) from public.product_price_snapshots")
    finally:
        await conn.close()
    baseline = stats([s for s in stream.samples if s.at < baseline_end])
    under = stats([s for s in stream.samples if baseline_end <= s.at <= load_end])
    near = stats([
        s for s in stream.samples if any(abs(s.at - w) <= 2.0 for w in stream.swaps)
    ])
    errors = sorted({s.error for s in stream.samples if s.error})[:5]
    print("  baseline:", fmt(baseline), "\n  during refreshes:", fmt(under),
          "\n  ±2 s around publish:", fmt(near), f"\n  swaps seen: {len(stream.swaps)}", flush=True)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=False).stdout.strip()
    lines = [
        f"Command: `.venv/bin/python -m bench.bench_refresh --refreshes {args.refreshes}"
        f" --workers {args.workers} --baseline {args.baseline}` on commit `{commit}`, {today()};"
        f" database `{pg.dbname}`, {raw_rows:,} raw rows at the start, {rows_after:,} after.",
        f"Machine: {machine()}; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at"
        " the start.",
        "",
        "Each refresh follows `pricecat seed --append-cycle` (one new snapshot per slug + seller;"
        f" {', '.join(f'{s:.1f}' for s in appended)} s) and is a `pricecat refresh` process:"
        " ephemeral Prefect, advisory lock, the `changes` check, cleanup of leftover schemas,"
        " `dbt build` into `catalog_build` (the incremental state merges the new rows, the marts"
        " are rebuilt from it, data tests), publish by schema swap. Wall = the whole process;"
        " the split is the flow's own timings (`catalog_ops.refresh_runs.timings`); dbt node"
        " times are summed per type (threads overlap). Full rebuild and no-op figures:"
        " \"Incremental refresh (bench_incremental)\".",
        "",
        "| refresh | split | dbt node time |",
        "|---|---|---|",
    ]
    for i, r in enumerate(during, 1):
        lines.append(f"| #{i} under read load | {split_line(r)} | {node_line(r)} |")
    lines += [
        "",
        f"Readers: {args.workers} asyncpg connections as `{API_ROLE}`, each issuing the API's"
        " product-by-slug pair (summary row + seller rows, prepared statements, no explicit"
        " transaction) with a 10 ms pause; latency = both queries. An error is an exception or"
        " an empty answer.",
        "",
        "| window | requests | errors | p50 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, st in (
        (f"quiet baseline ({args.baseline} s)", baseline),
        (f"during {args.refreshes} append + refresh rounds", under),
        (f"±2 s around each of the {len(stream.swaps)} publishes", near),
    ):
        lines.append(
            f"| {label} | {int(st['n'])} | {int(st['errors'])} | {st['p50']:.1f} ms"
            f" | {st['p99']:.1f} ms | {st['max']:.1f} ms |"
        )
    if errors:
        lines += ["", "Errors seen: " + "; ".join(f"`{e[:160]}`" for e in errors)]
    lines += ["", NOTES]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--refreshes", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--baseline", type=int, default=20, help="seconds of reads before")
    parser.add_argument("--no-write", dest="write", action="store_false")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    body = asyncio.run(main_async(args))
    print("\n" + body)
    if args.write:
        replace_section(SECTION, body)
        print(f"\nwrote the '{SECTION}' section of docs/BENCHMARKS.md")


if __name__ == "__main__":
    main()
