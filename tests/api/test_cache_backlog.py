"""Background refreshes are bounded: a queue of them can't grow without limit under load (the
soak found one: after each publish every key queued a refresh faster than the slots drained
them, each holding its request, and worker RSS grew ~13 MB per refresh). Past the backlog a
revalidation is dropped; a queued one whose generation was superseded never queries; and a
refresh task does not carry the request's context.

The Cache object here talks to the real local Redis (own namespace); the loaders are plain async
functions standing in for the SQL (they count calls and block on an event), and the generation
source is a plain counter standing in for the published build id."""

from __future__ import annotations

import asyncio
import contextvars
import secrets
import time

from prometheus_client import REGISTRY
from redis.asyncio import Redis

from api.cache import Cache, CacheOptions, Entry
from pricecat.config import Settings

REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("REQUEST")


def refresh_count(endpoint: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "pricecat_cache_refresh_total", {"endpoint": endpoint, "outcome": outcome}
    )
    return value or 0.0


async def _scenario(redis_url: str) -> dict[str, object]:
    redis = Redis.from_url(redis_url)
    namespace = f"pricecat-test-backlog-{secrets.token_hex(4)}"
    endpoint = f"backlog{secrets.token_hex(2)}"
    build = [41]

    async def published_build() -> tuple[int, int | None]:
        return build[0], None

    cache = Cache(
        redis, namespace,
        CacheOptions(refresh_concurrency=1, refresh_backlog=2, generation_check_seconds=0),
        generation_source=published_build,
    )
    gate = asyncio.Event()
    calls: list[str] = []
    seen_request: list[str | None] = []
    try:
        generation = await cache.generation()
        assert generation == 41
        # ten soft-expired entries in Redis: each lookup answers at once and asks for a refresh
        stale = Entry(200, b'{"old": true}', 60, fresh_until=time.time() - 1)
        for i in range(10):
            await redis.set(cache.full_key(generation, f"k{i}"), stale.encode(), ex=600)

        def loader_for(i: int):  # type: ignore[no-untyped-def]
            async def load() -> tuple[int, bytes]:
                calls.append(f"k{i}")
                seen_request.append(REQUEST.get(None))
                await gate.wait()
                return 200, b'{"new": true}'
            return load

        before = {o: refresh_count(endpoint, o) for o in ("dropped", "superseded", "db")}
        REQUEST.set("a request")
        results = [
            await cache.get_or_load(endpoint, f"k{i}", 60, loader_for(i)) for i in range(10)
        ]
        await asyncio.sleep(0.05)
        queued = len(cache._refreshing)  # 1 running + 2 waiting; the other 7 dropped
        running_calls = list(calls)

        # a refresh publishes: the two waiting refreshes are for keys nobody reads any more
        build[0] = 57
        assert await cache.generation() == 57
        gate.set()
        for _ in range(100):
            if not cache._refreshing:
                break
            await asyncio.sleep(0.02)
        after = {o: refresh_count(endpoint, o) for o in ("dropped", "superseded", "db")}
        return {
            "results": [(o.result, o.entry.body) for o in results],
            "queued": queued,
            "running_calls": running_calls,
            "calls": calls,
            "seen_request": seen_request,
            "left": len(cache._refreshing),
            "delta": {o: after[o] - before[o] for o in after},
        }
    finally:
        await cache.close()
        keys = [k async for k in redis.scan_iter(match=f"{namespace}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


def test_refresh_backlog_is_bounded_and_superseded_work_skipped(base_settings: Settings) -> None:
    got = asyncio.run(_scenario(base_settings.redis_url))
    # every lookup was answered at once from the stale entry
    assert got["results"] == [("hit", b'{"old": true}')] * 10
    assert got["queued"] == 3
    assert got["running_calls"] == ["k0"]  # one slot: only the first refresh queried
    assert got["delta"] == {"dropped": 7.0, "superseded": 2.0, "db": 1.0}
    assert got["calls"] == ["k0"]  # the superseded ones never reached the loader
    assert got["left"] == 0
    # the refresh ran in a fresh context: it did not keep the request's context variables
    assert got["seen_request"] == [None]
