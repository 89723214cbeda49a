"""Read-through cache: in-process LRU -> Redis -> Postgres, keyed by the data generation.

Keys (``<ns>`` = Settings.cache_namespace, ``<gen>`` = the published build's id,
``catalog.catalog_build_info.build_id``; pricecat/generation.py):
``<ns>:g<gen>:catalog:{filters_hash}:{page}:{size}``, ``…:product:{slug}``,
``…:suggest:{q}:{availability}:{limit}``, ``…:categories:list``, ``…:recent:{limit}``.
Callers pass everything after ``g<gen>:``; every argument of the query is in that suffix.

- Generation: read from Postgres (``generation_source``, a dedicated connection per worker) at
  most every ``generation_check_seconds`` per worker (default 1 s; 0 = every request; concurrent
  requests share one read). When the interval is up, the worker keeps answering from the
  generation it has while the re-read is in flight, for at most ``generation_grace_seconds``
  more (0.25 s; then requests wait for the read): under load a request never queues behind the
  read. A refresh therefore shows within that interval (plus the read), and entries of older
  generations are never read again (they age out). Build ids are never reused, so neither a Redis
  flush nor a restart can bring an old generation's keys or memos back. Postgres unreachable:
  the last generation read stays in use (cached answers keep being served).
- One build per answer: a loader passes ``LOAD_GENERATION`` to ``Database.session``, which
  re-reads the build id after the answer's statements; if a publish happened in between
  (``GenerationMoved``) the generation is re-read and the answer loaded once more under the new
  key, so an answer never mixes two builds and no key holds another build's data.
- Soft TTL + hard expiry (stale-while-revalidate within one generation): an entry is *fresh*
  for its documented TTL (``Cache-Control: max-age``) and kept ``stale_seconds`` longer (the
  Redis key's expiry). A request that finds a soft-expired entry is answered from it at once
  and at most one background refresh per key and worker revalidates it (across workers the
  Redis lock below makes one of them query Postgres; the other picks the new value up). A
  generation bump still invalidates everything at once: keys embed the generation.
- Background refreshes are bounded per worker: ``refresh_concurrency`` run at once, at most
  ``refresh_backlog`` wait; past that a revalidation is dropped (the stale entry stays, a later
  request asks again). A waiting refresh whose generation was superseded by a publish is
  skipped. Each runs in a fresh context, so it never keeps a request alive.
- In-process LRU (per worker, ``local_max_entries`` / ``local_max_bytes``): a hit costs no Redis
  round trip. Its entries are keyed by the full key (generation included) and answered until
  their own soft TTL; then the refresh (stale-while-revalidate, above) reads Redis first, so a
  value another worker refreshed meanwhile is taken from there. No shorter revalidation: a key's
  data is one build's, and every copy of it is fresh for the TTL it was loaded with.
- Redis round trips: memory hit 0, Redis hit 1 (GET), miss 3 (GET; SET NX lock + GET;
  SET value + release lock), plus the shared generation read at most once a second.
- Single flight: concurrent misses on one key in a worker share one load (one task, shielded
  from client disconnects, so its result is cached even if every waiter left); across workers
  a Redis lock (``SET NX PX``) lets one worker query Postgres while the others poll Redis for the
  value (backing off), falling back to their own query if the lock holder gives up.
- Redis unreachable: answered straight from Postgres (``X-Cache: bypass``, metric
  ``pricecat_redis_degraded_total``); after a connection failure Redis is skipped for
  ``redis_retry_seconds`` instead of timing out on every request. Load is not an outage: an
  exhausted client pool, or a timeout while other calls' replies still arrive (or one that fired
  late, the event loop blocked), makes that lookup alone fall back to Postgres; Redis stays in
  use (``_is_load``).
- Postgres unreachable (or a statement timed out): whatever is cached is still served, stale
  entries included; a miss falls back to the previous generation's entry when one is still
  held (``X-Cache: stale``), else raises the 503.
- Pool saturated (degrade to slightly older data instead of queueing): a miss whose caller
  passes ``busy`` (``Database.saturated``) and finds the key in neither memory nor Redis, while
  every pooled connection is taken, is answered at once from the previous generation's entry
  when one is held (``X-Cache: stale``) and one background refresh (the stale-while-revalidate
  machinery, bounded by ``refresh_concurrency``) loads the new generation's value. Without
  pool pressure a miss loads at once, so new data shows right after a refresh.
- A miss that has waited ``stale_wait_seconds`` (2 s) for its load gives up on a stale answer
  when one is held (this key's soft-expired entry in memory, else the previous generation's);
  the load carries on and caches its result for the others.
"""

