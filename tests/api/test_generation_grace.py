"""The generation re-read never holds up a request inside the grace: past the check interval a
worker keeps answering from the generation it has while one re-read runs, and only past the
interval + grace do requests wait for the read (api/cache.py, "Generation").

The Cache object talks to the real local Redis (own namespace); the generation source is a plain
async function standing in for the published build id, blocked on an event so the re-read is
"in flight" for as long as the test wants."""

from __future__ import annotations

import asyncio
import secrets

from redis.asyncio import Redis

from api.cache import Cache, CacheOptions, Entry
from pricecat.config import Settings

CHECK = 0.2
GRACE = 0.3


async def _scenario(redis_url: str) -> dict[str, object]:
    redis = Redis.from_url(redis_url)
    namespace = f"pricecat-test-grace-{secrets.token_hex(4)}"
    build = [7]
    gate = asyncio.Event()
    gate.set()
    reads = [0]

    async def published_build() -> tuple[int, int | None]:
        reads[0] += 1
        await gate.wait()
        return build[0], None

    cache = Cache(
        redis, namespace,
        CacheOptions(generation_check_seconds=CHECK, generation_grace_seconds=GRACE),
        generation_source=published_build,
    )
    out: dict[str, object] = {}
    try:
        assert await cache.generation() == 7
        key = cache.full_key(7, "k")
        cache._local_put(key, Entry(200, b'{"v": 7}', 60, fresh_until=2e9))
        out["fast_within_check"] = cache.fresh_memory_entry(7, key) is not None

        # a publish, and a slow re-read: the gate holds the generation source
        build[0] = 8
        gate.clear()
        await asyncio.sleep(CHECK + 0.05)  # past the check interval, inside the grace
        reads_before = reads[0]
        out["fast_in_grace"] = cache.fresh_memory_entry(7, key) is not None
        out["generation_in_grace"] = await asyncio.wait_for(cache.generation(), 0.05)
        await asyncio.sleep(0)
        out["reads_started_in_grace"] = reads[0] - reads_before  # one re-read, shared

        await asyncio.sleep(GRACE)  # past interval + grace, the read still blocked
        out["fast_after_grace"] = cache.fresh_memory_entry(7, key) is not None
        waiting = asyncio.ensure_future(cache.generation())
        await asyncio.sleep(0.05)
        out["waits_after_grace"] = not waiting.done()
        gate.set()
        out["generation_after_read"] = await asyncio.wait_for(waiting, 1)
        out["fast_old_generation"] = cache.fresh_memory_entry(7, key) is not None
        out["reads_total"] = reads[0]
    finally:
        await cache.close()
        await redis.aclose()
    return out


def test_current_generation_answers_while_its_reread_is_in_flight() -> None:
    out = asyncio.run(_scenario(Settings().redis_url))
    assert out["fast_within_check"] is True
    # inside the grace: answered at once from generation 7, one re-read started
    assert out["fast_in_grace"] is True
    assert out["generation_in_grace"] == 7
    assert out["reads_started_in_grace"] == 1
    # past the grace: no fast answer, requests wait for the read, which brings 8
    assert out["fast_after_grace"] is False
    assert out["waits_after_grace"] is True
    assert out["generation_after_read"] == 8
    assert out["fast_old_generation"] is False
    assert out["reads_total"] == 2  # the first read + one shared re-read


def test_no_grace_when_every_request_reads() -> None:
    async def scenario() -> bool:
        redis = Redis.from_url(Settings().redis_url)
        gate = asyncio.Event()

        async def published_build() -> tuple[int, int | None]:
            await gate.wait()
            return 3, None

        cache = Cache(
            redis, f"pricecat-test-grace-{secrets.token_hex(4)}",
            CacheOptions(generation_check_seconds=0, generation_grace_seconds=GRACE),
            generation_source=published_build,
        )
        try:
            gate.set()
            await cache.generation()
            gate.clear()
            waiting = asyncio.ensure_future(cache.generation())
            await asyncio.sleep(0.05)
            blocked = not waiting.done()
            gate.set()
            await waiting
            return blocked
        finally:
            await cache.close()
            await redis.aclose()

    assert asyncio.run(scenario()) is True
