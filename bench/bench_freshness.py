"""Freshness soak: how long a scraped price takes to show in the API while a scraper writes
continuously, with readers on the API the whole time.

    .venv/bin/python -m bench.bench_freshness [--duration 900] [--rows 2080000] [--write-docs]

Against its own database (`--database`, default `pricecat_freshbench`; created, migrated and
seeded once with `pricecat seed --rows N [--slugs N] [--history-multiplier N]`, then reused) and
its own Redis namespace (`pricecat:<database>`). It starts what production runs (scripts/up.sh):

- a Prefect server (private PREFECT_HOME, port `--prefect-port`, default a free one);
- `pricecat schedule`: the refresh deployment, cron every minute, never two runs at once;
- `pricecat serve --workers 2` as the read-only role (port `--api-port`, default a free one);

after one `pricecat refresh` so something is published; the soak starts once the schedule's
first run has ended (it pays the served deployment's start-up). Then, for `--duration` seconds:

- a simulated scraper (in this process, so it knows when each write committed): every
  `--cycle-seconds` one scrape cycle — one new snapshot per slug + seller, the generator's price
  changes, sell-outs and NULL prices (`pricecat.seed.cycle_records`, what `pricecat
  simulate-scraper` appends) — written in `--batches` COPY transactions spread evenly over the
  cycle, each row stamped with the time of its write;
- probes: after each batch commits, `--probes-per-batch` of its rows whose price changed are
  picked; each polls `/api/v1/products/{slug}` every `--poll-interval` s until that seller's
  `current_price` is the new price. Freshness = that moment minus the batch's commit. A probe
  whose listing gets another price in a later batch before it was seen is dropped (superseded);
- `--readers` HTTP clients requesting product pages and catalog pages with a `--reader-pause`
  pause, counting every non-2xx answer and transport error;
- a watcher reading the published build id every 0.25 s, to split freshness into INSERT -> publish
  and publish -> API.

After `--duration` the scraper stops; readers and probes go on until every probe is seen or
`--drain` s have passed. Refresh runs come from `catalog_ops.refresh_runs`, Prefect's own flow-run
states from its API. Percentiles: bench.common.percentile (nearest rank).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.common import git_commit, machine, percentile, replace_section, today
from bench.procs import (
    PRICECAT,
    VENV_BIN,
    Service,
    free_port,
    pricecat_serve,
    run_step,
)
from pricecat import seed
from pricecat.config import API_ROLE, Settings, with_database, with_user
from pricecat.generation import read_generation

TITLE = "Freshness soak (bench_freshness)"
DEFAULT_DATABASE = "pricecat_freshbench"
#: issue 11's goals for the time from INSERT to the new price in the API
GOAL_P95_SECONDS = 90.0
GOAL_MAX_SECONDS = 120.0


# --- probes (pure logic, tested in tests/bench/test_freshness.py) ---------------------------


@dataclass
class Probe:
    slug: str
    seller: str
    price: Decimal
    committed: float  # time.monotonic() when the batch's transaction had committed
    seen: float | None = None  # when the API first answered the new price
    superseded: bool = False
    polls: int = 0
    #: diagnostics: the seller's price and X-Cache of the last answer without the new price, and
    #: X-Cache of the first one with it
    before: str = ""
    seen_cache: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.slug, self.seller

    @property
    def freshness(self) -> float | None:
        return None if self.seen is None else self.seen - self.committed


class ProbeBook:
    """The probes, at most one pending per (slug, seller)."""

    def __init__(self) -> None:
        self.pending: dict[tuple[str, str], Probe] = {}
        self.probes: list[Probe] = []

    def add(self, probe: Probe) -> bool:
        """Track `probe`; False (not tracked) while its listing has a pending probe."""
        if probe.key in self.pending:
            return False
        self.pending[probe.key] = probe
        self.probes.append(probe)
        return True

    def written(self, slug: str, seller: str, price: Decimal | None) -> None:
        """A newer row of the listing committed: a pending probe that expects another price
        may never be seen (both rows can land in one build), so it is dropped."""
        probe = self.pending.get((slug, seller))
        if probe is not None and probe.price != price:
            probe.superseded = True
            del self.pending[probe.key]

    def seen(self, probe: Probe, at: float) -> None:
        if probe.seen is None and not probe.superseded:
            probe.seen = at
            self.pending.pop(probe.key, None)

    def done(self) -> bool:
        return not self.pending


def offer_price(body: Any, seller: str) -> Decimal | None:
    """`current_price` of `seller` in a /api/v1/products/{slug} answer (None: no such seller, no
    price)."""
    for offer in body.get("sellers") or []:
        if offer.get("seller") == seller:
            value = offer.get("current_price")
            if value is None:
                return None
            try:
                return Decimal(str(value))
            except InvalidOperation:
                return None
    return None


def publish_before(publishes: Sequence[float], at: float) -> float | None:
    """The latest publish time at or before `at` (publishes in time order)."""
    found = None
    for t in publishes:
        if t > at:
            break
        found = t
    return found


@dataclass
class Summary:
    probes: int
    seen: int
    superseded: int
    unseen: int  # neither seen nor superseded by the end of the drain
    #: over seen and unseen probes, an unseen one counting as infinitely late (math.inf)
    p50: float | None
    p95: float | None
    max: float | None
    to_publish: list[float]  # per seen probe: commit -> the publish it showed after
    to_api: list[float]  # per seen probe: that publish -> seen by the probe


def summarize(probes: Sequence[Probe], publishes: Sequence[float]) -> Summary:
    """Freshness percentiles over the probes that were not superseded, and its split at the
    publish each seen probe showed after (the latest publish at or before it was seen)."""
    values: list[float] = []
    to_publish: list[float] = []
    to_api: list[float] = []
    superseded = 0
    for p in probes:
        if p.superseded:
            superseded += 1
            continue
        if p.seen is None:
            values.append(math.inf)
            continue
        values.append(p.seen - p.committed)
        at = publish_before(publishes, p.seen)
        if at is not None and at >= p.committed:
            to_publish.append(at - p.committed)
            to_api.append(p.seen - at)
    unseen = sum(1 for v in values if v == math.inf)
    return Summary(
        probes=len(probes),
        seen=len(values) - unseen,
        superseded=superseded,
        unseen=unseen,
        p50=percentile(values, 50) if values else None,
        p95=percentile(values, 95) if values else None,
        max=max(values) if values else None,
        to_publish=to_publish,
        to_api=to_api,
    )


def verdicts(s: Summary, reader_errors: int) -> list[tuple[str, bool]]:
    """(goal, met) for issue 11's freshness goals; no probe at all meets nothing."""
    return [
        (f"p95 <= {GOAL_P95_SECONDS:g} s", s.p95 is not None and s.p95 <= GOAL_P95_SECONDS),
        (f"max <= {GOAL_MAX_SECONDS:g} s", s.max is not None and s.max <= GOAL_MAX_SECONDS),
        ("readers: 0 errors", reader_errors == 0),
    ]


