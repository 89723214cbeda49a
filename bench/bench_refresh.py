"""Refresh at production scale: wall time and split, reader latency across the publish swap,
and the refresh time after one more scrape cycle.

    .venv/bin/python -m bench.bench_refresh [--refreshes 3] [--workers 4] [--no-append] [--no-write]

Against DATABASE_URL (default: database `pricecat` with the 2.08M-row seed, migrated). Each refresh
is a real `pricecat refresh` subprocess (ephemeral Prefect, dbt build of seeds + staging + marts +
tests into `catalog_build`, publish by schema swap), so "wall" includes Prefect's start-up; the
split comes from that run's `catalog_ops.refresh_runs.timings`.

1. one refresh on its own: wall time and split (freshness, build — with dbt's summed node time for
   models / data tests / unit tests / seeds —, publish, drop of the old schema, generation bump);
2. a steady stream of API-like reads (`--workers` asyncpg connections as the API role, each issuing
   the product-by-slug pair of queries — the summary row, then the seller rows — back to back with
   a 10 ms pause, slugs drawn at random) for a quiet baseline, then during `--refreshes`
   consecutive refreshes: p50/p99/max latency and errors, overall and in the ±2 s around each
   publish (a watcher polls the relation OID every 20 ms to time the swap);
3. `pricecat seed --append-cycle` (timed), then one more refresh.

Figures go to the "Refresh" section of docs/BENCHMARKS.md (`--no-write` to only print).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench.common import REPO_ROOT, machine, percentile, replace_section, today
from pricecat.config import API_ROLE, Settings, parse_database_url, with_user

SECTION = "Refresh"
PRICECAT = str(REPO_ROOT / ".venv" / "bin" / "pricecat")

SUMMARY_SQL = "select * from catalog.catalog_slug_summary where slug = $1"
SELLERS_SQL = (
    "select * from catalog.catalog_slug_seller_summary where slug = $1 order by seller_priority"
)
OID_SQL = "select to_regclass('catalog.catalog_slug_summary')::oid"


NOTES = (
    "Reading: the swap itself is invisible to readers (publish = one transaction of two schema"
    " renames, tens of ms; the ±2 s window around each publish is as fast as the baseline) and"
    " no request failed. The worst request *during* a refresh waits on CPU, not on locks: dbt's"
    " build and the readers share 2 cores. Wall minus flow time is the `pricecat refresh`"
    " process's own cost (Python + Prefect ephemeral server start-up, ~15 s); a served"
    " deployment skips most of it. Freshness is mostly dbt start-up and parse (a full parse"
    " when the partial-parse cache does not match)."
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
        PRICECAT, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        cwd=REPO_ROOT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, time.monotonic() - t0, out.decode(errors="replace")


async def refresh(settings: Settings) -> dict[str, Any]:
    for _attempt in range(40):
        rc, wall, out = await pricecat("refresh")
        if rc != 0:
            sys.stderr.write(out[-5000:])
            raise SystemExit(f"pricecat refresh failed (exit {rc})")
        published = re.search(r"refresh run (\d+) published", out)
        if published:
            break
        print("  another refresh holds the lock; retrying in 15 s", flush=True)
        await asyncio.sleep(15)
    else:
        raise SystemExit("gave up waiting for the refresh lock")
    conn = await asyncpg.connect(settings.database_url)
    try:
        row = await conn.fetchrow(
            "select run_id, status, duration_seconds, timings, slug_rows, slug_seller_rows"
            " from catalog_ops.refresh_runs where run_id = $1",
            int(published.group(1)),
        )
    finally:
        await conn.close()
    assert row is not None
    result = dict(row)
    result["timings"] = json.loads(row["timings"])
    result["wall"] = wall
    print(f"  refresh run {row['run_id']}: wall {wall:.1f} s, flow {row['duration_seconds']} s,"
          f" {result['timings']}", flush=True)
    return result


def stats(samples: list[Sample]) -> dict[str, float]:
    ok = [s.seconds * 1000 for s in samples if s.error is None]
    if not ok:
        return {"n": 0, "errors": len(samples), "p50": 0, "p99": 0, "max": 0}
    return {
        "n": len(samples),
        "errors": sum(1 for s in samples if s.error is not None),
        "p50": percentile(ok, 50),
        "p99": percentile(ok, 99),
        "max": max(ok),
    }


def split_line(r: dict[str, Any]) -> str:
    t = r["timings"]
    parts = [
        f"wall {r['wall']:.1f} s (flow {float(r['duration_seconds']):.1f} s)",
        f"freshness {t.get('freshness', 0):.1f} s",
        f"build {t.get('build', 0):.1f} s",
        f"publish {t.get('publish', 0) * 1000:.0f} ms",
        f"drop old {t.get('drop_old', 0) * 1000:.0f} ms",
    ]
    return ", ".join(parts)


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
    conn = await asyncpg.connect(settings.database_url)
    try:
        raw_rows = await conn.fetchval("select count(*) from public.product_price_snapshots")
    finally:
        await conn.close()
    print(f"database {pg.dbname}: {raw_rows:,} raw rows", flush=True)

    print("1. single refresh", flush=True)
    single = await refresh(settings)

    conn = await asyncpg.connect(api_dsn)
    try:
        records = await conn.fetch("select slug from catalog.catalog_slug_summary")
        slugs = [r["slug"] for r in records]
    finally:
        await conn.close()

    print(f"2. {args.workers} readers: {args.baseline} s baseline, then {args.refreshes} refreshes",
          flush=True)
    stream = Stream()
    tasks = [asyncio.create_task(reader(api_dsn, slugs, stream, i)) for i in range(args.workers)]
    tasks.append(asyncio.create_task(watcher(api_dsn, stream)))
    await asyncio.sleep(args.baseline)
    baseline_end = time.monotonic()
    during = [await refresh(settings) for _ in range(args.refreshes)]
    load_end = time.monotonic()
    await asyncio.sleep(2)
    stream.stop.set()
    await asyncio.gather(*tasks)

    baseline = stats([s for s in stream.samples if s.at < baseline_end])
    under = stats([s for s in stream.samples if baseline_end <= s.at <= load_end])
    near = stats([
        s for s in stream.samples if any(abs(s.at - w) <= 2.0 for w in stream.swaps)
    ])
    errors = sorted({s.error for s in stream.samples if s.error})[:5]
    print("  baseline:", fmt(baseline), "\n  during refreshes:", fmt(under),
          "\n  ±2 s around publish:", fmt(near), f"\n  swaps seen: {len(stream.swaps)}", flush=True)

    append_line = "skipped (--no-append)"
    after: dict[str, Any] | None = None
    if args.append:
        print("3. append one scrape cycle, refresh again", flush=True)
        rc, seconds, out = await pricecat("seed", "--append-cycle")
        if rc != 0:
            sys.stderr.write(out[-3000:])
            raise SystemExit("pricecat seed --append-cycle failed")
        conn = await asyncpg.connect(settings.database_url)
        try:
            rows_after = await conn.fetchval("select count(*) from public.product_price_snapshots")
        finally:
            await conn.close()
        append_line = (f"`pricecat seed --append-cycle` {seconds:.1f} s "
                       f"(+{rows_after - raw_rows:,} rows → {rows_after:,})")
        after = await refresh(settings)

    lines = [
        f"Command: `.venv/bin/python -m bench.bench_refresh` (refreshes={args.refreshes},"
        f" workers={args.workers}), database `{pg.dbname}` with {raw_rows:,} raw rows"
        f" ({single['slug_rows']:,} slugs, {single['slug_seller_rows']:,} slug×seller rows)."
        f" {machine()}, shared with other jobs; {today()}.",
        "",
        "Each refresh is a `pricecat refresh` process: ephemeral Prefect start-up, advisory lock,"
        " `dbt source freshness`, `dbt build` (seeds, staging view, both marts, data + unit"
        " tests) into `catalog_build`, publish by schema swap, drop of the old schema, Redis"
        " generation bump. Wall = the whole process; the split is the flow's own timings"
        " (`catalog_ops.refresh_runs.timings`); dbt node times are summed per type (2 threads"
        " overlap).",
        "",
        "| run | split | dbt node time |",
        "|---|---|---|",
        f"| single refresh | {split_line(single)} | {node_line(single)} |",
    ]
    for i, r in enumerate(during, 1):
        lines.append(f"| under load #{i} | {split_line(r)} | {node_line(r)} |")
    if after is not None:
        lines.append(f"| after append-cycle | {split_line(after)} | {node_line(after)} |")
    lines += [
        "",
        f"Append: {append_line}.",
        "",
        f"Readers: {args.workers} asyncpg connections as `{API_ROLE}`, each issuing the API's"
        " product-by-slug pair (summary row + seller rows, prepared statements, no explicit"
        " transaction) with a 10 ms pause; latency = both queries.",
        "",
        "| window | requests | errors | p50 | p99 | max |",
        "|---|---|---|---|---|---|",
    ]
    for label, st in (
        (f"quiet baseline ({args.baseline} s)", baseline),
        (f"during {args.refreshes} consecutive refreshes", under),
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
    parser.add_argument("--no-append", dest="append", action="store_false")
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