from __future__ import annotations

import asyncio
import contextvars
import gzip
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api import metrics
from api.errors import ServiceUnavailable
from api.lru import LRU
from pricecat.generation import GenerationMoved

log = logging.getLogger("api.cache")

T = TypeVar("T")
Loader = Callable[[], Awaitable[tuple[int, bytes]]]
#: True while a database load would have to queue (``Database.saturated``)
Busy = Callable[[], bool]
#: Reads (published build id = the data generation, the build it replaced); raises when
#: Postgres is unreachable
GenerationSource = Callable[[], Awaitable[tuple[int, int | None]]]
Result = Literal["hit", "miss", "bypass", "stale"]
Layer = Literal["memory", "redis", "db", "coalesced"]

GZIP_MIN_BYTES = 1024
#: The data generation whose key a loader is filling (None: Redis down, no generation known).
#: Set by get_or_load; loads and background refreshes run in tasks that copy it.
LOAD_GENERATION: ContextVar[int | None] = ContextVar("LOAD_GENERATION", default=None)
#: bytes counted per in-process entry on top of its body (key, objects)
_ENTRY_OVERHEAD = 400

_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class CacheOptions:
    generation_check_seconds: float = 1.0
    #: past the check interval, the current generation still answers while its re-read is in
    #: flight for at most this long (0 when generation_check_seconds is 0: read every request);
    #: must stay below api.routes.meta's SETTLE_MARGIN_SECONDS (a generation is "settled" once
    #: every worker can have read it: check interval + that margin)
    generation_grace_seconds: float = 0.25
    local_max_entries: int = 10_000
    local_max_bytes: int = 64 * 1024 * 1024
    #: how long an entry is kept (and served while revalidating) after its TTL
    stale_seconds: int = 600
    redis_retry_seconds: float = 1.0
    lock_ms: int = 3000
    lock_poll_seconds: float = 0.02
    lock_poll_max_seconds: float = 0.25
    #: background refreshes running at once per worker (they queue for the DB pool behind
    #: nothing but each other, so foreground misses keep most of the pool)
    refresh_concurrency: int = 4
    #: background refreshes allowed to wait for a slot per worker; past it a revalidation is
    #: dropped (the stale entry stays and a later request asks again). Without a bound, a
    #: generation bump under load queues one refresh per key faster than the slots drain them
    refresh_backlog: int = 64
    #: a miss waiting this long for its load is answered from a stale entry when one is held
    #: (0 = wait for the load)
    stale_wait_seconds: float = 2.0


