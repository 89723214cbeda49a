"""A Redis timeout caused by load on the worker is not a Redis outage: the circuit breaker (skip
Redis for API_REDIS_RETRY-like 1 s after a failure, api/cache.py) must not open for it, or one
slow moment under 1,000 connections sends every request of the next second to Postgres.

Two kinds of load, each against the real local Redis (own namespace), with a 0.2 s socket
timeout: the event loop blocked past the timeout while the reply waits unread, and a call that
times out while other calls' replies keep arriving. The hung-Redis case (the breaker must open)
is tests/api/test_redis_hang.py. The loaders are plain async functions standing in for the SQL
(they count calls), the generation source a constant standing in for the published build id."""

from __future__ import annotations

import asyncio
import secrets
import time

from redis.asyncio import Redis

from api.cache import Cache, CacheOptions, Entry
from pricecat.config import Settings

TIMEOUT = 0.2


async def _setup(redis_url: str) -> tuple[Redis, Cache, int]:
    redis = Redis.from_url(redis_url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)

    async def published_build() -> tuple[int, int | None]:
        return 7, None

    cache = Cache(
        redis, f"pricecat-test-load-{secrets.token_hex(4)}",
        CacheOptions(generation_check_seconds=60, local_max_entries=0),
        generation_source=published_build,
    )
    generation = await cache.generation()
    fresh = Entry(200, b'{"cached": true}', 60, fresh_until=time.time() + 60)
    for key in ("a", "b", "c"):
        await redis.set(cache.full_key(generation, key), fresh.encode(), ex=120)
    await redis.ping()  # the pooled connection exists before the timed calls
    return redis, cache, generation


def _loader(calls: list[str], key: str):  # type: ignore[no-untyped-def]
    async def load() -> tuple[int, bytes]:
        calls.append(key)
        return 200, b'{"cached": false}'
    return load


async def _blocked_loop(redis_url: str) -> dict[str, object]:
    redis, cache, _ = await _setup(redis_url)
    calls: list[str] = []
    try:
        # a call Redis answers after 0.1 s (a blocking pop on an empty list), inside the 0.2 s
        # timeout; the loop is blocked from 0.05 s to 0.55 s, so the reply waits unread while
        # the timeout's timer comes due: the timer fires first
        asyncio.get_running_loop().call_later(0.05, time.sleep, 0.5)
        try:
            await cache._redis(lambda: redis.blpop([f"{cache.namespace}:empty"], timeout=0.1))
            delayed = "answered"
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test reads
            delayed = type(exc).__name__
        after = await cache.get_or_load("load", "b", 60, _loader(calls, "b"))
        return {"delayed": delayed, "after": (after.result, after.layer), "calls": calls}
    finally:
        await cache.close()
        await redis.aclose()


async def _busy_redis_call(redis_url: str) -> dict[str, object]:
    redis, cache, _ = await _setup(redis_url)
    calls: list[str] = []
    try:
        # one call that Redis answers only after 1 s (a blocking pop on an empty list): it times
        # out at 0.2 s on its own connection while a GET on another connection is answered
        slow = asyncio.ensure_future(
            cache._redis(lambda: redis.blpop([f"{cache.namespace}:empty"], timeout=1))
        )
        await asyncio.sleep(0.05)
        answered = await cache.get_or_load("load", "a", 60, _loader(calls, "a"))
        try:
            await slow
            slow_outcome = "answered"
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test reads
            slow_outcome = type(exc).__name__
        after = await cache.get_or_load("load", "b", 60, _loader(calls, "b"))
        return {"answered": (answered.result, answered.layer), "slow": slow_outcome,
                "after": (after.result, after.layer), "calls": calls}
    finally:
        await cache.close()
        await redis.aclose()


def test_timeout_from_a_blocked_loop_keeps_redis_in_use(base_settings: Settings) -> None:
    out = asyncio.run(_blocked_loop(base_settings.redis_url))
    assert out["delayed"] == "RedisDown", out  # it did time out (the loop was blocked) ...
    # ... and the next lookup, right after, still reads Redis (breaker closed)
    assert out["after"] == ("hit", "redis"), out
    assert out["calls"] == [], out


def test_timeout_while_redis_answers_keeps_redis_in_use(base_settings: Settings) -> None:
    out = asyncio.run(_busy_redis_call(base_settings.redis_url))
    assert out["answered"] == ("hit", "redis"), out
    assert out["slow"] == "RedisDown", out  # it did time out (0.2 s < 1 s)
    assert out["after"] == ("hit", "redis"), out
    assert out["calls"] == [], out
