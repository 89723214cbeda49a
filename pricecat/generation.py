"""The data generation: a Redis counter the refresh bumps after each publish.

Every API cache key embeds the current generation, so a publish turns the whole cache over at once
and stale entries simply age out by TTL.
"""

from __future__ import annotations

from redis.asyncio import Redis


def generation_key(namespace: str) -> str:
    return f"{namespace}:generation"


async def get_generation(redis: Redis, namespace: str) -> int:
    raw = await redis.get(generation_key(namespace))
    return int(raw) if raw is not None else 0


async def bump_generation(redis: Redis, namespace: str) -> int:
    return int(await redis.incr(generation_key(namespace)))
