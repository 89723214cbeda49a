"""API under load: `pricecat serve --workers 2` on the 2.08M-row seed, driven by wrk with a
realistic mix, cold and warm cache, against a bare Sanic baseline; uncached latency per endpoint;
payload size of one catalog page vs the legacy by-code model.

    .venv/bin/python -m bench.bench_api                       # 60 s per phase, 1,000 connections
    .venv/bin/python -m bench.bench_api --duration 10 --connections 200 --write-docs

Phases, in one run:
1. start `pricecat serve --workers N` (API_DATABASE_URL: the read-only role) on a free port;
2. payload size: /api/v1/catalog?page_size=24 (raw and gzip) vs the same 24 products in the old
   by-code shape (one row per product_code with every snapshot's price), built by SQL over the
   raw table;
3. uncached latency per endpoint: a new data generation, then distinct never-requested URLs one
   at a time (httpx, concurrency 1; /meta/categories has one key, so a new generation before each
   of its samples); only responses with `X-Cache: miss` count;
4. cold: a new data generation (the published build gets a new id from
   `catalog_ops.build_ids`, as a publish would; the data stays), then wrk for --duration;
5. warm: wrk again straight after (same paths);
6. baseline: bench/baseline_app.py with the same workers, returning a constant body of the warm
   run's mean body size, same wrk script and paths.

Mix (bench/lua/mix.lua replays a shuffled list of paths, each wrk thread from a random offset):
catalog pages with filters 40%, product pages 30%, suggest 25%, categories/recent 5%, over slugs,
category combinations and search terms sampled from the published marts. Errors = non-2xx/3xx
statuses (counted in Lua) + wrk socket errors. Cache hit ratio from `X-Cache` (counted in Lua) and
from the /metrics counters (before/after, by layer). Results are printed, written as JSON
(--json) and, with --write-docs, into the "## API under load" and "## Payload size" sections of
docs/BENCHMARKS.md (other sections are left alone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import platform
import random
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import asyncpg
import httpx

from bench.common import fold, git_commit, percentile
from bench.procs import PRICECAT, REPO_ROOT, Service, ServiceError, free_port
from bench.prom import scrape
from pricecat.config import API_ROLE, Settings, with_user
from pricecat.generation import read_generation

LUA_SCRIPT = REPO_ROOT / "bench" / "lua" / "mix.lua"
DOCS = REPO_ROOT / "docs" / "BENCHMARKS.md"
GENERATION_CHECK_SECONDS = 1.0  # the API's default API_GENERATION_CHECK_SECONDS

MIX = (("catalog", 40), ("product", 30), ("suggest", 25), ("other", 5))


def log(msg: str) -> None:
    print(f"bench_api: {msg}", flush=True)




def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


# ----------------------------------------------------------------------------- inputs


async def sample_inputs(database_url: str, n_slugs: int, seed: int) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("select setseed($1)", (seed % 1000) / 1000)
        exists = await conn.fetchval(
            "select to_regclass('catalog.catalog_slug_summary') is not null"
        )
        if not exists:
            raise SystemExit("bench_api: catalog.catalog_slug_summary does not exist; run "
                             "`pricecat refresh` first")
        raw_rows = await conn.fetchval(
            "select reltuples::bigint from pg_class "
            "where oid = 'public.product_price_snapshots'::regclass"
        )
        slug_rows = await conn.fetchval("select count(*) from catalog.catalog_slug_summary")
        rows = await conn.fetch(
            "select slug, name from catalog.catalog_slug_summary order by random() limit $1",
            n_slugs,
        )
        cats = await conn.fetch(
            "select c, count(*) as n from catalog.catalog_slug_summary, unnest(categories) as c "
            "group by c order by n desc, c limit 60"
        )
        prices = await conn.fetch(
            "select percentile_disc(array[0.1, 0.25, 0.5, 0.75, 0.9]) within group "
            "(order by min_price) as p from catalog.catalog_slug_summary "
            "where min_price is not null"
        )
    finally:
        await conn.close()
    return {
        "raw_rows_estimate": int(raw_rows or 0),
        "slug_rows": int(slug_rows),
        "slugs": [r["slug"] for r in rows],
        "names": [r["name"] for r in rows],
        "categories": [r["c"] for r in cats],
        "price_points": [float(p) for p in (prices[0]["p"] or [100, 300, 600, 1000, 2000])],
    }


@dataclass(frozen=True)
class Req:
    label: str  # catalog | catalog_q | product | suggest | categories | recent
    path: str


class PathMaker:
    """Builds request paths of each kind from the sampled inputs (deterministic per seed)."""

    def __init__(self, inputs: dict[str, Any], seed: int) -> None:
        self.rnd = random.Random(seed)
        self.slugs: list[str] = inputs["slugs"]
        self.cats: list[str] = inputs["categories"]
        self.prices: list[float] = inputs["price_points"]
        words = {w for name in inputs["names"] for w in re.findall(r"\w{3,}", fold(name))}
        self.words = sorted(w for w in words if not w.isdigit()) or ["kat"]

    def catalog(self) -> Req:
        rnd = self.rnd
        params: dict[str, Any] = {}
        label = "catalog"
        if rnd.random() < 0.6:
            params["page"] = rnd.choice([1, 1, 2, 2, 3, 4, 5, 8, 10, 20, 40])
        if rnd.random() < 0.2:
            params["page_size"] = rnd.choice([12, 48, 96])
        if rnd.random() < 0.5:
            params["availability"] = rnd.choice(["available", "available", "preorder",
                                                 "unavailable"])
        if rnd.random() < 0.5:
            params["sort"] = rnd.choice(["price_asc", "price_desc", "newest", "name"])
        if rnd.random() < 0.5 and self.cats:
            params["categories"] = ",".join(
                rnd.sample(self.cats[: rnd.choice([10, 30, 60])], rnd.choice([1, 1, 1, 2, 3]))
            )
        if rnd.random() < 0.3:
            lo, hi = sorted(rnd.sample(self.prices, 2))
            if rnd.random() < 0.5:
                params["min_price"] = int(lo)
            params["max_price"] = int(hi)
        if rnd.random() < 0.2:
            params["q"] = rnd.choice(self.words)
            label = "catalog_q"
        return Req(label, "/api/v1/catalog" + ("?" + urlencode(params) if params else ""))

    def product(self) -> Req:
        return Req("product", f"/api/v1/products/{self.rnd.choice(self.slugs)}")

    def suggest(self) -> Req:
        rnd = self.rnd
        w = rnd.choice(self.words)
        q = w[: rnd.randint(min(3, len(w)), len(w))]
        if rnd.random() < 0.1 and len(q) > 3:  # one typo
            i = rnd.randrange(len(q))
            q = q[:i] + rnd.choice("aeiouxyz") + q[i + 1:]
        params: dict[str, Any] = {"q": q}
        if rnd.random() < 0.2:
            params["availability"] = "available"
        if rnd.random() < 0.1:
            params["limit"] = rnd.choice([5, 10])
        return Req("suggest", "/api/v1/search/suggest?" + urlencode(params))

    def other(self) -> Req:
        rnd = self.rnd
        if rnd.random() < 0.5:
            return Req("categories", "/api/v1/meta/categories")
        limit = rnd.choice([None, None, 20, 50, 200])
        return Req("recent", "/api/v1/snapshots/recent" + (f"?limit={limit}" if limit else ""))

    def recent(self, limit: int) -> Req:
        return Req("recent", f"/api/v1/snapshots/recent?limit={limit}")

    def pool(self, kind: str, size: int) -> list[Req]:
        """Up to ``size`` distinct requests of one kind, in generation order."""
        make = {"catalog": self.catalog, "product": self.product, "suggest": self.suggest,
                "other": self.other}[kind]
        seen: dict[str, Req] = {}
        tries = 0
        while len(seen) < size and tries < size * 20:
            tries += 1
            req = make()
            seen.setdefault(req.path, req)
        return list(seen.values())

    def mix(self, n: int, pool_size: int, zipf: float) -> list[Req]:
        """``n`` requests in the MIX proportions, each kind drawn from a pool of distinct requests
        with popularity ~ 1 / rank**zipf (0 = uniform): real catalog traffic is skewed."""
        out: list[Req] = []
        for kind, weight in MIX:
            pool = self.pool(kind, pool_size)
            weights = [1.0 / (i + 1) ** zipf for i in range(len(pool))]
            out += self.rnd.choices(pool, weights=weights, k=n * weight // 100)
        self.rnd.shuffle(out)
        return out


def write_paths(reqs: list[Req], path: Path) -> None:
    path.write_text("".join(quote(r.path, safe="/?&=,:%-_.~+") + "\n" for r in reqs))


# ----------------------------------------------------------------------------- processes


@dataclass
class Server:
    service: Service
    base: str

    def stop(self) -> None:
        self.service.stop(timeout=30)

    def log_findings(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        first: list[str] = []
        lines = 0
        for line in self.service.log().splitlines():
            if line.startswith((" ", "Traceback", "The above exception", "During handling")) \
                    or not re.search(
                r"error|exception|warning|cancelled|unavailable", line, re.I
            ):
                continue
            lines += 1
            if line.startswith("unhandled error on"):
                continue  # the next line names the exception
            m = re.search(r"([A-Za-z_.]+(?:Error|Exception|Cancelled|Timeout))", line)
            key = m.group(1) if m else re.sub(r"\d+", "N", line.strip())[:70]
            kinds[key] = kinds.get(key, 0) + 1
            if len(first) < 12:
                first.append(line[:300])
        return {"lines": lines, "kinds": kinds, "first": first}


def start(name: str, cmd: list[str], env: dict[str, str], port: int, workdir: Path,
          ready_path: str) -> Server:
    service = Service(name, cmd, workdir / f"{name}.log", env).start()
    server = Server(service, f"http://127.0.0.1:{port}")
    try:
        service.wait_http(server.base + ready_path, timeout=180)
    except ServiceError as exc:
        server.stop()
        raise SystemExit(f"bench_api: {exc}") from exc
    return server


# ----------------------------------------------------------------------------- metrics


def cache_counters(base: str) -> dict[tuple[str, str, str], float]:
    """(endpoint, result, layer) -> count from /metrics (all workers); database errors as
    ("db_error", query, kind)."""
    out: dict[tuple[str, str, str], float] = {}
    for (name, label_set), value in (scrape(base, timeout=30) or {}).items():
        labels = dict(label_set)
        if name == "pricecat_cache_requests_total":
            key = (labels.get("endpoint", "?"), labels.get("result", "?"),
                   labels.get("layer", "?"))
        elif name == "pricecat_db_errors_total":
            key = ("db_error", labels.get("query", "?"), labels.get("kind", "?"))
        else:
            continue
        out[key] = out.get(key, 0.0) + value
    return out


def cache_delta(before: dict[tuple[str, str, str], float],
                after: dict[tuple[str, str, str], float]) -> dict[str, Any]:
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in set(before) | set(after)}
    per_endpoint: dict[str, dict[str, float]] = {}
    per_layer: dict[str, float] = {}
    db_errors: dict[str, int] = {}
    for (endpoint, result, layer), v in delta.items():
        if v <= 0:
            continue
        if endpoint == "db_error":
            db_errors[f"{result}:{layer}"] = int(v)
            continue
        per_endpoint.setdefault(endpoint, {}).setdefault(result, 0.0)
        per_endpoint[endpoint][result] += v
        per_layer[f"{result}/{layer}"] = per_layer.get(f"{result}/{layer}", 0.0) + v

    def ratio(d: dict[str, float]) -> float | None:
        total = sum(d.values())
        return round(d.get("hit", 0.0) / total, 4) if total else None

    total: dict[str, float] = {}
    for d in per_endpoint.values():
        for k, v in d.items():
            total[k] = total.get(k, 0.0) + v
    return {
        "hit_ratio": ratio(total),
        "lookups": {k: int(v) for k, v in total.items()},
        "by_endpoint": {e: {"hit_ratio": ratio(d), **{k: int(v) for k, v in d.items()}}
                        for e, d in sorted(per_endpoint.items())},
        "by_layer": {k: int(v) for k, v in sorted(per_layer.items())},
        "db_errors": db_errors,
    }


# ----------------------------------------------------------------------------- wrk


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                children = Path(f"/proc/{p}/task/{task}/children").read_text().split()
                todo += [int(c) for c in children]
    return out


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds used so far by ``pid`` and its live descendants (the server's
    main process and its workers): CPU per request is comparable across runs on a shared
    machine, where req/s also depends on what the other tenants do."""
    if pid is None or not Path(f"/proc/{pid}").exists():
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in _process_tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def run_wrk(base: str, paths_file: Path, workdir: Path, tag: str, args: argparse.Namespace,
            settings: Settings | None = None, server_pid: int | None = None) -> dict[str, Any]:
    out = workdir / f"wrk_{tag}.json"
    cmd = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s",
           "--timeout", args.timeout, "--latency", "-s", str(LUA_SCRIPT)]
    if args.gzip:
        cmd += ["-H", "Accept-Encoding: gzip"]
    cmd.append(base)
    env = {**os.environ, "BENCH_PATHS": str(paths_file), "BENCH_OUT": str(out)}
    load_before = loadavg()
    gen_before = asyncio.run(current_generation(settings.database_url)) if settings else None
    log(f"{tag}: " + " ".join(cmd))
    cpu_before = cpu_seconds(server_pid)
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_after = cpu_seconds(server_pid)
    wrk_cpu = (wrk_after.ru_utime + wrk_after.ru_stime
               - wrk_before.ru_utime - wrk_before.ru_stime)
    gen_after = asyncio.run(current_generation(settings.database_url)) if settings else None
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"bench_api: wrk failed ({proc.returncode})\n{proc.stdout}\n{proc.stderr}")
    res = json.loads(out.read_text())
    statuses = {int(k): v for k, v in res["statuses"].items()}
    bad = sum(v for k, v in statuses.items() if not 200 <= k < 400)
    socket_errors = sum(res["errors"][k] for k in ("connect", "read", "write", "timeout"))
    seconds = res["duration_us"] / 1e6
    xc = res["x_cache"]
    looked_up = sum(v for k, v in xc.items() if k in ("hit", "miss", "bypass"))
    return {
        "command": " ".join(shlex.quote(c) for c in cmd),
        "requests": res["requests"],
        "seconds": round(seconds, 2),
        "rps": round(res["requests"] / seconds, 1),
        "latency_ms": {k: round(v / 1000, 2) for k, v in res["latency_us"].items()},
        "statuses": dict(sorted(statuses.items())),
        "non_2xx_3xx": bad,
        "socket_errors": res["errors"],
        "errors_total": bad + socket_errors,
        "x_cache": xc,
        # nginx's micro-cache status (X-Cache-Nginx) when the answers went through it
        "x_cache_nginx": res.get("x_cache_nginx", {}),
        # answers per data build (X-Pricecat-Generation): a publish's turn-over
        "generations": res.get("generations", {}),
        "error_codes": res.get("error_codes", {}),
        "x_cache_hit_ratio": round(xc.get("hit", 0) / looked_up, 4) if looked_up else None,
        "mean_body_bytes": round(res["body_bytes"] / res["responses"]) if res["responses"] else 0,
        "mean_ok_body_bytes": (round(res["ok_body_bytes"] / res["ok_responses"])
                               if res["ok_responses"] else 0),
        "mean_response_bytes": round(res["bytes"] / res["requests"]) if res["requests"] else 0,
        "loadavg_before": load_before,
        # a refresh published by someone else during the phase turns the cache over
        "generation_bumps": int(gen_after != gen_before)
        if gen_before is not None and gen_after is not None else None,
        "loadavg_after": loadavg(),
        # server CPU (all its processes) per request, microseconds
        "cpu_us_per_request": round((cpu_after - cpu_before) * 1e6 / res["requests"], 1)
        if cpu_before is not None and cpu_after is not None and res["requests"] else None,
        # wrk's own CPU per request (it shares the machine: more response headers cost it more)
        "client_cpu_us_per_request": round(wrk_cpu * 1e6 / res["requests"], 1)
        if res["requests"] else None,
        "wrk_stdout": proc.stdout,
    }


