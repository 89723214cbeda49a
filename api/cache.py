"""Read-through cache: in-process LRU -> Redis -> Postgres, keyed by the data generation.

Keys (``<ns>`` = Settings.cache_namespace, ``<gen>`` = the Redis counter the refresh bumps):
``<ns>:g<gen>:catalog:{filters_hash}:{page}:{size}``, ``…:product:{slug}``,
``…:suggest:{q}:{availability}:{limit}``, ``…:categories:list``, ``…:recent:{limit}``.
Callers pass everything after ``g<gen>:``; every argument of the query is in that suffix.

- Generation: read from Redis at most every ``generation_check_seconds`` per worker (default
  1 s; 0 = every request). A refresh therefore shows within that interval, and entries of older
  generations are never read again (they age out by TTL).
- In-process LRU (per worker, ``local_max_entries``): a hit costs no Redis round trip. Its
  entries are keyed by the full key (generation included), so a bump invalidates them too.
- Single flight: concurrent misses on one key in a worker share one load (one task); across
  workers a short Redis lock (``SET NX PX``) lets one worker query Postgres while the others
  poll Redis for the value, falling back to their own query if the lock holder is slow.
- Redis unreachable: answered straight from Postgres (``X-Cache: bypass``, metric
  ``pricecat_redis_degraded_total``); after a connection failure Redis is skipped for
  ``redis_retry_seconds`` instead of timing out on every request.
- Postgres unreachable: whatever is cached (memory or Redis) is still served; a miss raises
  ``DatabaseUnavailable`` (503).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from api import metrics
from pricecat.generation import generation_key

log = logging.getLogger("api.cache")

T = TypeVar("T")
Loader = Callable[[], Awaitable[tuple[int, bytes]]]
Result = Literal["hit", "miss", "bypass"]
Layer = Literal["memory", "redis", "db", "coalesced"]

GZIP_MIN_BYTES = 1024

_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class CacheOptions:
    generation_check_seconds: float = 1.0
    local_max_entries: int = 2048
    #: upper bound on how long an entry lives in the in-process layer (also capped by its TTL)
    local_max_ttl: float = 60.0
    redis_retry_seconds: float = 1.0
    lock_ms: int = 3000
    lock_poll_seconds: float = 0.02


@dataclass
class Entry:
    status: int
    body: bytes
    ttl: int
    etag: str = ""
    _gzip: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.etag:
            self.etag = '"' + hashlib.blake2b(self.body, digest_size=12).hexdigest() + '"'

    def gzipped(self) -> bytes:
        if self._gzip is None:
            self._gzip = gzip.compress(self.body, compresslevel=5, mtime=0)
        return self._gzip

    def encode(self) -> bytes:
        return b"%d\n" % self.status + self.body

    @classmethod
    def decode(cls, raw: bytes, ttl: int) -> Entry:
        head, _, body = raw.partition(b"\n")
        return cls(status=int(head), body=body, ttl=ttl)


@dataclass(frozen=True)
class Outcome:
    entry: Entry
    result: Result
    layer: Layer


def _as_bytes(raw: bytes | str) -> bytes:
    return raw.encode() if isinstance(raw, str) else raw


class RedisDown(Exception):
    """Redis is unreachable (or was a moment ago)."""


class Cache:
    def __init__(self, redis: Redis, namespace: str, options: CacheOptions | None = None) -> None:
        self.redis = redis
        self.namespace = namespace
        self.options = options or CacheOptions()
        self._local: OrderedDict[str, tuple[float, Entry]] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[Outcome]] = {}
        self._generation: int | None = None
        self._generation_at = 0.0
        self._generation_task: asyncio.Task[int] | None = None
        self._down_until = 0.0
        self._release = self.redis.register_script(_RELEASE_LOCK)

    # -- Redis plumbing -------------------------------------------------------------------------

    def _check_breaker(self) -> None:
        if time.monotonic() < self._down_until:
            raise RedisDown("redis marked down")

    def _trip(self, exc: BaseException) -> RedisDown:
        # an exhausted client pool is load, not an outage: don't stop using Redis for it
        if not (isinstance(exc, RedisConnectionError) and "No connection available" in str(exc)):
            self._down_until = time.monotonic() + self.options.redis_retry_seconds
        log.warning("redis unavailable: %s", exc)
        return RedisDown(str(exc))

    async def _redis(self, op: Callable[[], Awaitable[T]]) -> T:
        self._check_breaker()
        try:
            return await op()
        except (TimeoutError, RedisError, OSError) as exc:
            raise self._trip(exc) from exc

    async def generation(self) -> int:
        """The current data generation (cached per worker for generation_check_seconds)."""
        now = time.monotonic()
        if (
            self._generation is not None
            and now - self._generation_at < self.options.generation_check_seconds
        ):
            return self._generation
        self._check_breaker()
        task = self._generation_task
        if task is None:
            task = asyncio.ensure_future(self._fetch_generation())
            self._generation_task = task
            task.add_done_callback(self._generation_done)
        return await asyncio.shield(task)

    def _generation_done(self, task: asyncio.Task[int]) -> None:
        self._generation_task = None
        if not task.cancelled() and task.exception() is None:
            self._generation = task.result()
            self._generation_at = time.monotonic()

    async def _fetch_generation(self) -> int:
        raw = await self._redis(lambda: self.redis.get(generation_key(self.namespace)))
        return int(raw) if raw is not None else 0

    def full_key(self, generation: int, suffix: str) -> str:
        return f"{self.namespace}:g{generation}:{suffix}"

    # -- in-process layer -----------------------------------------------------------------------

    def _local_get(self, key: str) -> Entry | None:
        item = self._local.get(key)
        if item is None:
            return None
        expires, entry = item
        if time.monotonic() >= expires:
            self._local.pop(key, None)
            return None
        self._local.move_to_end(key)
        return entry

    def _local_put(self, key: str, entry: Entry) -> None:
        if self.options.local_max_entries <= 0:
            return
        ttl = min(float(entry.ttl), self.options.local_max_ttl)
        self._local[key] = (time.monotonic() + ttl, entry)
        self._local.move_to_end(key)
        while len(self._local) > self.options.local_max_entries:
            self._local.popitem(last=False)

    def clear_local(self) -> None:
        self._local.clear()

    # -- read-through ---------------------------------------------------------------------------

    async def get_or_load(self, endpoint: str, suffix: str, ttl: int, loader: Loader) -> Outcome:
        try:
            generation = await self.generation()
        except RedisDown:
            outcome = await self._single_flight(
                "bypass:" + suffix, lambda: self._load_bypass(ttl, loader)
            )
            metrics.REDIS_DEGRADED.labels(endpoint).inc()
            metrics.CACHE.labels(endpoint, outcome.result, outcome.layer).inc()
            return outcome
        key = self.full_key(generation, suffix)
        entry = self._local_get(key)
        if entry is not None:
            metrics.CACHE.labels(endpoint, "hit", "memory").inc()
            return Outcome(entry, "hit", "memory")
        outcome = await self._single_flight(key, lambda: self._load_shared(key, ttl, loader))
        if outcome.result == "bypass":
            metrics.REDIS_DEGRADED.labels(endpoint).inc()
        metrics.CACHE.labels(endpoint, outcome.result, outcome.layer).inc()
        return outcome

    async def _single_flight(self, key: str, make: Callable[[], Awaitable[Outcome]]) -> Outcome:
        task = self._inflight.get(key)
        if task is not None:
            outcome = await asyncio.shield(task)
            result: Result = "hit" if outcome.result == "miss" else outcome.result
            return Outcome(outcome.entry, result, "coalesced")
        task = asyncio.ensure_future(make())
        self._inflight[key] = task

        def done(t: asyncio.Task[Outcome]) -> None:
            self._inflight.pop(key, None)
            if not t.cancelled():
                t.exception()  # mark retrieved; awaiting callers still receive it

        task.add_done_callback(done)
        return await asyncio.shield(task)

    async def _load_bypass(self, ttl: int, loader: Loader) -> Outcome:
        status, body = await loader()
        return Outcome(Entry(status, body, ttl), "bypass", "db")

    async def _load_shared(self, key: str, ttl: int, loader: Loader) -> Outcome:
        try:
            raw = await self._redis(lambda: self.redis.get(key))
        except RedisDown:
            return await self._load_bypass(ttl, loader)
        if raw is not None:
            entry = Entry.decode(_as_bytes(raw), ttl)
            self._local_put(key, entry)
            return Outcome(entry, "hit", "redis")

        lock_key = key + ":lock"
        token = secrets.token_hex(8)
        try:
            locked = await self._redis(
                lambda: self.redis.set(lock_key, token, nx=True, px=self.options.lock_ms)
            )
        except RedisDown:
            return await self._load_bypass(ttl, loader)
        if not locked:
            waited = await self._wait_for_value(key, lock_key, ttl)
            if waited is not None:
                return waited
        else:
            # double-checked: the previous holder may have stored the value after our GET
            try:
                raw = await self._redis(lambda: self.redis.get(key))
            except RedisDown:
                raw = None
            if raw is not None:
                entry = Entry.decode(_as_bytes(raw), ttl)
                self._local_put(key, entry)
                await self._release_lock(lock_key, token)
                return Outcome(entry, "hit", "redis")
        try:
            status, body = await loader()
            entry = Entry(status, body, ttl)
            try:
                await self._redis(lambda: self.redis.set(key, entry.encode(), ex=ttl))
            except RedisDown:
                return Outcome(entry, "bypass", "db")
            self._local_put(key, entry)
            return Outcome(entry, "miss", "db")
        finally:
            if locked:
                await self._release_lock(lock_key, token)

    async def _release_lock(self, lock_key: str, token: str) -> None:
        try:
            await self._redis(lambda: self._release(keys=[lock_key], args=[token]))
        except RedisDown:
            pass

    async def _wait_for_value(self, key: str, lock_key: str, ttl: int) -> Outcome | None:
        """Another worker holds the lock: poll for its value while the lock is held."""
        deadline = time.monotonic() + self.options.lock_ms / 1000
        while time.monotonic() < deadline:
            await asyncio.sleep(self.options.lock_poll_seconds)
            try:
                raw, held = await self._redis(lambda: self._get_and_lock_state(key, lock_key))
            except RedisDown:
                return None
            if raw is not None:
                entry = Entry.decode(_as_bytes(raw), ttl)
                self._local_put(key, entry)
                return Outcome(entry, "hit", "redis")
            if not held:  # the holder gave up (e.g. Postgres down): load ourselves
                return None
        return None

    async def _get_and_lock_state(self, key: str, lock_key: str) -> tuple[bytes | None, bool]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.exists(lock_key)
            raw, held = await pipe.execute()
        return raw, bool(held)