@dataclass
class Entry:
    status: int
    body: bytes
    ttl: int
    #: wall-clock time (time.time()) until which the entry is fresh; after it, it is served
    #: while one refresh revalidates it
    fresh_until: float = 0.0
    etag: str = ""
    _gzip: bytes | None = field(default=None, repr=False)
    #: response headers built for this entry (api.http.cached_response), by variant
    headers: dict[tuple[str, bool, bool], dict[str, str]] = field(
        default_factory=dict, repr=False, compare=False
    )
    #: the same, encoded for the wire (api.http fast path)
    wire: dict[tuple[str, bool, int], list[tuple[bytes, bytes]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.etag:
            self.etag = '"' + hashlib.blake2b(self.body, digest_size=12).hexdigest() + '"'

    def is_fresh(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.fresh_until

    def gzipped(self) -> bytes:
        if self._gzip is None:
            self._gzip = gzip.compress(self.body, compresslevel=5, mtime=0)
        return self._gzip

    def encode(self) -> bytes:
        """``<status> <fresh_until ms>\\n<body>``"""
        return b"%d %d\n" % (self.status, int(self.fresh_until * 1000)) + self.body

    @classmethod
    def decode(cls, raw: bytes, ttl: int) -> Entry:
        head, _, body = raw.partition(b"\n")
        status, _, fresh = head.partition(b" ")
        # an entry without a soft expiry (older format) counts as stale: served, then refreshed
        fresh_until = int(fresh) / 1000 if fresh else 0.0
        return cls(status=int(status), body=body, ttl=ttl, fresh_until=fresh_until)


@dataclass(frozen=True)
class Outcome:
    entry: Entry
    result: Result
    layer: Layer
    #: the current generation's full key of the request (set by get_or_load; "" when no
    #: generation is known): what api.http.ResponseMemo remembers for the raw URL
    key: str = ""
    generation: int | None = None
    endpoint: str = ""


@dataclass(frozen=True)
class _LocalItem:
    entry: Entry
    fresh_at: float  # monotonic: revalidate (in the background) after this


def _as_bytes(raw: bytes | str) -> bytes:
    return raw.encode() if isinstance(raw, str) else raw


class RedisDown(Exception):
    """Redis is unreachable (or was a moment ago)."""


class GenerationUnknown(Exception):
    """No generation has been read yet and Postgres cannot be asked now."""


class Cache:
    def __init__(
        self,
        redis: Redis,
        namespace: str,
        options: CacheOptions | None = None,
        *,
        generation_source: GenerationSource,
    ) -> None:
        self.redis = redis
        self.namespace = namespace
        self.options = options or CacheOptions()
        self._generation_source = generation_source
        self._local: LRU[str, _LocalItem] = LRU(
            self.options.local_max_entries,
            max_bytes=self.options.local_max_bytes,
            on_change=self._report_local,
        )
        self._inflight: dict[str, asyncio.Task[Outcome]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._refresh_slots = asyncio.Semaphore(max(1, self.options.refresh_concurrency))
        self._generation: int | None = None
        #: the generation before the current one (its entries answer when Postgres fails)
        self._previous: int | None = None
        self._generation_at = 0.0
        self._generation_task: asyncio.Task[int] | None = None
        self._down_until = 0.0
        #: when the last Redis call succeeded (a timeout after it is load: _is_load)
        self._redis_ok_at = 0.0
        self._last_warning = 0.0
        self._closed = False
        self._release = self.redis.register_script(_RELEASE_LOCK)

    # -- Redis plumbing -------------------------------------------------------------------------

    def _check_breaker(self) -> None:
        if time.monotonic() < self._down_until:
            raise RedisDown("redis marked down")

    def _is_load(self, exc: BaseException, started: float, now: float) -> bool:
        """Whether a failed Redis call shows load on this worker rather than a Redis outage:
        an exhausted client pool, or a timeout while Redis was answering. A timeout is load when
        another call's reply arrived after this call was sent (Redis answers; this event loop was
        too busy to read the reply in time), or when the timeout fired late by more than half of
        it (the loop was blocked: the reply may have been waiting unread)."""
        if isinstance(exc, RedisConnectionError) and "No connection available" in str(exc):
            return True
        if not isinstance(exc, (TimeoutError, RedisTimeoutError)):
            return False
        if self._redis_ok_at > started:
            return True
        timeout = self.redis.connection_pool.connection_kwargs.get("socket_timeout")
        return timeout is not None and now - started > 1.5 * float(timeout)

    def _trip(self, exc: BaseException, started: float) -> RedisDown:
        # load is not an outage: don't stop using Redis for it (that lookup alone falls back)
        now = time.monotonic()
        if not self._is_load(exc, started, now):
            self._down_until = now + self.options.redis_retry_seconds
        if now - self._last_warning >= 1.0:  # at most one line a second per worker
            self._last_warning = now
            log.warning("redis unavailable: %s", exc)
        return RedisDown(str(exc))

    async def _redis(self, op: Callable[[], Awaitable[T]]) -> T:
        self._check_breaker()
        started = time.monotonic()
        try:
            result = await op()
        except (TimeoutError, RedisError, OSError) as exc:
            raise self._trip(exc, started) from exc
        self._redis_ok_at = time.monotonic()
        return result

    async def generation(self, force: bool = False) -> int:
        """The current data generation (cached per worker for generation_check_seconds; for up
        to generation_grace_seconds more while its re-read is in flight)."""
        current = self._generation
        if not force and current is not None:
            trust = self._generation_trust()
            if trust == "current":
                return current
            if trust == "re-reading":
                self._fetch_generation_soon()
                return current
        return await asyncio.shield(self._fetch_generation_soon())

    def _generation_trust(self) -> str:
        """"current" (within the check interval), "re-reading" (past it, within the grace: the
        current generation answers while a re-read runs) or "expired" (wait for the read)."""
        check = self.options.generation_check_seconds
        age = time.monotonic() - self._generation_at
        if age < check:
            return "current"
        if check > 0 and age < check + self.options.generation_grace_seconds:
            return "re-reading"
        return "expired"

    def _fetch_generation_soon(self) -> asyncio.Task[int]:
        """The running re-read of the generation, or a new one."""
        task = self._generation_task
        if task is None:
            task = asyncio.ensure_future(self._fetch_generation())
            self._generation_task = task
            task.add_done_callback(self._generation_done)
        return task

    def _generation_done(self, task: asyncio.Task[int]) -> None:
        self._generation_task = None
        if not task.cancelled():
            task.exception()  # retrieved: awaiting callers receive it

    async def _fetch_generation(self) -> int:
        try:
            generation, previous = await self._generation_source()
        except Exception as exc:
            if self._generation is None:
                # started while Postgres is unreachable: the generation the workers last read
                # (a hint in Redis) still finds the entries cached for that build
                hint = await self._generation_hint()
                if hint is None:
                    raise GenerationUnknown(str(exc)) from exc
                self.observe_generation(*hint)
                return hint[0]
            # Postgres unreachable: keep serving what we have for the current generation and
            # ask again after the check interval (not on every request)
            self._generation_at = time.monotonic()
            return self._generation
        if generation != self._generation:
            await self._store_generation_hint(generation, previous)
        self.observe_generation(generation, previous)
        return generation

    def _hint_key(self) -> str:
        return f"{self.namespace}:generation"

    async def _store_generation_hint(self, generation: int, previous: int | None) -> None:
        """Remember the published build for workers that start while Postgres is down. Only a
        hint: build ids are never reused, so an old or lost hint can only find fewer entries,
        never another build's data under this build's keys."""
        value = f"{generation} {'' if previous is None else previous}".strip()
        try:
            await self._redis(lambda: self.redis.set(self._hint_key(), value))
        except RedisDown:
            pass

    async def _generation_hint(self) -> tuple[int, int | None] | None:
        try:
            raw = await self._redis(lambda: self.redis.get(self._hint_key()))
        except RedisDown:
            return None
        if raw is None:
            return None
        parts = _as_bytes(raw).split()
        try:
            return int(parts[0]), int(parts[1]) if len(parts) > 1 else None
        except (ValueError, IndexError):
            return None

    def observe_generation(self, generation: int, previous: int | None = None) -> None:
        """Record a generation read from Postgres (also by /readyz) and the one it replaced
        (the build's own record, else the generation this worker served before)."""
        if previous is None and self._generation is not None and generation != self._generation:
            previous = self._generation
        if previous is not None:
            self._previous = previous
        self._generation = generation
        self._generation_at = time.monotonic()

    @property
    def current_generation(self) -> int | None:
        """The last generation read (None before the first read)."""
        return self._generation

    def full_key(self, generation: int, suffix: str) -> str:
        return f"{self.namespace}:g{generation}:{suffix}"

    # -- in-process layer -----------------------------------------------------------------------

    def _local_get(self, key: str) -> _LocalItem | None:
        return self._local.get(key)

    def _local_drop(self, key: str) -> None:
        self._local.pop(key)

    @staticmethod
    def _report_local(local: LRU[str, _LocalItem]) -> None:
        metrics.CACHE_LOCAL_ENTRIES.set(len(local))
        metrics.CACHE_LOCAL_BYTES.set(local.bytes)

    def _local_put(self, key: str, entry: Entry) -> None:
        if self.options.local_max_entries <= 0:
            return
        left = entry.fresh_until - time.time()
        hard_left = left + self.options.stale_seconds
        if hard_left <= 0:
            return
        item = _LocalItem(entry, time.monotonic() + left)
        self._local.put(key, item, ttl=hard_left, size=len(entry.body) + len(key) + _ENTRY_OVERHEAD)

    def clear_local(self) -> None:
        self._local.clear()

    def fresh_memory_entry(self, generation: int, key: str) -> Entry | None:
        """The in-process entry of ``key`` when ``get_or_load`` would answer it as it is, with
        nothing else to do: ``generation`` is the current one (within the check interval, or inside
        the grace with a re-read started, as ``generation`` does) and the entry needs no
        revalidation (api.http.ResponseMemo's fast path)."""
        if generation != self._generation:
            return None
        trust = self._generation_trust()
        if trust != "current":
            if trust == "expired":
                return None
            self._fetch_generation_soon()
        now = time.monotonic()
        item = self._local.get(key)
        if item is None or now >= item.fresh_at or not item.entry.is_fresh():
            return None
        return item.entry

    # -- read-through ---------------------------------------------------------------------------

    async def get_or_load(
        self, endpoint: str, suffix: str, ttl: int, loader: Loader, busy: Busy | None = None
    ) -> Outcome:
        """The entry for ``suffix`` in the current generation. ``busy`` (optional) says whether
        the database pool is saturated: a miss then prefers the previous generation's entry.
        A publish between the generation read and the load's statements (``GenerationMoved``)
        re-reads the generation and loads once more."""
        try:
            return await self._get_or_load(endpoint, suffix, ttl, loader, busy, force=False)
        except GenerationMoved:
            metrics.CACHE_REFRESH.labels(endpoint, "generation_moved").inc()
            return await self._get_or_load(endpoint, suffix, ttl, loader, busy, force=True)

    async def _get_or_load(
        self,
        endpoint: str,
        suffix: str,
        ttl: int,
        loader: Loader,
        busy: Busy | None,
        force: bool,
    ) -> Outcome:
        try:
            generation = await self.generation(force=force)
        except GenerationUnknown:
            # nothing read yet and Postgres unreachable: the load will most likely 503 too
            LOAD_GENERATION.set(None)
            outcome = await self._single_flight(
                "bypass:" + suffix, lambda: self._load_bypass(ttl, loader)
            )
            metrics.CACHE.labels(endpoint, outcome.result, outcome.layer).inc()
            return outcome
        key = self.full_key(generation, suffix)
        LOAD_GENERATION.set(generation)
        item = self._local_get(key)
        if item is not None:
            if time.monotonic() >= item.fresh_at:
                if not item.entry.is_fresh():
                    metrics.CACHE_STALE.labels(endpoint).inc()
                self._revalidate(endpoint, key, ttl, loader, generation)
            metrics.count(metrics.child(metrics.CACHE, endpoint, "hit", "memory"))
            return Outcome(item.entry, "hit", "memory", key, generation, endpoint)
        task, joined = self._flight(
            key, lambda: self._load_shared(endpoint, key, ttl, loader, generation, suffix, busy)
        )
        try:
            outcome = await self._await_load(endpoint, task, joined, generation, suffix, key, ttl)
        except ServiceUnavailable:
            fallback = await self._previous_generation(generation, suffix, ttl)
            if fallback is None:
                raise
            metrics.CACHE_FALLBACK.labels(endpoint).inc()
            outcome = fallback
        if outcome.result == "bypass":
            metrics.REDIS_DEGRADED.labels(endpoint).inc()
        metrics.count(metrics.child(metrics.CACHE, endpoint, outcome.result, outcome.layer))
        return replace(outcome, key=key, generation=generation, endpoint=endpoint)

    def _flight(
        self, key: str, make: Callable[[], Awaitable[Outcome]]
    ) -> tuple[asyncio.Task[Outcome], bool]:
        """The load of ``key`` in this worker: the running one (joined = True) or a new one."""
        task = self._inflight.get(key)
        if task is not None:
            return task, True
        task = asyncio.ensure_future(make())
        self._inflight[key] = task

        def done(t: asyncio.Task[Outcome]) -> None:
            self._inflight.pop(key, None)
            if not t.cancelled():
                t.exception()  # mark retrieved; awaiting callers still receive it

        task.add_done_callback(done)
        return task, False

    @staticmethod
    def _joined(outcome: Outcome) -> Outcome:
        result: Result = "hit" if outcome.result == "miss" else outcome.result
        return Outcome(outcome.entry, result, "coalesced")

    async def _single_flight(self, key: str, make: Callable[[], Awaitable[Outcome]]) -> Outcome:
        task, joined = self._flight(key, make)
        outcome = await asyncio.shield(task)
        return self._joined(outcome) if joined else outcome

    async def _await_load(
        self,
        endpoint: str,
        task: asyncio.Task[Outcome],
        joined: bool,
        generation: int,
        suffix: str,
        key: str,
        ttl: int,
    ) -> Outcome:
        """Wait for the shared load; past ``stale_wait_seconds`` answer a stale entry instead
        when one is held (the load is not cancelled: it still fills the cache)."""
        wait = self.options.stale_wait_seconds
        if wait > 0 and not task.done():
            done, _ = await asyncio.wait({task}, timeout=wait)
            if not done:
                stale = await self._stale_answer(generation, suffix, key, ttl)
                if stale is not None:
                    return stale
        outcome = await asyncio.shield(task)
        return self._joined(outcome) if joined else outcome

    async def _stale_answer(
        self, generation: int, suffix: str, key: str, ttl: int
    ) -> Outcome | None:
        """This key's (soft-expired) in-process entry, else the previous generation's."""
        item = self._local_get(key)
        if item is not None:
            return Outcome(item.entry, "stale", "memory")
        return await self._previous_generation(generation, suffix, ttl)

    async def _load_bypass(self, ttl: int, loader: Loader) -> Outcome:
        status, body = await loader()
        return Outcome(Entry(status, body, ttl, time.time() + ttl), "bypass", "db")

    async def _load_shared(
        self,
        endpoint: str,
        key: str,
        ttl: int,
        loader: Loader,
        generation: int,
        suffix: str,
        busy: Busy | None,
    ) -> Outcome:
        try:
            raw = await self._redis(lambda: self.redis.get(key))
        except RedisDown:
            return await self._load_bypass(ttl, loader)
        if raw is not None:
            entry = Entry.decode(_as_bytes(raw), ttl)
            self._local_put(key, entry)
            if not entry.is_fresh():
                metrics.CACHE_STALE.labels(endpoint).inc()
                # this load answers the stale entry: the refresh does the loading
                self._revalidate(endpoint, key, ttl, loader, generation, joining=True)
            return Outcome(entry, "hit", "redis")
        if busy is not None and busy():
            # the pool is saturated: slightly older data now beats queueing for a connection
            previous = await self._previous_generation(generation, suffix, ttl)
            if previous is not None:
                self._revalidate(endpoint, key, ttl, loader, generation, joining=True)
                return previous
        return await self._fill(key, ttl, loader)

    async def _fill(self, key: str, ttl: int, loader: Loader) -> Outcome:
        """Load ``key`` from Postgres unless another worker stores a fresh value first."""
        lock_key = key + ":lock"
        token = secrets.token_hex(8)
        try:
            locked, raw = await self._redis(lambda: self._lock_and_get(key, lock_key, token))
        except RedisDown:
            return await self._load_bypass(ttl, loader)
        if raw is not None:  # double-checked: stored since our GET (or stale, when refreshing)
            entry = Entry.decode(_as_bytes(raw), ttl)
            if entry.is_fresh():
                self._local_put(key, entry)
                if locked:
                    await self._release_lock(lock_key, token)
                return Outcome(entry, "hit", "redis")
        if not locked:
            waited = await self._wait_for_value(key, lock_key, ttl)
            if waited is not None:
                return waited
        try:
            status, body = await loader()
        except BaseException:
            if locked:
                await self._release_lock(lock_key, token)
            raise
        entry = Entry(status, body, ttl, time.time() + ttl)
        try:
            await self._redis(
                lambda: self._store(key, entry, lock_key, token if locked else None)
            )
        except RedisDown:
            return Outcome(entry, "bypass", "db")
        self._local_put(key, entry)
        return Outcome(entry, "miss", "db")

    async def _lock_and_get(self, key: str, lock_key: str, token: str) -> tuple[bool, Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(lock_key, token, nx=True, px=self.options.lock_ms)
            pipe.get(key)
            locked, raw = await pipe.execute()
        return bool(locked), raw

    async def _store(self, key: str, entry: Entry, lock_key: str, token: str | None) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(key, entry.encode(), ex=entry.ttl + self.options.stale_seconds)
            if token is not None:
                await self._release(keys=[lock_key], args=[token], client=pipe)  # queued
            await pipe.execute()

    async def _release_lock(self, lock_key: str, token: str) -> None:
        try:
            await self._redis(lambda: self._release(keys=[lock_key], args=[token]))
        except RedisDown:
            pass

    async def _wait_for_value(self, key: str, lock_key: str, ttl: int) -> Outcome | None:
        """Another worker holds the lock: poll (backing off) for its fresh value while the lock
        is held; None = load ourselves (the holder gave up, or the lock expired)."""
        deadline = time.monotonic() + self.options.lock_ms / 1000
        delay = self.options.lock_poll_seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, self.options.lock_poll_max_seconds)
            try:
                raw, held = await self._redis(lambda: self._get_and_lock_state(key, lock_key))
            except RedisDown:
                return None
            if raw is not None:
                entry = Entry.decode(_as_bytes(raw), ttl)
                if entry.is_fresh():
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

    # -- stale-while-revalidate -----------------------------------------------------------------

    def _revalidate(
        self,
        endpoint: str,
        key: str,
        ttl: int,
        loader: Loader,
        generation: int,
        joining: bool = False,
    ) -> None:
        """Start one background refresh of ``key`` (of data ``generation``) unless one is already
        running or queued (or a foreground load of it is; ``joining``: the caller is that
        foreground load, which answers a stale entry and leaves the loading to the refresh), or
        the backlog is full (then the stale entry stays; a later request asks again)."""
        if self._closed or key in self._refreshing or (key in self._inflight and not joining):
            return
        if len(self._refreshing) >= self.options.refresh_concurrency + self.options.refresh_backlog:
            metrics.CACHE_REFRESH.labels(endpoint, "dropped").inc()
            return
        # a fresh context: the task must not keep the request (Sanic's context variable) alive
        task = asyncio.get_running_loop().create_task(
            self._refresh(endpoint, key, ttl, loader, generation), context=contextvars.Context()
        )
        self._refreshing[key] = task
        task.add_done_callback(lambda _t: self._refreshing.pop(key, None))

    async def _refresh(
        self, endpoint: str, key: str, ttl: int, loader: Loader, generation: int
    ) -> None:
        async with self._refresh_slots:
            if self._generation is not None and self._generation != generation:
                # a refresh published meanwhile: nobody reads this key any more
                metrics.CACHE_REFRESH.labels(endpoint, "superseded").inc()
                return
            LOAD_GENERATION.set(generation)
            try:
                outcome = await self._fill(key, ttl, loader)
            except asyncio.CancelledError:
                raise
            except GenerationMoved:
                # a refresh published meanwhile: the next request reads the new generation
                metrics.CACHE_REFRESH.labels(endpoint, "superseded").inc()
                return
            except Exception as exc:  # noqa: BLE001 - the stale entry stays; next hit retries
                metrics.CACHE_REFRESH.labels(endpoint, "error").inc()
                log.info("background refresh of %s failed: %s", key, exc)
                return
        if outcome.result == "bypass":  # Redis went away meanwhile: keep the value locally
            self._local_put(key, outcome.entry)
        metrics.CACHE_REFRESH.labels(endpoint, "db" if outcome.layer == "db" else "redis").inc()

    # -- Postgres down: the previous generation -------------------------------------------------

    async def _previous_generation(self, generation: int, suffix: str, ttl: int) -> Outcome | None:
        previous = self._previous
        if previous is None or previous == generation:
            return None
        key = self.full_key(previous, suffix)
        item = self._local_get(key)
        if item is not None:
            return Outcome(item.entry, "stale", "memory")
        try:
            raw = await self._redis(lambda: self.redis.get(key))
        except RedisDown:
            return None
        if raw is None:
            return None
        entry = Entry.decode(_as_bytes(raw), ttl)
        self._local_put(key, entry)
        return Outcome(entry, "stale", "redis")

    # -- shutdown -------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop background work (pending loads and refreshes) so the pools can close."""
        self._closed = True
        tasks: list[asyncio.Task[Any]] = [*self._inflight.values(), *self._refreshing.values()]
        if self._generation_task is not None:
            tasks.append(self._generation_task)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
