"""Converting the plain raw table to monthly partitions while a writer inserts: the write-lock time.

    .venv/bin/python -m bench.bench_partition [--rows 2080000] [--no-write] [--keep]

On a throwaway database next to DATABASE_URL's:

1. the raw table as it was before partitioning (plain, identity primary key:
   `pricecat.partitions.LEGACY_TABLE_DDL`), `pricecat seed --rows N`, the five raw indexes
   (`create index`, as the old `pricecat migrate` left them), analyze;
2. a writer inserts one snapshot per statement (autocommit, `scraped_at = now()`, the id from the
   table's default) in a loop, and a reader runs the slug-detail query in a loop; each records the
   wall time of every statement;
3. after a few seconds of that, `pricecat migrate` (the real command, subprocess) converts the
   table; the writer and reader keep going for a few seconds after it ends.

Reports the longest single INSERT (= the longest a writer was blocked), the reader's longest query,
migrate's total time and the swap transaction's time as migrate reports it, and checks that no row
was rewritten (the history partition has the old table's relfilenode) and that no insert was lost.
Figures go to the "Raw table: monthly partitions" section of docs/BENCHMARKS.md (`--no-write` to
only print).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench.common import REPO_ROOT, machine, percentile, replace_section, today
from pricecat import partitions
from pricecat.config import Settings, with_database

SECTION = "Raw table: monthly partitions"
SLUG_DETAIL_SQL = """
select id, scraped_at, seller, product_code, product_name_original, price, availability
from public.product_price_snapshots
where product_name_normalized = $1
order by scraped_at
"""
INSERT_SQL = """
insert into public.product_price_snapshots
    (scraped_at, seller, product_name_original, product_name_normalized, price, availability)
values (now(), 'bench-writer', 'Bench Writer Game', 'bench-writer-game', $1, 'Skladem')
"""


@dataclass
class Loop:
    times: list[float] = field(default_factory=list)  # seconds per statement
    stamps: list[float] = field(default_factory=list)  # monotonic start of each statement
    errors: list[str] = field(default_factory=list)

    def slowest(self) -> tuple[float, float]:
        k = max(range(len(self.times)), key=self.times.__getitem__)
        return self.times[k], self.stamps[k]


async def _writer(dsn: str, stop: asyncio.Event, out: Loop) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        k = 0
        while not stop.is_set():
            k += 1
            t0 = time.monotonic()
            try:
                await conn.execute(INSERT_SQL, k % 100 + 0.99)
            except Exception as exc:  # counted, never fatal: the figure is what the writer saw
                out.errors.append(f"{type(exc).__name__}: {exc}")
            out.stamps.append(t0)
            out.times.append(time.monotonic() - t0)
            await asyncio.sleep(0.005)
    finally:
        await conn.close()


async def _reader(dsn: str, slugs: list[str], stop: asyncio.Event, out: Loop) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        k = 0
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                await conn.fetch(SLUG_DETAIL_SQL, slugs[k % len(slugs)])
            except Exception as exc:
                out.errors.append(f"{type(exc).__name__}: {exc}")
            out.stamps.append(t0)
            out.times.append(time.monotonic() - t0)
            k += 1
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


def _cli(args: list[str], dsn: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": dsn}
    cli = str(Path(sys.executable).parent / "pricecat")
    proc = subprocess.run([cli, *args], cwd=REPO_ROOT, env=env, check=False, text=True,
                          capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pricecat {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc


async def _setup(dsn: str, rows: int) -> dict[str, float]:
    times: dict[str, float] = {}
    admin = await asyncpg.connect(with_database(dsn, "postgres"))
    name = dsn.rsplit("/", 1)[1]
    await admin.execute(f'create database "{name}"')
    await admin.close()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("create extension if not exists pg_trgm with schema public")
        await conn.execute("create extension if not exists unaccent with schema public")
        await conn.execute(partitions.LEGACY_TABLE_DDL)
        t0 = time.monotonic()
        seed = ["seed", "--rows", str(rows)]
        if rows < 2_080_000:  # a smaller trial run keeps the production rows per slug
            seed += ["--slugs", str(max(50, rows * 11_059 // 2_080_000))]
        await asyncio.to_thread(_cli, seed, dsn)
        times["seed"] = time.monotonic() - t0
        t0 = time.monotonic()
        for index, definition in partitions.RAW_INDEXES:
            await conn.execute(f"create index {index} on public.product_price_snapshots "
                               f"{definition}")
        await conn.execute("analyze public.product_price_snapshots")
        times["indexes"] = time.monotonic() - t0
    finally:
        await conn.close()
    return times


async def bench(dsn: str, rows: int, warmup: float, cooldown: float) -> dict[str, object]:
    setup = await _setup(dsn, rows)
    conn = await asyncpg.connect(dsn)
    try:
        filenode = await conn.fetchval(
            "select relfilenode from pg_class where oid = $1::regclass", partitions.PARENT
        )
        slugs = [r[0] for r in await conn.fetch(
            "select distinct product_name_normalized from public.product_price_snapshots "
            "where id % 997 = 0 limit 200"
        )]
        size = await conn.fetchval(
            "select pg_size_pretty(pg_total_relation_size('public.product_price_snapshots'))"
        )
    finally:
        await conn.close()

    stop = asyncio.Event()
    writer, reader = Loop(), Loop()
    tasks = [asyncio.create_task(_writer(dsn, stop, writer)),
             asyncio.create_task(_reader(dsn, slugs, stop, reader))]
    await asyncio.sleep(warmup)
    baseline = list(writer.times)
    t0 = time.monotonic()
    proc = await asyncio.to_thread(_cli, ["migrate"], dsn)
    t1 = time.monotonic()
    await asyncio.sleep(cooldown)
    stop.set()
    await asyncio.gather(*tasks)

    conn = await asyncpg.connect(dsn)
    try:
        kind = await conn.fetchval(
            "select relkind::text from pg_class where oid = $1::regclass", partitions.PARENT
        )
        parts = await partitions.list_partitions(conn)
        history = parts[0].name
        history_filenode = await conn.fetchval(
            "select relfilenode from pg_class where oid = $1::regclass", f"public.{history}"
        )
        written = await conn.fetchval(
            "select count(*) from public.product_price_snapshots where seller = 'bench-writer'"
        )
        total = await conn.fetchval("select count(*) from public.product_price_snapshots")
    finally:
        await conn.close()
    swap = re.search(r"writers were locked out for ([0-9.]+) s", proc.stderr)
    during = [t for t, s in zip(writer.times, writer.stamps, strict=True) if t0 <= s <= t1]
    slow_w, slow_w_at = writer.slowest()
    slow_r, slow_r_at = reader.slowest()
    return {
        "rows": rows,
        "size": size,
        "setup": setup,
        "migrate_seconds": t1 - t0,
        "swap_seconds": float(swap[1]) if swap else None,
        "writer_max": slow_w,
        "writer_max_at": slow_w_at - t0,
        "writer_p99_during": percentile(during, 99) if during else None,
        "writer_p50_baseline": percentile(baseline, 50),
        "writer_inserts": len(writer.times),
        "writer_errors": writer.errors,
        "reader_max": slow_r,
        "reader_max_at": slow_r_at - t0,
        "reader_queries": len(reader.times),
        "reader_errors": reader.errors,
        "kind": kind,
        "partitions": [p.name for p in parts],
        "no_rewrite": history_filenode == filenode,
        "written_ok": written == len(writer.times) - len(writer.errors),
        "total": total,
    }


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, text=True,
                         capture_output=True, check=False)
    return out.stdout.strip() or "unknown"


def _ms(value: object) -> str:
    return "—" if value is None else f"{float(str(value)) * 1000:.0f}"


def render(r: dict[str, object], command: str) -> str:
    setup = r["setup"]
    assert isinstance(setup, dict)
    errors = len(r["writer_errors"]) + len(r["reader_errors"])  # type: ignore[arg-type]
    table = [
        ("`pricecat migrate` total (conversion, months ahead, index check, analyze)",
         f"{float(str(r['migrate_seconds'])):.1f} s"),
        ("swap transaction (writers locked out), as migrate reports it",
         f"{_ms(r['swap_seconds'])} ms"),
        ("**longest single INSERT seen by the writer**",
         f"**{_ms(r['writer_max'])} ms** (at +{float(str(r['writer_max_at'])):.1f} s)"),
        ("writer INSERT p99 during migrate / p50 before it",
         f"{_ms(r['writer_p99_during'])} ms / {_ms(r['writer_p50_baseline'])} ms"),
        ("longest slug-detail query seen by the reader",
         f"{_ms(r['reader_max'])} ms (at +{float(str(r['reader_max_at'])):.1f} s)"),
        ("inserts / reader queries / errors",
         f"{r['writer_inserts']:,} / {r['reader_queries']:,} / {errors}"),
    ]
    rows = "\n".join(f"| {k} | {v} |" for k, v in table)
    parts = ", ".join(f"`{p}`" for p in r["partitions"])  # type: ignore[attr-defined]
    return f"""