# --- the soak ------------------------------------------------------------------------------------


@dataclass
class Soak:
    args: argparse.Namespace
    api: str
    book: ProbeBook = field(default_factory=ProbeBook)
    publishes: list[float] = field(default_factory=list)  # monotonic times a new build showed
    reader_latency: list[float] = field(default_factory=list)  # ms, answered requests
    reader_errors: Counter[str] = field(default_factory=Counter)
    probe_errors: Counter[str] = field(default_factory=Counter)
    rows_written: int = 0
    batches: int = 0
    cycles: int = 0
    stop_writing: asyncio.Event = field(default_factory=asyncio.Event)
    stop_all: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)


async def _sleep_until(deadline: float, stop: asyncio.Event) -> bool:
    """Sleep until `deadline` (monotonic); False when `stop` was set first."""
    delay = deadline - time.monotonic()
    if delay <= 0:
        return not stop.is_set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay)
    return not stop.is_set()


async def scraper(soak: Soak, url: str) -> None:
    args = soak.args
    rng = random.Random(args.seed)
    conn = await asyncpg.connect(url)
    try:
        while not soak.stop_writing.is_set():
            cycle_start = time.monotonic()
            records, stats = await seed.cycle_records(
                conn, args.seed + soak.cycles, datetime.now(UTC),
                interval=timedelta(seconds=args.cycle_seconds),
            )
            soak.cycles += 1  # started
            changed = {k for k, _old, _new in stats.extra["price_changes"]}
            size = max(1, math.ceil(len(records) / args.batches))
            for b, lo in enumerate(range(0, len(records), size)):
                if not await _sleep_until(cycle_start + b * args.cycle_seconds / args.batches,
                                          soak.stop_writing):
                    return
                now = datetime.now(UTC)
                batch = [
                    (now + timedelta(microseconds=k), *row[1:])
                    for k, row in enumerate(records[lo:lo + size])
                ]
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "product_price_snapshots", schema_name="public",
                        columns=list(seed.COLUMNS), records=batch,
                    )
                committed = time.monotonic()
                soak.rows_written += len(batch)
                soak.batches += 1
                for row in batch:
                    soak.book.written(row[4], row[1], row[5])
                picks = [lo + k for k in range(len(batch)) if lo + k in changed]
                rng.shuffle(picks)
                added = 0
                for i in picks:
                    if added >= args.probes_per_batch:
                        break
                    row = records[i]
                    probe = Probe(row[4], row[1], row[5], committed)
                    if soak.book.add(probe):
                        added += 1
                        task = asyncio.create_task(poll_probe(soak, probe))
                        soak.tasks.add(task)
                        task.add_done_callback(soak.tasks.discard)
            await _sleep_until(cycle_start + args.cycle_seconds, soak.stop_writing)
    finally:
        await conn.close()


