"""Read-through cache: miss -> hit, canonical keys, generation bump, single flight, the HTTP
cache headers (ETag/304, Cache-Control, gzip, CORS), and the previous generation answering
while the pool is saturated or a miss waits too long."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
from redis import Redis

from pricecat.config import Settings
from tests import helpers
from tests.api.conftest import (
    ALLOWED_ORIGIN,
    ApiServer,
    metric_sum,
    run_server,
    server_settings,
)

STALE = 600  # API_CACHE_STALE_SECONDS default


def fresh_left(r: Redis, key: str) -> float:
    """Seconds until the stored entry's soft expiry (value header: `<status> <fresh_until ms>`)."""
    head = r.get(key).partition(b"\n")[0]  # type: ignore[union-attr]
    return int(head.split(b" ")[1]) / 1000 - time.time()


def test_miss_then_hit_and_key_in_redis(api: ApiServer) -> None:
    gen = api.bump_generation()
    first = api.get("/api/v1/meta/categories")
    second = api.get("/api/v1/meta/categories")
    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit"
    assert first.json() == second.json()
    r = Redis.from_url(api.settings.redis_url)
    key = f"{api.settings.cache_namespace}:g{gen}:categories:list"
    assert r.exists(key) == 1
    # soft TTL (the documented 600 s) in the value, hard expiry = TTL + API_CACHE_STALE_SECONDS
    assert 600 < r.ttl(key) <= 600 + STALE
    assert 590 < fresh_left(r, key) <= 600
    r.close()


def test_keys_follow_the_documented_layout(api: ApiServer) -> None:
    gen = api.bump_generation()
    api.get("/api/v1/products/azul")
    api.get("/api/v1/search/suggest?q=Azul&limit=3")
    api.get("/api/v1/snapshots/recent?limit=7")
    api.get("/api/v1/catalog?page=2&page_size=5")
    r = Redis.from_url(api.settings.redis_url)
    prefix = f"{api.settings.cache_namespace}:g{gen}:"
    keys = {k.decode()[len(prefix):] for k in r.scan_iter(match=prefix + "*")}
    r.close()
    assert "product:azul" in keys
    assert "suggest:azul:any:3" in keys
    assert "recent:7" in keys
    assert any(k.startswith("catalog:") and k.endswith(":2:5") for k in keys)
    ttls = {"product:azul": 300, "suggest:azul:any:3": 60, "recent:7": 120}
    r = Redis.from_url(api.settings.redis_url)
    for suffix, ttl in ttls.items():
        assert ttl < r.ttl(prefix + suffix) <= ttl + STALE
        assert ttl - 10 < fresh_left(r, prefix + suffix) <= ttl
    r.close()


def test_canonical_keys_param_order_case_whitespace_defaults(api: ApiServer) -> None:
    api.bump_generation()
    base = "/api/v1/catalog?categories=karetn%C3%AD,p%C3%A1rty&availability=available&q=bang"
    assert api.get(base).headers["x-cache"] == "miss"
    same = [
        "/api/v1/catalog?q=bang&availability=available&categories=p%C3%A1rty,karetn%C3%AD",
        "/api/v1/catalog?q=%20%20BANG%20&availability=AVAILABLE"
        "&categories=%20P%C3%81RTY%20,karetn%C3%AD,,karetn%C3%AD",
        base + "&page=1&page_size=24&sort=relevance",
        base + "&min_price=&max_price=",
    ]
    for url in same:
        r = api.get(url)
        assert r.headers["x-cache"] == "hit", url
        assert [i["slug"] for i in r.json()["items"]] == ["bang"]
    # quantized prices and the effective sort are canonical too
    assert api.get("/api/v1/catalog?min_price=100").headers["x-cache"] == "miss"
    assert api.get("/api/v1/catalog?min_price=100.00&sort=name").headers["x-cache"] == "hit"
    # a different filter is a different key
    assert api.get("/api/v1/catalog?min_price=100.01").headers["x-cache"] == "miss"
    # suggest: q normalized in the key
    assert api.get("/api/v1/search/suggest?q=Osadn%C3%ADci").headers["x-cache"] == "miss"
    assert api.get("/api/v1/search/suggest?q=%20osadnici&limit=8").headers["x-cache"] == "hit"