Command: `{command}` — commit {_commit()}, {today()}, {machine()}; other processes shared the
machine (2 cores, several agents).

Data: a throwaway database with the raw table as it was before partitioning (plain, identity
primary key, the five raw indexes), {r['rows']:,} rows from `pricecat seed --rows {r['rows']}`
({r['size']} with indexes; seed {setup['seed']:.0f} s, indexes {setup['indexes']:.0f} s, not part
of the figures below). During the conversion one writer inserted single rows in a loop
(autocommit, 5 ms pause) and one reader ran the slug-detail query in a loop (10 ms pause); "+s"
is seconds after `pricecat migrate` started.

| figure | value |
|---|---:|
{rows}

After: relkind `{r['kind']}`, partitions {parts}; the history partition is the old table's file
(same relfilenode, no row rewritten: {r['no_rewrite']}); every insert the writer made is in the
table: {r['written_ok']}.

Where the time goes: `VALIDATE CONSTRAINT` (a scan of the whole table under SHARE UPDATE
EXCLUSIVE, writers continue) and `CREATE UNIQUE INDEX CONCURRENTLY (id, scraped_at)` (the new
primary key's index) take nearly all of it; `ADD CONSTRAINT ... NOT VALID` and the swap
transaction are the only steps that lock writers out.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_080_000)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--cooldown", type=float, default=5.0)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database")
    args = parser.parse_args(argv)
    base = Settings.from_env().database_url
    name = f"pricecat_bench_part_{os.getpid()}"
    dsn = with_database(base, name)

    async def drop() -> None:
        admin = await asyncpg.connect(with_database(base, "postgres"))
        try:
            await admin.execute(f'drop database if exists "{name}" with (force)')
        finally:
            await admin.close()

    try:
        result = asyncio.run(bench(dsn, args.rows, args.warmup, args.cooldown))
    finally:
        if not args.keep:
            asyncio.run(drop())
    command = ".venv/bin/python -m bench.bench_partition"
    if args.rows != 2_080_000:
        command += f" --rows {args.rows}"
    body = render(result, command)
    print(body)
    if result["writer_errors"] or result["reader_errors"]:
        print("errors:", result["writer_errors"][:5], result["reader_errors"][:5],  # type: ignore[index]
              file=sys.stderr)
    if not args.no_write:
        replace_section(SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