async def poll_probe(soak: Soak, probe: Probe) -> None:
    path = f"/api/v1/products/{probe.slug}"
    async with httpx.AsyncClient(base_url=soak.api, timeout=10.0) as client:
        while not soak.stop_all.is_set() and probe.seen is None and not probe.superseded:
            try:
                r = await client.get(path)
                at = time.monotonic()
                probe.polls += 1
                if r.status_code != 200:
                    soak.probe_errors[f"HTTP {r.status_code}"] += 1
                else:
                    price = offer_price(r.json(), probe.seller)
                    cache = r.headers.get("x-cache", "")
                    if price == probe.price:
                        probe.seen_cache = cache
                        soak.book.seen(probe, at)
                        return
                    probe.before = f"{price} ({cache})"
            except httpx.HTTPError as exc:
                soak.probe_errors[type(exc).__name__] += 1
            await _sleep_until(time.monotonic() + soak.args.poll_interval, soak.stop_all)


async def reader(soak: Soak, paths: list[str], n: int) -> None:
    rng = random.Random(1000 + n)
    async with httpx.AsyncClient(base_url=soak.api, timeout=10.0) as client:
        while not soak.stop_all.is_set():
            t0 = time.monotonic()
            try:
                r = await client.get(rng.choice(paths))
                if r.status_code >= 400:
                    soak.reader_errors[f"HTTP {r.status_code}"] += 1
                else:
                    soak.reader_latency.append((time.monotonic() - t0) * 1000)
            except httpx.HTTPError as exc:
                soak.reader_errors[type(exc).__name__] += 1
            await _sleep_until(time.monotonic() + soak.args.reader_pause, soak.stop_all)


async def watcher(soak: Soak, url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        last = await read_generation(conn)
        while True:
            stopping = soak.stop_all.is_set()  # one more read after the stop: no publish missed
            await asyncio.sleep(0.25)
            current = await read_generation(conn)
            if current != last:
                soak.publishes.append(time.monotonic())
                last = current
            if stopping:
                break
    finally:
        await conn.close()


async def reader_paths(url: str, n_slugs: int) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "select slug from catalog.catalog_slug_summary order by md5(slug) limit $1", n_slugs
        )
    finally:
        await conn.close()
    products = [f"/api/v1/products/{r['slug']}" for r in rows]
    pages = [f"/api/v1/catalog?page={p}" for p in range(1, 21)]
    return products * 3 + pages * max(1, len(products) // 20)  # ~3:1 products to catalog pages


async def soak_run(soak: Soak, url: str, api_url: str) -> None:
    args = soak.args
    paths = await reader_paths(api_url, 2000)
    background = [asyncio.create_task(watcher(soak, url))]
    background += [asyncio.create_task(reader(soak, paths, n)) for n in range(args.readers)]
    writer = asyncio.create_task(scraper(soak, url))
    started = time.monotonic()
    while time.monotonic() - started < args.duration:
        await asyncio.sleep(min(30.0, args.duration))
        if writer.done():
            writer.result()  # raise the scraper's error
        print(f"  {time.monotonic() - started:5.0f} s: {soak.rows_written:,} rows in "
              f"{soak.batches} batches, {len(soak.publishes)} publishes, "
              f"{sum(p.seen is not None for p in soak.book.probes)}/{len(soak.book.probes)} "
              f"probes seen, reader errors {sum(soak.reader_errors.values())}", flush=True)
    soak.stop_writing.set()
    await writer
    drain_until = time.monotonic() + args.drain
    while not soak.book.done() and time.monotonic() < drain_until:
        await asyncio.sleep(1.0)
    await asyncio.sleep(2.0)  # the watcher sees the publish the last probe showed after
    soak.stop_all.set()
    await asyncio.gather(*background, *list(soak.tasks))


# --- set-up, services, report ----------------------------------------------------------------


async def fetch(url: str, sql: str, *params: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *params))
    finally:
        await conn.close()