# ----------------------------------------------------------------------------- uncached


async def new_generation(database_url: str) -> int:
    """A new data generation, as after a publish: the published build gets a new id (the data
    stays), so every API cache key changes."""
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(
            "update catalog.catalog_build_info set previous_build_id = build_id, "
            "build_id = nextval('catalog_ops.build_ids') returning build_id"
        ))
    finally:
        await conn.close()


async def current_generation(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await read_generation(conn)
    finally:
        await conn.close()


async def uncached_latencies(base: str, maker: PathMaker, settings: Settings, samples: int,
                             category_samples: int, used: set[str]) -> dict[str, Any]:
    """Distinct never-requested URLs, one at a time, right after a new data generation."""
    per_label: dict[str, list[Req]] = {"catalog": [], "catalog_q": [], "product": [],
                                       "suggest": [], "recent": []}
    seen = set(used)
    tries = 0
    while any(len(v) < samples for k, v in per_label.items() if k != "recent") and tries < 50000:
        tries += 1
        req = rnd_pick(maker)
        if req.label in per_label and req.path not in seen and len(per_label[req.label]) < samples:
            per_label[req.label].append(req)
            seen.add(req.path)
    limits = [n for n in range(1, 501) if f"/api/v1/snapshots/recent?limit={n}" not in seen]
    maker.rnd.shuffle(limits)
    per_label["recent"] = [maker.recent(n) for n in limits[:samples]]

    await new_generation(settings.database_url)
    await asyncio.sleep(GENERATION_CHECK_SECONDS + 0.3)
    result: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await client.get("/healthz")  # open the keep-alive connection
        order = [r for reqs in per_label.values() for r in reqs]
        maker.rnd.shuffle(order)
        times: dict[str, list[float]] = {k: [] for k in per_label}
        not_miss: dict[str, int] = {k: 0 for k in per_label}
        statuses: dict[str, dict[int, int]] = {k: {} for k in per_label}
        for req in order:
            t0 = time.perf_counter()
            r = await client.get(req.path)
            dt = (time.perf_counter() - t0) * 1000
            statuses[req.label][r.status_code] = statuses[req.label].get(r.status_code, 0) + 1
            if r.headers.get("x-cache") == "miss":
                times[req.label].append(dt)
            else:
                not_miss[req.label] += 1
        times["categories"], not_miss["categories"], statuses["categories"] = [], 0, {}
        for _ in range(category_samples):
            await new_generation(settings.database_url)
            await asyncio.sleep(GENERATION_CHECK_SECONDS + 0.2)
            t0 = time.perf_counter()
            r = await client.get("/api/v1/meta/categories")
            dt = (time.perf_counter() - t0) * 1000
            st = statuses["categories"]
            st[r.status_code] = st.get(r.status_code, 0) + 1
            if r.headers.get("x-cache") == "miss":
                times["categories"].append(dt)
            else:
                not_miss["categories"] += 1
    for label, ts in times.items():
        result[label] = {
            "n": len(ts),
            "p50_ms": round(percentile(ts, 50), 1) if ts else None,
            "p95_ms": round(percentile(ts, 95), 1) if ts else None,
            "max_ms": round(max(ts), 1) if ts else None,
            "not_miss": not_miss[label],
            "statuses": statuses[label],
        }
    return result


def rnd_pick(maker: PathMaker) -> Req:
    kind = maker.rnd.choices([k for k, _ in MIX], weights=[w for _, w in MIX])[0]
    return {"catalog": maker.catalog, "product": maker.product, "suggest": maker.suggest,
            "other": maker.other}[kind]()


async def prefill(base: str, paths: list[str], concurrency: int) -> dict[str, int]:
    """Request every path once (a few at a time) so that the cache holds all of them."""
    counts: dict[str, int] = {}
    queue = list(paths)

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            path = queue.pop()
            try:
                r = await client.get(path)
                key = f"{r.status_code}:{r.headers.get('x-cache', 'none')}"
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            counts[key] = counts.get(key, 0) + 1

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return counts


# ----------------------------------------------------------------------------- payload size


LEGACY_SQL = """
with snaps as (
    select id, scraped_at, seller, product_code, product_name_original, product_name_normalized,
           price, availability, url, image_url, description, categories
    from public.product_price_snapshots
    where product_name_normalized = any($1::text[])
),
latest as (
    select distinct on (product_code)
        product_code, product_name_normalized, product_name_original, seller, price,
        availability, url, image_url, description, categories, scraped_at
    from snaps
    order by product_code, scraped_at desc, id desc
)
select
    latest.product_code,
    latest.product_name_normalized,
    latest.product_name_original as product_name,
    latest.seller,
    latest.price,
    latest.availability,
    latest.url,
    latest.image_url,
    latest.description,
    latest.categories,
    latest.scraped_at as last_scraped_at,
    (
        select json_agg(
            json_build_object(
                'scraped_at', snaps.scraped_at, 'seller', snaps.seller,
                'price', snaps.price, 'availability', snaps.availability
            ) order by snaps.scraped_at, snaps.id
        )
        from snaps
        where snaps.product_code = latest.product_code
    )::text as price_points,
    (select count(*) from snaps where snaps.product_code = latest.product_code) as n_points
from latest
order by latest.product_name_normalized, latest.product_code
"""


def _jsonable(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, datetime):
        return v.astimezone(UTC).isoformat()
    return v


async def payload_sizes(base: str, database_url: str) -> dict[str, Any]:
    path = "/api/v1/catalog?page=1&page_size=24"
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        plain = await client.get(path, headers={"Accept-Encoding": "identity"})
        plain.raise_for_status()
        zipped = await client.get(path, headers={"Accept-Encoding": "gzip"})
    api_raw = len(plain.content)
    # httpx decodes gzip: the wire size is the Content-Length of the gzip response
    api_gzip_wire = int(zipped.headers.get("content-length", "0")) \
        if zipped.headers.get("content-encoding") == "gzip" else None
    slugs = [item["slug"] for item in plain.json()["items"]]

    conn = await asyncpg.connect(database_url)
    try:
        t0 = time.perf_counter()
        rows = await conn.fetch(LEGACY_SQL, slugs)
        legacy_query_ms = (time.perf_counter() - t0) * 1000
    finally:
        await conn.close()
    legacy = []
    for r in rows:
        d = {k: _jsonable(r[k]) for k in r.keys() if k not in ("price_points", "n_points")}
        d["price_points"] = json.loads(r["price_points"])
        legacy.append(d)
    legacy_raw_bytes = json.dumps(legacy, ensure_ascii=False, separators=(",", ":")).encode()
    legacy_gzip = len(gzip.compress(legacy_raw_bytes, compresslevel=5, mtime=0))
    api_gzip_local = len(gzip.compress(plain.content, compresslevel=5, mtime=0))
    points = [int(r["n_points"]) for r in rows]
    return {
        "path": path,
        "items": len(slugs),
        "api_raw_bytes": api_raw,
        "api_gzip_bytes": api_gzip_wire or api_gzip_local,
        "api_gzip_source": "API response (Content-Encoding: gzip)" if api_gzip_wire
        else "gzip level 5 locally",
        "legacy_rows": len(rows),
        "legacy_points_total": sum(points),
        "legacy_points_per_row_median": sorted(points)[len(points) // 2] if points else 0,
        "legacy_raw_bytes": len(legacy_raw_bytes),
        "legacy_gzip_bytes": legacy_gzip,
        "legacy_query_ms": round(legacy_query_ms, 1),
        "ratio_raw": round(len(legacy_raw_bytes) / api_raw, 1) if api_raw else None,
        "ratio_gzip": round(legacy_gzip / (api_gzip_wire or api_gzip_local), 1),
    }


# ----------------------------------------------------------------------------- docs


def machine_facts() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = "?"
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = f"{int(line.split()[1]) / 1024 / 1024:.0f}"
    versions: dict[str, str] = {}
    for mod in ("sanic", "redis", "asyncpg"):
        with contextlib.suppress(Exception):
            versions[mod] = __import__(mod).__version__
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        versions["wrk"] = (wrk.stdout + wrk.stderr).split()[1]
    return {"cores": os.cpu_count(), "cpu": cpu, "mem_gb": mem_gb,
            "kernel": platform.release(), "python": platform.python_version(), **versions}


def replace_sections(path: Path, sections: dict[str, str]) -> None:
    """Replace (or append) `## heading` sections, leaving every other section as it is.
    Re-reads the file right before writing: other benchmarks write their own sections."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    for heading, body in sections.items():
        block = body.rstrip() + "\n"
        lines = text.splitlines(keepends=True)
        start_i = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
        if start_i is None:
            text = text.rstrip() + "\n\n" + block
            continue
        end_i = next((i for i in range(start_i + 1, len(lines))
                      if lines[i].startswith("## ")), len(lines))
        tail = "".join(lines[end_i:])
        text = "".join(lines[:start_i]) + block + ("\n" + tail if tail else "")
    tmp = path.with_suffix(".md.tmp-bench-api")
    tmp.write_text(text)
    os.replace(tmp, path)


def api_options_report() -> dict[str, Any]:
    """The API's tuning knobs as the server started by this benchmark reads them (same env)."""
    o = Settings.from_env()
    return {
        "db_pool_max": o.db_pool_max, "db_acquire_timeout": o.db_acquire_timeout,
        "redis_max_connections": o.redis_max_connections,
        "redis_pool_timeout": o.redis_pool_timeout,
        "generation_check_seconds": o.generation_check_seconds,
        "local_cache_entries": o.local_cache_entries, "local_cache_mb": o.local_cache_mb,
        "cache_stale_seconds": o.cache_stale_seconds, "backlog": o.backlog,
    }


def _options(r: dict[str, Any]) -> dict[str, Any]:
    """Options of the run (older reports lack them: the current defaults)."""
    return r.get("api_options") or api_options_report()


def fmt_load(t: tuple[float, float, float] | list[float]) -> str:
    return " / ".join(f"{x:.2f}" for x in t)


def render_load_section(r: dict[str, Any]) -> str:
    m = r["machine"]
    a = r["args"]
    o = _options(r)
    dist = r["distinct_by_label"]
    n_catalog = dist.get("catalog", 0) + dist.get("catalog_q", 0)
    lines = [
        "## API under load",
        "",
        f"Measured {r['finished_at']} on commit `{r.get('commit', '?')}` with:",
        "",
        "```",
        r["command"],
        "```",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['mem_gb']} GB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}, Sanic {m.get('sanic', '?')}, redis-py {m.get('redis', '?')}, "
        f"asyncpg {m.get('asyncpg', '?')}, wrk {m.get('wrk', '?')}. Load generator, API, "
        f"Postgres and Redis share the same {m['cores']} cores (loopback). "
        + ("**The machine was shared with other jobs**: "
           if r["loadavg_start"][0] >= 0.5 else "The machine was otherwise idle: ")
        + f"load average (1/5/15 min) "
        f"{fmt_load(r['loadavg_start'])} at the start of the run; per phase below.",
        "",
        f"Data: {r['inputs']['raw_rows_estimate']:,} raw snapshots (estimate), "
        f"{r['inputs']['slug_rows']:,} slugs in `catalog.catalog_slug_summary`. "
        f"`pricecat serve --workers {a['workers']}`, API as `pricecat_api`, API options per "
        f"worker: in-process LRU {o['local_cache_entries']:,} entries / "
        f"{o['local_cache_mb']:g} MB, generation checked every {o['generation_check_seconds']:g} "
        f"s, Redis pool {o['redis_max_connections']} ({o['redis_pool_timeout']:g} s wait), "
        f"asyncpg pool {o['db_pool_max']} ({o['db_acquire_timeout']:g} s acquire wait), "
        f"values kept {o['cache_stale_seconds']} s past their TTL (served while revalidating), "
        f"listen backlog {o['backlog']:,}.",
        "",
        f"Mix: {r['distinct_paths']:,} distinct paths in a shuffled list of {r['paths_total']:,} "
        "(each wrk thread replays it from a random offset; within each kind, popularity "
        f"∝ 1/rank^{a['zipf']} over a pool of up to {a['pool']:,} distinct requests, as real "
        "catalog traffic is skewed): catalog pages with filters 40% "
        f"({n_catalog:,} distinct, of which {dist.get('catalog_q', 0):,} with `q`), product "
        f"pages 30% ({r['distinct_by_label'].get('product', 0):,} distinct slugs), suggest 25% "
        f"({r['distinct_by_label'].get('suggest', 0):,} distinct), categories/recent 5%. "
        f"wrk: {a['threads']} threads, {a['connections']:,} connections, {a['duration']} s per "
        f"phase, timeout {a['timeout']}, "
        + ("`Accept-Encoding: gzip`." if a["gzip"] else "no `Accept-Encoding` (plain JSON bodies).")
        + " Errors = non-2xx/3xx responses (counted in `bench/lua/mix.lua`) + socket errors.",
        "",
        "| phase | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | cache hit ratio "
        "(X-Cache) | mean 2xx body B | server CPU µs/request | load avg (1 min) before → after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, label in (("cold", "API, cold cache (new generation)"),
                        ("warm", "API, warm cache (straight after cold)"),
                        ("hot", "API, hot set only (all cached first)"),
                        ("baseline", "bare Sanic, constant body")):
        p = r["phases"].get(name)
        if not p:
            continue
        lat = p["latency_ms"]
        hit = p["x_cache_hit_ratio"]
        err = p["errors_total"]
        err_txt = f"{err:,}"
        if err:
            se = [f"{v:,} {k}" for k, v in p["socket_errors"].items() if v and k != "status"]
            err_txt += f" = {p['non_2xx_3xx']:,} non-2xx/3xx"
            err_txt += (" + socket: " + ", ".join(se)) if se else ""
            err_txt += f" ({err / max(p['requests'], 1):.1%})"
        lines.append(
            f"| {label} | {p['rps']:,.0f} | {lat['p50']:.1f} | {lat['p95']:.1f} | "
            f"{lat['p99']:.1f} | {lat['max']:.0f} | {err_txt} | "
            f"{'—' if hit is None else f'{hit:.1%}'} | {p['mean_ok_body_bytes']:,} | "
            f"{p.get('cpu_us_per_request') or '—'} | "
            f"{fmt_load(p['loadavg_before'][:1])} → {fmt_load(p['loadavg_after'][:1])} |"
        )
    for name in ("cold", "warm", "hot"):
        p = r["phases"].get(name)
        c = r["metrics"].get(name) or {}
        if p and (p["error_codes"] or c.get("db_errors")):
            lines.append("")
            lines.append(
                f"Errors, {name}: responses by `status:error.code` {p['error_codes']}; "
                f"database errors by `query:kind` from /metrics {c.get('db_errors') or {}}."
            )
    ratio = r.get("ratio_to_baseline")
    if ratio:
        lines += [
            "",
            f"**Throughput relative to the bare Sanic handler** (same workers, same wrk script "
            f"and paths, constant body of the warm run's mean 2xx body size, "
            f"{r['phases']['baseline']['mean_ok_body_bytes']:,} B): "
            + ", ".join(f"{k} **{v:.1%}**" for k, v in ratio.items()) + ".",
        ]
    p99 = r.get("p99_to_baseline")
    if p99:
        lines += ["", "p99 latency relative to the bare Sanic handler: "
                  + ", ".join(f"{k} **{v:.2f}x**" for k, v in p99.items()) + "."]
    goal = r.get("goal")
    if goal:
        lines += ["", "Goal of issue 14 in this run (ratios to the bare Sanic handler above): "
                  + "; ".join(
                      f"{name}: {_goal_value(g)} — **{'met' if g['met'] else 'not met'}**"
                      for name, g in goal.items()) + "."]
    hp = r.get("hot_prefill")
    if hp:
        lines += ["", f"Hot phase: the {hp['paths']:,} most requested paths of the mix "
                  f"({hp['requests_in_list']:,} of the list's entries), requested before "
                  f"(8 at a time, new connections) until one whole pass was answered from every "
                  f"worker's memory ({_passes(len(hp.get('passes', [1])))}, {hp['seconds']} s), so "
                  f"all are in each worker's in-process layer; the in-process LRU "
                  f"holds {o['local_cache_entries']:,} entries "
                  f"({o['local_cache_mb']:g} MB) per worker."]
    lines += ["", "Cache lookups from `/metrics` (all workers, delta over each phase; "
              "`hit/memory` = in-process LRU, `hit/redis`, `hit/coalesced` = joined an in-flight "
              "load, `miss/db` = loaded from Postgres):", ""]
    for name in ("cold", "warm", "hot"):
        c = r["metrics"].get(name)
        if not c:
            continue
        per = ", ".join(f"{e} {d['hit_ratio']:.1%}" for e, d in c["by_endpoint"].items()
                        if d.get("hit_ratio") is not None)
        lines.append(f"- {name}: hit ratio {c['hit_ratio']:.1%} "
                     f"({', '.join(f'{k} {v:,}' for k, v in c['by_layer'].items())}); "
                     f"per endpoint: {per}." if c["hit_ratio"] is not None else f"- {name}: —")
    u = r.get("uncached")
    if u:
        lines += [
            "",
            "Uncached latency per endpoint (served from Postgres: a new data generation, then "
            "distinct never-requested URLs, one at a time over one keep-alive connection with "
            "httpx, the API otherwise idle; only responses with `X-Cache: miss` counted; "
            "`/meta/categories` has one key, so a new generation before each of its samples). "
            f"Load average {fmt_load(r['uncached_loadavg'][:1])} (1 min) at the time.",
            "",
            "| endpoint | n | p50 ms | p95 ms | max ms |",
            "|---|---:|---:|---:|---:|",
        ]
        names = {"catalog": "`/catalog` (filters, no q)", "catalog_q": "`/catalog` with `q`",
                 "product": "`/products/{slug}`", "suggest": "`/search/suggest`",
                 "categories": "`/meta/categories`", "recent": "`/snapshots/recent`"}
        for label, title in names.items():
            d = u.get(label)
            if not d or not d["n"]:
                continue
            lines.append(f"| {title} | {d['n']} | {d['p50_ms']:.1f} | {d['p95_ms']:.1f} | "
                         f"{d['max_ms']:.1f} |")
    f = r.get("server_log")
    if f and f["lines"]:
        lines += ["", f"Server log during the run: {f['lines']} warning/error lines: "
                  f"{', '.join(f'{k} ×{v}' for k, v in list(f['kinds'].items())[:8])}."]
    notes = list(r.get("notes") or [])
    api_phases = [r["phases"][n] for n in ("cold", "warm", "hot") if n in r["phases"]]
    bumped = {n: r["phases"][n].get("generation_bumps") for n in ("cold", "warm", "hot")
              if r["phases"].get(n, {}).get("generation_bumps")}
    if bumped:
        notes.append(
            "The data generation changed during " + ", ".join(
                f"{n} ({v}×)" for n, v in bumped.items())
            + ": a `pricecat refresh` by another job published meanwhile, turning the cache over."
        )
    else:
        notes.append("No refresh published during the load phases (data generation unchanged).")
    if any("503:database_busy" in p["error_codes"] for p in api_phases):
        notes.append(
            "`503 database_busy` here is load shedding, not an outage: Postgres stayed up "
            "(misses kept loading, `miss/db` above); the miss waited longer than "
            f"`API_DB_ACQUIRE_TIMEOUT` ({o['db_acquire_timeout']:g} s) for one of its worker's "
            f"{o['db_pool_max']} asyncpg connections (api/db.py). A miss that fails this way "
            "fails every request coalesced onto it, and nothing is cached."
        )
    if any("503:database_unavailable" in p["error_codes"] for p in api_phases):
        notes.append(
            "`503 database_unavailable`: Postgres refused or dropped connections during the "
            "run (see the server log)."
        )
    kinds = (f or {}).get("kinds", {})
    redis_exhausted = sum(v for k, v in kinds.items() if "No connection available" in k)
    if redis_exhausted:
        notes.append(
            f"`redis unavailable: No connection available` ×{redis_exhausted} in the server log: "
            f"the redis-py `BlockingConnectionPool` ({o['redis_max_connections']} per worker, "
            f"{o['redis_pool_timeout']:g} s timeout) ran dry under "
            "1,000 connections; those lookups fell back to Postgres (`X-Cache: bypass`, or a load "
            "without waiting for the other worker's)."
        )
    cancelled = sum(v for k, v in kinds.items() if "RequestCancelled" in k)
    if cancelled:
        notes.append(
            f"`RequestCancelled` ×{cancelled} in the server log: the client had gone away (wrk's "
            f"{a['timeout']} timeout, or requests in flight when a phase ends); Sanic logs each "
            "as an unhandled error."
        )
    if "hot" in r["phases"] and (r["metrics"].get("hot") or {}).get("lookups", {}).get("miss"):
        notes.append(
            "Misses in the hot phase are keys not cached yet in this generation (or evicted): a "
            "soft-expired entry (suggest 60 s, catalog and recent 120 s, product 300 s) is still "
            f"served for {o['cache_stale_seconds']} s more while one background load per key "
            "and worker revalidates it."
        )
    if notes:
        lines += ["", "Observations:", "", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def _passes(n: int) -> str:
    return "1 pass" if n == 1 else f"{n} passes"


def _goal_value(g: dict[str, Any]) -> str:
    if "ratio" in g:
        return "n/a" if g["ratio"] is None else f"{g['ratio']:g}"
    return ", ".join(f"{p} {n}" for p, n in g["errors"].items())


def render_payload_section(r: dict[str, Any]) -> str:
    p = r["payload"]
    return "\n".join([
        "## Payload size",
        "",
        f"One catalog page (`GET {p['path']}`, {p['items']} light cards, default sort) from the "
        f"API vs the same {p['items']} products in the old by-code read model with full price "
        f"arrays: one row per `product_code` ({p['legacy_rows']} rows for {p['items']} products) "
        "with the latest snapshot's fields (code, slug, name, seller, price, availability, url, "
        "image, description, raw categories, last scraped) and `price_points` holding **every** "
        "snapshot `{scraped_at, seller, price, availability}` — built by SQL over "
        "`public.product_price_snapshots` in `bench/bench_api.py` "
        f"({p['legacy_points_total']:,} points, median {p['legacy_points_per_row_median']} per "
        "row). Both as compact JSON.",
        "",
        f"Measured {r['finished_at']} on commit `{r.get('commit', '?')}`, command: "
        f"`{r['command']}`.",
        "",
        "| payload | raw | gzip |",
        "|---|---:|---:|",
        f"| API `/catalog` page (24 items) | {p['api_raw_bytes']:,} B | "
        f"{p['api_gzip_bytes']:,} B |",
        f"| legacy by-code rows, full price arrays | {p['legacy_raw_bytes']:,} B | "
        f"{p['legacy_gzip_bytes']:,} B |",
        f"| ratio legacy / API | {p['ratio_raw']}× | {p['ratio_gzip']}× |",
        "",
        f"API gzip size: {p['api_gzip_source']}; legacy gzip: level 5 locally (as the API does).",
    ]) + "\n"


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=60, help="seconds per wrk phase")
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--workers", type=int, default=2, help="Sanic workers (API and baseline)")
    ap.add_argument("--paths", type=int, default=50000, help="length of the replayed path list")
    ap.add_argument("--pool", type=int, default=5000,
                    help="distinct requests generated per kind (catalog, product, suggest)")
    ap.add_argument("--zipf", type=float, default=0.8,
                    help="popularity skew over each pool: weight 1/rank**zipf (0 = uniform)")
    ap.add_argument("--slugs", type=int, default=6000, help="slugs sampled from the marts")
    ap.add_argument("--timeout", default="10s", help="wrk per-request timeout")
    ap.add_argument("--gzip", action="store_true", help="send Accept-Encoding: gzip")
    ap.add_argument("--uncached-samples", type=int, default=40,
                    help="uncached samples per endpoint (0 = skip)")
    ap.add_argument("--category-samples", type=int, default=10,
                    help="uncached /meta/categories samples (each after a new generation)")
    ap.add_argument("--hot", type=int, default=1000,
                    help="hot phase: the N most requested paths, all cached first (0 = skip)")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--json", default=str(REPO_ROOT / "test-output" / "bench_api.json"))
    ap.add_argument("--write-docs", action="store_true",
                    help="write the figures into docs/BENCHMARKS.md (two sections)")
    ap.add_argument("--docs", default=str(DOCS), help="file for --write-docs")
    ap.add_argument("--note", action="append", default=[], help="a line for the docs")
    args = ap.parse_args(argv)
    command = ".venv/bin/python -m bench.bench_api" + (
        " " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        if (argv if argv is not None else sys.argv[1:]) else "")

    if not shutil.which("wrk"):
        print("bench_api: wrk is not installed", file=sys.stderr)
        return 2
    with contextlib.suppress(ValueError, OSError):
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    settings = Settings.from_env()
    api_url = os.environ.get("API_DATABASE_URL") or with_user(settings.database_url, API_ROLE)
    report: dict[str, Any] = {"command": command, "commit": git_commit(), "args": vars(args),
                              "machine": machine_facts(),
                              # what `pricecat serve` below runs with: the same env (API_*)
                              "api_options": api_options_report(),
                              "loadavg_start": loadavg(), "phases": {}, "metrics": {},
                              "notes": list(args.note)}
    inputs = asyncio.run(sample_inputs(settings.database_url, args.slugs, args.seed))
    report["inputs"] = {k: inputs[k] for k in ("raw_rows_estimate", "slug_rows")}
    maker = PathMaker(inputs, args.seed)
    reqs = maker.mix(args.paths, args.pool, args.zipf)
    distinct: dict[str, set[str]] = {}
    for req in reqs:
        distinct.setdefault(req.label, set()).add(req.path)
    report["paths_total"] = len(reqs)
    report["distinct_paths"] = len({r.path for r in reqs})
    report["distinct_by_label"] = {k: len(v) for k, v in sorted(distinct.items())}
    workdir = Path(tempfile.mkdtemp(prefix="pricecat-bench-api-"))
    report["workdir"] = str(workdir)
    paths_file = workdir / "paths.txt"
    write_paths(reqs, paths_file)
    log(f"{len(reqs):,} paths ({report['distinct_paths']:,} distinct) in {paths_file}; "
        f"distinct by kind {report['distinct_by_label']}; load avg {report['loadavg_start']}")

    port = free_port()
    env = {**os.environ, "DATABASE_URL": settings.database_url, "API_DATABASE_URL": api_url,
           "REDIS_URL": settings.redis_url, "CACHE_NAMESPACE": settings.cache_namespace,
           "RATE_LIMIT_PER_MINUTE": "0", "API_ACCESS_LOG": "0"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    api = start("api", [PRICECAT, "serve", "--host", "127.0.0.1", "--port", str(port),
                        "--workers", str(args.workers)], env, port, workdir, "/readyz")
    log(f"API ready on {api.base} (pid {api.service.pid}), log {api.service.log_path}")
    try:
        report["payload"] = asyncio.run(payload_sizes(api.base, settings.database_url))
        log(f"payload: {report['payload']}")
        if args.uncached_samples > 0:
            report["uncached_loadavg"] = loadavg()
            report["uncached"] = asyncio.run(uncached_latencies(
                api.base, PathMaker(inputs, args.seed + 1), settings, args.uncached_samples,
                args.category_samples, {r.path for r in reqs}))
            for label, d in report["uncached"].items():
                log(f"uncached {label}: {d}")

        gen = asyncio.run(new_generation(settings.database_url))
        time.sleep(GENERATION_CHECK_SECONDS + 0.5)
        log(f"cold: data generation bumped to {gen}")
        for phase in ("cold", "warm"):
            before = cache_counters(api.base)
            report["phases"][phase] = run_wrk(api.base, paths_file, workdir, phase, args,
                                             settings, api.service.pid)
            report["metrics"][phase] = cache_delta(before, cache_counters(api.base))
            print_phase(phase, report["phases"][phase], report["metrics"][phase])
        if args.hot > 0:
            # the most requested paths of the mix, all cached first: the pure cached-serving cost
            top = {p for p, _ in Counter(r.path for r in reqs).most_common(args.hot)}
            hot_reqs = [r for r in reqs if r.path in top]
            hot_file = workdir / "paths_hot.txt"
            write_paths(hot_reqs, hot_file)
            t0 = time.monotonic()
            # every worker has its own in-process layer, and a client's connections land on
            # whichever worker accepts them: request the set (over new connections) until one
            # whole pass is answered from memory only, at most 6 passes
            passes: list[dict[str, Any]] = []
            for _ in range(6):
                before = cache_counters(api.base)
                filled = asyncio.run(prefill(api.base, sorted(top), 8))
                layers = cache_delta(before, cache_counters(api.base))["by_layer"]
                passes.append({"results": filled, "layers": layers})
                if set(layers) <= {"hit/memory"}:
                    break
            report["hot_prefill"] = {"paths": len(top), "requests_in_list": len(hot_reqs),
                                     "seconds": round(time.monotonic() - t0, 1),
                                     "passes": passes, "results": passes[-1]["results"]}
            log(f"hot: prefilled {len(top)} paths in {report['hot_prefill']['seconds']} s: "
                f"{passes}")
            before = cache_counters(api.base)
            report["phases"]["hot"] = run_wrk(api.base, hot_file, workdir, "hot", args,
                                              settings, api.service.pid)
            report["metrics"]["hot"] = cache_delta(before, cache_counters(api.base))
            print_phase("hot", report["phases"]["hot"], report["metrics"]["hot"])
        report["api_alive_after"] = api.service.alive()
        try:
            report["healthz_after"] = httpx.get(api.base + "/healthz", timeout=5).status_code
        except httpx.HTTPError as exc:
            report["healthz_after"] = repr(exc)
    finally:
        api.stop()
        report["server_log"] = api.log_findings()

    if not args.no_baseline:
        body = report["phases"]["warm"]["mean_ok_body_bytes"] or 5000
        bport = free_port()
        baseline = start("baseline", [sys.executable, "-m", "bench.baseline_app", "--port",
                                      str(bport), "--workers", str(args.workers),
                                      "--body-bytes", str(body)],
                         {**os.environ, "PYTHONPATH": str(REPO_ROOT)}, bport, workdir, "/")
        try:
            report["phases"]["baseline"] = run_wrk(baseline.base, paths_file, workdir, "baseline",
                                                   args, None, baseline.service.pid)
            print_phase("baseline", report["phases"]["baseline"], None)
        finally:
            baseline.stop()
        base_rps = report["phases"]["baseline"]["rps"]
        if base_rps:
            report["ratio_to_baseline"] = {
                p: round(report["phases"][p]["rps"] / base_rps, 3)
                for p in ("cold", "warm", "hot") if p in report["phases"]
            }
            log(f"throughput / bare Sanic: {report['ratio_to_baseline']}")
        base_p99 = report["phases"]["baseline"]["latency_ms"]["p99"]
        if base_p99:
            report["p99_to_baseline"] = {
                p: round(report["phases"][p]["latency_ms"]["p99"] / base_p99, 2)
                for p in ("cold", "warm", "hot") if p in report["phases"]
            }
            log(f"p99 / bare Sanic: {report['p99_to_baseline']}")
        report["goal"] = goal_check(report)
        log(f"goal (issue 14): {report['goal']}")

    report["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report["loadavg_end"] = loadavg()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    log(f"full report in {args.json}")
    if report["server_log"]["lines"]:
        log(f"server log: {report['server_log']['lines']} warning/error lines: "
            f"{report['server_log']['kinds']}")
    if args.write_docs:
        replace_sections(Path(args.docs), {"## API under load": render_load_section(report),
                                "## Payload size": render_payload_section(report)})
        log(f"wrote the two sections into {args.docs}")
    errors = sum(report["phases"][p]["errors_total"] for p in ("cold", "warm", "hot")
                 if p in report["phases"])
    return 0 if errors == 0 and report.get("api_alive_after") else 1


#: issue 14's goal, relative to the bare Sanic handler of the same run: (phase, measure, bound)
GOAL = (("warm", "throughput", ">=", 0.8), ("warm", "p99", "<=", 1.5),
        ("hot", "throughput", ">=", 0.9))


def goal_check(r: dict[str, Any]) -> dict[str, Any]:
    """Each goal with the measured ratio and whether it holds; errors must be 0 too."""
    out: dict[str, Any] = {}
    for phase, measure, op, bound in GOAL:
        ratios = r.get("ratio_to_baseline" if measure == "throughput" else "p99_to_baseline")
        value = (ratios or {}).get(phase)
        met = value is not None and (value >= bound if op == ">=" else value <= bound)
        out[f"{phase} {measure} {op} {bound:g}x"] = {"ratio": value, "met": met}
    errors = {p: r["phases"][p]["errors_total"] for p in ("warm", "hot") if p in r["phases"]}
    out["warm/hot errors = 0"] = {"errors": errors, "met": not any(errors.values())}
    return out


def print_phase(name: str, p: dict[str, Any], c: dict[str, Any] | None) -> None:
    lat = p["latency_ms"]
    print(f"\n[{name}] {p['requests']:,} requests in {p['seconds']:.0f}s = {p['rps']:,.0f} req/s; "
          f"latency ms p50 {lat['p50']} p95 {lat['p95']} p99 {lat['p99']} max {lat['max']}; "
          f"errors {p['errors_total']} (non-2xx/3xx {p['non_2xx_3xx']}, socket "
          f"{p['socket_errors']}); statuses {p['statuses']}; X-Cache {p['x_cache']} "
          f"(hit ratio {p['x_cache_hit_ratio']}); mean body {p['mean_body_bytes']} B; "
          f"load avg {p['loadavg_before']} -> {p['loadavg_after']}; "
          f"server CPU {p.get('cpu_us_per_request')} us/request; "
          f"generation bumps by others {p.get('generation_bumps')}", flush=True)
    if c is not None:
        print(f"[{name}] /metrics cache: hit ratio {c['hit_ratio']}; {c['by_layer']}; "
              f"{c['by_endpoint']}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