def test_generation_bump_invalidates(api: ApiServer) -> None:
    api.bump_generation()
    assert api.get("/api/v1/products/carcassonne").headers["x-cache"] == "miss"
    assert api.get("/api/v1/products/carcassonne").headers["x-cache"] == "hit"
    api.bump_generation()
    after = api.get("/api/v1/products/carcassonne")
    assert after.headers["x-cache"] == "miss"  # the in-process layer is keyed by generation too
    assert after.json()["slug"] == "carcassonne"


def test_concurrent_misses_run_one_query(api: ApiServer) -> None:
    api.bump_generation()
    before = metric_sum(api.metrics(), "pricecat_db_queries_total", query="catalog_page_price_desc")
    url = "/api/v1/catalog?sort=price_desc&page_size=7&categories=strategick%C3%A9"

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=api.url, timeout=20) as c:
            return await asyncio.gather(*(c.get(url) for _ in range(25)))

    responses = asyncio.run(burst())
    assert all(r.status_code == 200 for r in responses)
    assert len({r.content for r in responses}) == 1
    after = metric_sum(api.metrics(), "pricecat_db_queries_total", query="catalog_page_price_desc")
    assert after - before == 1
    assert sorted(r.headers["x-cache"] for r in responses).count("miss") == 1


def test_etag_304_and_cache_control(api: ApiServer) -> None:
    r = api.get("/api/v1/products/azul")
    etag = r.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert r.headers["cache-control"] == "public, max-age=300"
    again = api.get("/api/v1/products/azul", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    other = api.get("/api/v1/products/azul", headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200
    assert api.get("/api/v1/catalog").headers["cache-control"] == "public, max-age=120"
    assert api.get("/api/v1/search/suggest?q=az").headers["cache-control"] == (
        "public, max-age=60"
    )
    assert api.get("/api/v1/meta/categories").headers["cache-control"] == "public, max-age=600"
    assert api.get("/api/v1/snapshots/recent").headers["cache-control"] == "public, max-age=120"
    # errors are never cacheable
    assert api.get("/api/v1/products/nope-nope").headers["cache-control"] == "no-store"


def test_gzip_over_1kb_when_accepted(api: ApiServer) -> None:
    with api.client() as c:
        raw = c.get("/api/v1/catalog", headers={"Accept-Encoding": "identity"})
        zipped = c.send(
            c.build_request("GET", "/api/v1/catalog", headers={"Accept-Encoding": "gzip"}),
            stream=True,
        )
        compressed = zipped.read()  # httpx decodes; compare sizes via the raw stream below
    assert "content-encoding" not in raw.headers
    assert len(raw.content) > 1024
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"].lower().startswith("accept-encoding")
    assert compressed == raw.content  # decoded body identical
    assert zipped.headers["etag"] != raw.headers["etag"]  # distinct strong validators
    assert zipped.headers["etag"].endswith('-gzip"')
    # a 304 works with either validator
    r304 = api.get("/api/v1/catalog", headers={"If-None-Match": zipped.headers["etag"]})
    assert r304.status_code == 304
    with httpx.stream("GET", api.url + "/api/v1/catalog",
                      headers={"Accept-Encoding": "gzip"}) as s:
        body = b"".join(s.iter_raw())
    assert len(body) < len(raw.content) and gzip.decompress(body) == raw.content
    small = api.get("/api/v1/search/suggest?q=azul", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers  # under 1 KB: not worth it


def test_cors_only_for_configured_origins(api: ApiServer) -> None:
    ok = api.get("/api/v1/meta/categories", headers={"Origin": ALLOWED_ORIGIN})
    assert ok.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "etag" in ok.headers["access-control-expose-headers"].lower()
    assert "origin" in ok.headers["vary"].lower()
    evil = api.get("/api/v1/meta/categories", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in evil.headers
    with api.client() as c:
        pre = c.options(
            "/api/v1/catalog",
            headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "GET"},
        )
        bad = c.options(
            "/api/v1/catalog",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
        )
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "GET" in pre.headers["access-control-allow-methods"]
    assert "access-control-allow-origin" not in bad.headers


def test_stale_entry_served_at_once_and_refreshed_once(api: ApiServer) -> None:
    """A soft-expired entry (same generation) is answered immediately; one background refresh
    per key reloads it, however many requests saw it stale."""
    gen = api.bump_generation()
    key = f"{api.settings.cache_namespace}:g{gen}:product:agricola"
    r = Redis.from_url(api.settings.redis_url)
    past_ms = int((time.time() - 5) * 1000)
    r.set(key, b"200 %d\n" % past_ms + b'{"slug":"agricola","name":"stale copy"}', ex=100)
    before = api.metrics()

    first = api.get("/api/v1/products/agricola")
    assert first.status_code == 200 and first.headers["x-cache"] == "hit"
    assert first.json() == {"slug": "agricola", "name": "stale copy"}  # no wait for Postgres

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=api.url, timeout=20) as c:
            return await asyncio.gather(
                *(c.get("/api/v1/products/agricola") for _ in range(20))
            )

    names = {resp.json()["name"] for resp in asyncio.run(burst())}
    assert names <= {"stale copy", "Agricola"}
    deadline = time.monotonic() + 20
    while fresh_left(r, key) <= 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert 250 < fresh_left(r, key) <= 300  # refreshed with the product TTL
    assert 300 < r.ttl(key) <= 300 + STALE
    r.close()
    after = api.get("/api/v1/products/agricola")
    assert after.json()["name"] == "Agricola" and after.json()["sellers"]
    samples = api.metrics()

    def delta(name: str, **labels: str) -> float:
        return metric_sum(samples, name, **labels) - metric_sum(before, name, **labels)

    assert delta("pricecat_db_queries_total", query="product_summary") == 1
    assert delta("pricecat_cache_refresh_total", endpoint="product", outcome="db") == 1
    assert delta("pricecat_cache_stale_served_total", endpoint="product") >= 1


def test_generation_bump_beats_stale_entries(api: ApiServer) -> None:
    """Stale-while-revalidate never outlives a refresh: a new generation is a new key space."""
    gen = api.bump_generation()
    key = f"{api.settings.cache_namespace}:g{gen}:product:hanabi"
    r = Redis.from_url(api.settings.redis_url)
    r.set(key, b"200 %d\n" % int((time.time() - 5) * 1000) + b'{"name":"old"}', ex=100)
    r.close()
    assert api.get("/api/v1/products/hanabi").json()["name"] == "old"
    api.bump_generation()
    fresh = api.get("/api/v1/products/hanabi")
    assert fresh.headers["x-cache"] == "miss" and fresh.json()["name"] == "Hanabi"


def test_pages_of_known_filters_reuse_the_total(api: ApiServer) -> None:
    """Within a generation, the exact total and the estimate of a filter set are computed once:
    other pages and sort orders of it run only the page query (all on one connection)."""
    api.bump_generation()
    before = api.metrics()
    first = api.get("/api/v1/catalog", params={"page_size": 5}).json()
    other = api.get("/api/v1/catalog", params={"page_size": 5, "page": 2, "sort": "price_asc"})
    last = api.get("/api/v1/catalog", params={"page_size": 5, "page": 6}).json()
    past = api.get("/api/v1/catalog", params={"page_size": 5, "page": 9}).json()
    assert first["total"] == other.json()["total"] == last["total"] == past["total"] == 28
    assert {first["total_estimate"], other.json()["total_estimate"], last["total_estimate"]} == {
        first["total_estimate"]
    }
    assert [i["slug"] for i in last["items"]] == ["twilight-imperium", "ubongo", "zombicide"]
    after = api.metrics()

    def delta(query: str) -> float:
        return metric_sum(after, "pricecat_db_queries_total", query=query) - metric_sum(
            before, "pricecat_db_queries_total", query=query
        )

    assert delta("catalog_page_name") == 3  # one page query per sort file
    assert delta("catalog_page_price_asc") == 1
    assert delta("catalog_count") == 1
    assert delta("catalog_count_estimate") == 1
    api.bump_generation()  # a new generation counts again
    assert api.get("/api/v1/catalog", params={"page_size": 5, "page": 3}).json()["total"] == 28
    assert metric_sum(api.metrics(), "pricecat_db_queries_total", query="catalog_count") - (
        metric_sum(after, "pricecat_db_queries_total", query="catalog_count")
    ) == 1


# -- pool saturated: degrade to the previous generation instead of queueing -----------------------


@contextmanager
def table_locked(settings: Settings, table: str) -> Iterator[None]:
    """Hold ``access exclusive`` on ``table`` (own connection, own thread) until the block ends:
    every API statement reading it blocks while keeping its pooled connection."""
    locked, release = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    async def hold() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            async with conn.transaction():
                await conn.execute(f"lock table {table} in access exclusive mode")
                locked.set()
                while not release.is_set():
                    await asyncio.sleep(0.02)
        finally:
            await conn.close()

    def run() -> None:
        try:
            asyncio.run(hold())
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            failure.append(exc)
            locked.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert locked.wait(20) and not failure, failure
    try:
        yield
    finally:
        release.set()
        thread.join(20)


def plant(api: ApiServer, generation: int, suffix: str, body: bytes, ttl: int = 300) -> None:
    """Store a fresh entry for ``suffix`` in ``generation`` (as an earlier load would have)."""
    r = Redis.from_url(api.settings.redis_url)
    fresh_ms = int((time.time() + ttl) * 1000)
    key = f"{api.settings.cache_namespace}:g{generation}:{suffix}"
    r.set(key, b"200 %d\n" % fresh_ms + body, ex=ttl + STALE)
    r.close()


def lock_waiters(settings: Settings) -> int:
    """API connections of this database blocked on a lock (the pool's busy connections)."""
    rows = helpers.fetch(
        settings,
        "select count(*) as n from pg_stat_activity where datname = current_database()"
        " and application_name = 'pricecat-api' and wait_event_type = 'Lock'",
    )
    return int(rows[0]["n"])


def wait_for(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_saturated_pool_answers_previous_generation_then_reloads(
    db_settings: Settings, api_log_dir: Path
) -> None:
    """One pooled connection, held by a miss blocked on a table lock: after a generation bump a
    miss with a previous-generation entry is answered from it at once (X-Cache: stale) without
    queueing; one background reload then caches the new generation's value."""
    settings = server_settings(db_settings, statement_timeout_ms=60_000)
    env = {"API_DB_POOL_MIN": "1", "API_DB_POOL_MAX": "1"}
    with run_server(settings, api_log_dir, env=env) as api:
        previous = api.bump_generation()
        plant(api, previous, "product:hanabi", b'{"slug":"hanabi","name":"previous generation"}')
        generation = api.bump_generation()
        before = api.metrics()
        # the executor outlives the lock: leaving it waits for the blocked request
        with ThreadPoolExecutor(1) as pool, table_locked(
            db_settings, "catalog.catalog_slug_summary"
        ):
            blocked = pool.submit(api.get, "/api/v1/products/azul")  # takes the only connection
            wait_for(  # (not /metrics: it queries Postgres through the same pool)
                lambda: lock_waiters(db_settings) == 1,
                "the blocked miss to hold the pool's connection",
            )
            stale = api.get("/api/v1/products/hanabi")
            # answered while the database can't answer anything: no wait for the pool
            assert not blocked.done()
            assert stale.status_code == 200 and stale.headers["x-cache"] == "stale"
            assert stale.json() == {"slug": "hanabi", "name": "previous generation"}
            again = api.get("/api/v1/products/hanabi")  # still saturated: stale again
            assert again.headers["x-cache"] == "stale" and again.content == stale.content
        assert blocked.result().json()["slug"] == "azul"  # the lock is gone: it completed
        # the one background reload fills the new generation (no other request loads it)
        r = Redis.from_url(api.settings.redis_url)
        key = f"{api.settings.cache_namespace}:g{generation}:product:hanabi"
        wait_for(lambda: r.exists(key) == 1, "the background reload to store the new entry")
        r.close()
        fresh = api.get("/api/v1/products/hanabi")
        assert fresh.headers["x-cache"] == "hit"
        assert fresh.json()["name"] == "Hanabi" and fresh.json()["sellers"]
        after = api.metrics()

    def delta(name: str, **labels: str) -> float:
        return metric_sum(after, name, **labels) - metric_sum(before, name, **labels)

    assert delta("pricecat_db_queries_total", query="product_summary") == 2  # azul + 1 reload
    assert delta("pricecat_cache_refresh_total", endpoint="product", outcome="db") == 1
    assert delta("pricecat_cache_requests_total", endpoint="product", result="stale") == 2
    assert delta("pricecat_cache_fallback_total") == 0  # nothing failed


def test_idle_pool_loads_the_new_generation_at_once(api: ApiServer) -> None:
    """Without pool pressure a miss after a refresh loads now: new data shows immediately even
    though the previous generation's entry is held."""
    previous = api.bump_generation()
    plant(api, previous, "product:dixit", b'{"slug":"dixit","name":"previous generation"}')
    api.bump_generation()
    r = api.get("/api/v1/products/dixit")
    assert r.headers["x-cache"] == "miss"
    assert r.json()["slug"] == "dixit" and r.json()["name"] != "previous generation"


def test_slow_miss_gives_up_on_previous_generation(
    db_settings: Settings, api_log_dir: Path
) -> None:
    """The pool has room, so a miss loads; its statement blocks (table lock). After ~2 s it is
    answered from the previous generation's entry; the load goes on and fills the new one."""
    settings = server_settings(db_settings, statement_timeout_ms=60_000)
    with run_server(settings, api_log_dir) as api:
        previous = api.bump_generation()
        plant(api, previous, "product:hanabi", b'{"slug":"hanabi","name":"previous generation"}')
        generation = api.bump_generation()
        with table_locked(db_settings, "catalog.catalog_slug_summary"):
            stale = api.get("/api/v1/products/hanabi")  # returns while the lock is still held
            assert stale.status_code == 200 and stale.headers["x-cache"] == "stale"
            assert stale.json() == {"slug": "hanabi", "name": "previous generation"}
        r = Redis.from_url(api.settings.redis_url)
        key = f"{api.settings.cache_namespace}:g{generation}:product:hanabi"
        wait_for(lambda: r.exists(key) == 1, "the abandoned load to store its result")
        r.close()
        fresh = api.get("/api/v1/products/hanabi")
        assert fresh.headers["x-cache"] == "hit" and fresh.json()["name"] == "Hanabi"
        samples = api.metrics()
    assert metric_sum(samples, "pricecat_db_queries_total", query="product_summary") == 1
    assert metric_sum(samples, "pricecat_cache_fallback_total") == 0


def test_in_process_cache_is_bounded_and_reported(
    db_settings: Settings, api_log_dir: Path
) -> None:
    """API_LOCAL_CACHE_ENTRIES bounds the worker's in-process layer (LRU); /metrics reports its
    entries and counted bytes, and an evicted entry is read back from Redis, not Postgres."""
    slugs = ["azul", "hanabi", "dixit", "carcassonne", "agricola"]
    settings = server_settings(db_settings)
    with run_server(settings, api_log_dir, env={"API_LOCAL_CACHE_ENTRIES": "3"}) as api:
        api.bump_generation()
        for slug in slugs:
            assert api.get(f"/api/v1/products/{slug}").headers["x-cache"] == "miss"
        filled = api.metrics()
        assert metric_sum(filled, "pricecat_cache_local_entries") == 3
        size = metric_sum(filled, "pricecat_cache_local_bytes")
        bodies = sum(len(api.get(f"/api/v1/products/{s}").content) for s in slugs[-3:])
        assert bodies < size < bodies + 3 * 1000  # bodies + keys + a fixed overhead per entry
        before = api.metrics()
        again = api.get(f"/api/v1/products/{slugs[0]}")  # evicted from memory, still in Redis
        assert again.headers["x-cache"] == "hit"
        after = api.metrics()
    assert metric_sum(after, "pricecat_cache_local_entries") == 3

    def delta(**labels: str) -> float:
        return metric_sum(after, "pricecat_cache_requests_total", endpoint="product", **labels) - (
            metric_sum(before, "pricecat_cache_requests_total", endpoint="product", **labels)
        )

    assert delta(result="hit", layer="redis") == 1
    assert delta(layer="db") == 0