def prefect_states(api_url: str, since: datetime) -> Counter[str]:
    """Flow runs expected to start between `since` and now (not the ones scheduled ahead), by
    Prefect state name (a run cancelled because the previous one still ran: 'Cancelled')."""
    body = {
        "flow_runs": {"expected_start_time": {"after_": since.isoformat(),
                                              "before_": datetime.now(UTC).isoformat()}},
        "limit": 200,
    }
    try:
        r = httpx.post(f"{api_url}/flow_runs/filter", json=body, timeout=10.0)
        r.raise_for_status()
        return Counter(run["state_name"] or "?" for run in r.json())
    except httpx.HTTPError as exc:
        return Counter({f"unknown ({type(exc).__name__})": 1})


def fmt_s(value: float | None) -> str:
    if value is None:
        return "—"
    return "not seen" if value == math.inf else f"{value:.1f} s"


def spread(values: list[float]) -> str:
    if not values:
        return "—"
    return (f"p50 {percentile(values, 50):.1f} s, p95 {percentile(values, 95):.1f} s, "
            f"max {max(values):.1f} s")


def report(soak: Soak, facts: dict[str, Any]) -> str:
    args = soak.args
    s = summarize(soak.book.probes, soak.publishes)
    reader_errors = sum(soak.reader_errors.values())
    runs: Counter[str] = facts["runs"]
    published = facts["published"]
    lat = soak.reader_latency
    goals = verdicts(s, reader_errors)
    multiplier = args.history_multiplier
    opts = (f"--duration {args.duration:g} --rows {args.rows} --slugs {args.slugs}"
            f"{f' --history-multiplier {multiplier}' if multiplier > 1 else ''}"
            f" --cycle-seconds {args.cycle_seconds:g} --batches {args.batches}"
            f" --readers {args.readers}")
    lines = [
        f"Command: `.venv/bin/python -m bench.bench_freshness {opts}"
        f"{' --write-docs' if args.write_docs else ''}` on commit `{facts['commit']}`,"
        f" {facts['date']}.",
        f"Machine: {machine()}; load average {facts['load_start']} at the start,"
        f" {facts['load_end']} at the end; other jobs may have shared it.",
        "",
        f"Database `{args.database}`: {facts['rows_start']:,} raw rows at the start,"
        f" {facts['rows_end']:,} at the end. Running, as scripts/up.sh starts them: a Prefect"
        " server, `pricecat schedule` (refresh every minute, never two at once; a run with"
        " nothing new is a no-op), `pricecat serve --workers"
        f" {args.workers}` as `{API_ROLE}`. Scraper: one cycle (one snapshot per slug + seller,"
        f" `pricecat.seed.cycle_records`) every {args.cycle_seconds:g} s, written in"
        f" {args.batches} COPY transactions spread over the cycle ({soak.cycles} cycles started,"
        f" {soak.batches} batches, {soak.rows_written:,} rows in {args.duration:g} s).",
        "",
        "Freshness = from the commit of the batch holding a changed price to the first"
        " `/api/v1/products/{slug}` answer with that seller's new `current_price` (polled every"
        f" {args.poll_interval:g} s; {args.probes_per_batch} probe(s) per batch).",
        "",
        "| probes | seen | superseded | not seen | p50 | p95 | max |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {s.probes} | {s.seen} | {s.superseded} | {s.unseen} | {fmt_s(s.p50)} |"
        f" {fmt_s(s.p95)} | {fmt_s(s.max)} |",
        "",
        "Split at the publish each seen probe showed after: INSERT → publish"
        f" {spread(s.to_publish)}; publish → API {spread(s.to_api)}.",
        "",
        "Refresh runs started during the soak (`catalog_ops.refresh_runs`): "
        + ", ".join(f"{k} {v}" for k, v in sorted(runs.items()))
        + f"; published runs' flow time {spread(published['duration'])},"
        f" of it build {spread(published['build'])}. New builds seen by the watcher:"
        f" {len(soak.publishes)}. Prefect flow-run states: "
        + ", ".join(f"{k} {v}" for k, v in sorted(facts["prefect"].items())) + ".",
        "",
        f"Readers: {args.readers} HTTP clients (product pages ~3:1 catalog pages, pause"
        f" {args.reader_pause:g} s) for the whole soak and drain: {len(lat) + reader_errors:,}"
        f" requests, {reader_errors} errors"
        + (f" ({', '.join(f'{k} {v}' for k, v in soak.reader_errors.items())})"
           if reader_errors else "")
        + (f", p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms,"
           f" max {max(lat):.1f} ms" if lat else "")
        + f". Probe polls that failed: {sum(soak.probe_errors.values())}.",
        "",
        "Goals (issue 11): " + "; ".join(f"{g}: **{'met' if ok else 'not met'}**"
                                         for g, ok in goals) + ".",
    ]
    return "\n".join(lines)


