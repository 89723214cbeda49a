"""Refresh cost: a full rebuild vs an incremental refresh after one scrape cycle vs a no-op run.

    python -m bench.bench_incremental [--rows 2080000] [--cycles 3] [--multipliers 1,10]
                                      [--write-docs]

Uses its own database per history multiplier (`BENCH_DATABASE`, default `pricecat_incbench`, plus
`_x<N>` for N > 1; created, migrated and seeded once with `pricecat seed --rows R
--history-multiplier N`, then reused): `--multipliers 1,10` measures 1x (2.08M rows) and 10x
history (20.8M rows, the same games over ten times the days) one after the other in one run and
reports the ratio of their incremental builds. Every figure is the flow's own step timing from
`catalog_ops.refresh_runs` (`changes` = the cheap check for new raw rows; `build` = dbt build +
tests; `publish` = the schema swap), so Prefect's start-up is not in it; `wall` is the whole
`pricecat refresh` process including it.

1. `pricecat refresh --full`: the state and the marts from the whole history;
2. `--cycles` times: `pricecat seed --append-cycle` (one snapshot per slug + seller, ~32k rows),
   then `pricecat refresh` (incremental);
3. `pricecat refresh` with nothing new: a no-op.

`--dbt subprocess,warm` (the default) alternates how the incremental refreshes run dbt, cycle by
cycle: `subprocess` (DBT_FORK_SERVER=off: a one-off `pricecat refresh`'s own dbt process) and
`warm` (a child of a `pricecat dbt-server` the bench starts beside the runs, as `pricecat
schedule` and `cluster.sh` do: what the scheduled refresh runs); the medians are per mode. The
full rebuild and the no-op run use the first mode.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from statistics import median
from typing import Any

import asyncpg

from bench.common import git_commit, machine, replace_section, today
from bench.procs import PRICECAT, Service, run_step, wait_until
from pricecat.config import Settings, with_database

TITLE = "Incremental refresh (bench_incremental)"


async def query(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def last_run(url: str) -> dict[str, Any]:
    [row] = asyncio.run(query(url, """
        select run_id, status, duration_seconds, timings, mart_rows
        from catalog_ops.refresh_runs order by run_id desc limit 1
    """))
    return {
        "status": row["status"],
        "duration": float(row["duration_seconds"]),
        "timings": json.loads(row["timings"]) if row["timings"] else {},
    }


def raw_rows(url: str) -> int:
    rows = asyncio.run(query(url, "select count(*) as n from public.product_price_snapshots"))
    return int(rows[0]["n"])


Result = tuple[str, int, float, dict[str, Any]]

#: how a run's dbt runs (`--dbt`), and what its label says
MODES = {"subprocess": "dbt subprocess", "warm": "warm dbt"}
#: what the refresh logs when its dbt ran in a fork server's child (flows/build.py)
WARM_LINE = "dbt runs warm"


def refresh(cmd: list[str], env: dict[str, str], mode: str, socket: str) -> float:
    """One `pricecat refresh` with its dbt run as `mode` says; its wall seconds. A warm run that
    did not run warm (the fork server did not answer) ends the bench."""
    run_env = {**env, "DBT_FORK_SERVER": socket if mode == "warm" else "off"}
    return run_step(cmd, run_env, expect=WARM_LINE if mode == "warm" else None)


def measure(rows: int, multiplier: int, cycles: int, modes: list[str]) -> list[Result]:
    """Seed (once), full rebuild, `cycles` incremental refreshes, a no-op: at one multiplier."""
    dbname = os.environ.get("BENCH_DATABASE", "pricecat_incbench")
    if multiplier > 1:
        dbname += f"_x{multiplier}"
    url = with_database(Settings().database_url, dbname)
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("API_DATABASE_URL", None)
    env.pop("CACHE_NAMESPACE", None)
    pricecat = str(PRICECAT)

    run_step([pricecat, "migrate", "--no-indexes"], env)
    seeded = run_step([pricecat, "seed", "--rows", str(rows), "--history-multiplier",
                       str(multiplier), "--if-empty"], env)
    if seeded > 0:
        run_step([pricecat, "migrate"], env)

    tag = f"{multiplier}×: "
    results: list[Result] = []
    tmp = Path(tempfile.mkdtemp(prefix="pricecat-bench-dbt-"))
    socket = str(tmp / "dbt.sock")
    server = Service("dbt-server", [pricecat, "dbt-server", "--socket", socket],
                     tmp / "dbt-server.log", env)
    with server.start():
        wait_until(lambda: Path(socket).exists() or not server.alive(), 60, what="dbt-server")
        first = modes[0]
        wall = refresh([pricecat, "refresh", "--full"], env, first, socket)
        results.append((f"{tag}full rebuild (`refresh --full`, {MODES[first]})", raw_rows(url),
                        wall, last_run(url)))
        for i in range(cycles):
            mode = modes[i % len(modes)]
            run_step([pricecat, "seed", "--append-cycle", "--seed", str(100 + i)], env)
            wall = refresh([pricecat, "refresh"], env, mode, socket)
            results.append((f"{tag}incremental after cycle {i + 1} ({MODES[mode]})",
                            raw_rows(url), wall, last_run(url)))
        wall = refresh([pricecat, "refresh"], env, first, socket)
        results.append((f"{tag}no-op (nothing new, {MODES[first]})", raw_rows(url), wall,
                        last_run(url)))
    return results


def incremental_builds(results: list[Result], mode: str) -> list[float]:
    return [float(r["timings"].get("build", 0)) for name, _, _, r in results
            if "incremental" in name and f"({MODES[mode]})" in name]


def ratio_lines(per_multiplier: dict[int, list[Result]], modes: list[str]) -> list[str]:
    """Median incremental build per multiplier and mode, and each one's ratio to 1x (same
    run, same mode)."""
    lines = []
    for mode in modes:
        medians = {m: median(incremental_builds(r, mode)) for m, r in per_multiplier.items()
                   if incremental_builds(r, mode)}
        lines += [f"Median incremental build (dbt build + tests, {MODES[mode]}) at {m}× "
                  f"history: {v:.1f} s." for m, v in medians.items()]
        base = medians.get(1)
        for m, v in medians.items():
            if m != 1 and base:
                lines.append(f"Ratio {m}× / 1× ({MODES[mode]}, median incremental build, same "
                             f"run): {v / base:.2f}.")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_080_000,
                        help="raw rows to seed at 1x (once per database)")
    parser.add_argument("--cycles", type=int, default=3, help="scrape cycles to append")
    parser.add_argument("--multipliers", default="1",
                        help="comma-separated history multipliers to measure, e.g. 1,10")
    parser.add_argument("--dbt", default="subprocess,warm",
                        help="how the refreshes run dbt, alternating cycle by cycle: "
                             "comma-separated subprocess, warm")
    parser.add_argument("--write-docs", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    multipliers = [int(m) for m in args.multipliers.split(",") if m.strip()]
    modes = [m.strip() for m in args.dbt.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--dbt: comma-separated {', '.join(MODES)}")

    load = os.getloadavg()
    per_multiplier = {m: measure(args.rows, m, args.cycles, modes) for m in multipliers}
    results = [r for m in multipliers for r in per_multiplier[m]]

    commit = git_commit()
    lines = [
        "| run | raw rows | status | changes | build (dbt build + tests) | publish | "
        "flow total | wall (incl. Prefect start-up) |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, rows, wall, r in results:
        t = r["timings"]
        lines.append(
            f"| {name} | {rows:,} | {r['status']} | {t.get('changes', 0):.2f} s | "
            f"{t.get('build', 0):.1f} s | {t.get('publish', 0):.2f} s | "
            f"{r['duration']:.1f} s | {wall:.1f} s |"
        )
    body = "\n".join([
        f"Command: `python -m bench.bench_incremental --rows {args.rows} --cycles {args.cycles}"
        f" --multipliers {','.join(map(str, multipliers))} --dbt {','.join(modes)}"
        f"{' --write-docs' if args.write_docs else ''}` on commit `{commit}`, {today()}.",
        f"Machine: {machine()}; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at "
        "the start. Timings are the flow's own steps from `catalog_ops.refresh_runs`.",
        "",
        *lines,
        "",
        "One scrape cycle is one new snapshot per slug + seller (`pricecat seed --append-cycle`).",
        *ratio_lines(per_multiplier, modes),
    ])
    print(body)
    if args.write_docs:
        replace_section(TITLE, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