def dump_json(path: Path, soak: Soak) -> None:
    t0 = soak.started

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - t0, 3)

    data = {
        "publishes": [rel(t) for t in soak.publishes],
        "probes": [
            {"slug": p.slug, "seller": p.seller, "price": str(p.price),
             "committed": rel(p.committed), "seen": rel(p.seen), "freshness": p.freshness,
             "superseded": p.superseded, "polls": p.polls, "before": p.before,
             "seen_cache": p.seen_cache}
            for p in soak.book.probes
        ],
    }
    path.write_text(json.dumps(data, indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE", DEFAULT_DATABASE),
                        help="database to seed (once) and soak")
    parser.add_argument("--rows", type=int, default=2_080_000, help="raw rows to seed (once)")
    parser.add_argument("--slugs", type=int, default=11_059, help="slugs to seed (once)")
    parser.add_argument("--history-multiplier", type=int, default=1,
                        help="`pricecat seed --history-multiplier` (once)")
    parser.add_argument("--duration", type=float, default=900.0, help="seconds of writing")
    parser.add_argument("--drain", type=float, default=240.0,
                        help="seconds to wait afterwards for the last probes")
    parser.add_argument("--cycle-seconds", type=float, default=300.0,
                        help="seconds per scrape cycle (scripts/up.sh's SIMULATE_EVERY default)")
    parser.add_argument("--batches", type=int, default=60, help="COPY transactions per cycle")
    parser.add_argument("--probes-per-batch", type=int, default=1)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--reader-pause", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2, help="`pricecat serve --workers`")
    parser.add_argument("--api-port", type=int, default=0, help="0: a free port")
    parser.add_argument("--prefect-port", type=int, default=0, help="0: a free port")
    parser.add_argument("--seed", type=int, default=11, help="random seed of the scraper")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="service logs (default: a temporary directory, removed)")
    parser.add_argument("--json", type=Path, default=None,
                        help="write every probe and publish (seconds from the soak's start) here")
    parser.add_argument("--write-docs", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()

    url = with_database(Settings().database_url, args.database)
    api_url = with_user(url, API_ROLE)
    env = {**os.environ, "DATABASE_URL": url, "API_DATABASE_URL": api_url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    for name in ("CACHE_NAMESPACE", "PREFECT_API_URL"):
        env.pop(name, None)
    load = os.getloadavg()
    pricecat = str(PRICECAT)

    print(f"set-up: database {args.database}", flush=True)
    run_step([pricecat, "migrate", "--no-indexes"], env)
    seed_cmd = [pricecat, "seed", "--rows", str(args.rows), "--slugs", str(args.slugs),
                "--history-multiplier", str(args.history_multiplier), "--if-empty"]
    run_step(seed_cmd, env)
    [newest] = asyncio.run(fetch(url, "select max(scraped_at) > now() as ahead"
                                      " from public.product_price_snapshots"))
    if newest["ahead"]:
        # the scraper writes at now: every probe would sort before the offer's newest snapshot
        # (a late row) and never become its current price (e.g. a database after
        # bench_incremental, whose cycles step 15 min past the newest row)
        raise SystemExit(f"{args.database}: the newest snapshot is in the future; use a"
                         " database whose history ends before now")
    run_step([pricecat, "migrate"], env)  # the raw indexes (a no-op when they exist)
    run_step([pricecat, "refresh"], env)  # publish what is there (a no-op when nothing is new)

    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="pricecat-freshbench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    prefect_home = log_dir / "prefect-home"
    prefect_port = args.prefect_port or free_port()
    prefect_api = f"http://127.0.0.1:{prefect_port}/api"
    senv = {**env, "PREFECT_HOME": str(prefect_home), "PREFECT_API_URL": prefect_api}
    services: list[Service] = []
    try:
        server = Service(
            "prefect server",
            [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
             str(prefect_port)],
            log_dir / "prefect-server.log", {k: v for k, v in senv.items()
                                             if k != "PREFECT_API_URL"},
        ).start()
        services.append(server)
        server.wait_http(f"{prefect_api}/health", timeout=180)
        [row] = asyncio.run(fetch(url, "select coalesce(max(run_id), 0) as id "
                                       "from catalog_ops.refresh_runs"))
        last_run = int(row["id"])
        schedule = Service("pricecat schedule", [pricecat, "schedule"],
                           log_dir / "schedule.log", senv).start()
        services.append(schedule)
        api, base = pricecat_serve(log_dir / "api.log", env, workers=args.workers,
                                   port=args.api_port or None)
        services.append(api.start())
        api.wait_http(f"{base}/readyz", timeout=120)
        print(f"services: Prefect {prefect_api}, API {base}, logs {log_dir}; waiting for the "
              "first scheduled run to end", flush=True)
        # steady state: the served deployment has run once (its first run pays start-up costs)
        schedule.wait_ready(lambda: bool(asyncio.run(fetch(
            url, "select 1 from catalog_ops.refresh_runs where run_id > $1 and status <> 'running'",
            last_run))), timeout=300, what="the first scheduled refresh run to end")

        [row] = asyncio.run(fetch(url, "select count(*) as n, now() as at "
                                       "from public.product_price_snapshots"))
        rows_start, soak_start = int(row["n"]), row["at"]
        soak = Soak(args, base)
        print(f"soak: {args.duration:g} s of writes + up to {args.drain:g} s drain", flush=True)
        asyncio.run(soak_run(soak, url, api_url))
        if not schedule.alive():
            raise SystemExit(f"pricecat schedule exited early; log {schedule.log_path}")

        runs_rows = asyncio.run(fetch(url, """
            select status, duration_seconds, (timings ->> 'build')::float8 as build
            from catalog_ops.refresh_runs where started_at >= $1 order by run_id
        """, soak_start))
        published = [r for r in runs_rows if r["status"] == "published"]
        [row] = asyncio.run(fetch(url, "select count(*) as n from public.product_price_snapshots"))
        facts = {
            "commit": git_commit(),
            "date": today(),
            "load_start": " / ".join(f"{x:.1f}" for x in load),
            "load_end": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
            "rows_start": rows_start,
            "rows_end": int(row["n"]),
            "runs": Counter(r["status"] for r in runs_rows),
            "published": {
                "duration": [float(r["duration_seconds"]) for r in published],
                "build": [r["build"] for r in published if r["build"] is not None],
            },
            "prefect": prefect_states(prefect_api, soak_start),
        }
    finally:
        for service in reversed(services):
            service.stop(timeout=20, group=True)
        if args.log_dir is None:
            shutil.rmtree(log_dir, ignore_errors=True)

    if args.json:
        dump_json(args.json, soak)
    body = report(soak, facts)
    print("\n" + body)
    if args.write_docs:
        replace_section(TITLE, body)
        print(f"\nwrote the '{TITLE}' section of docs/BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
