"""asyncpg access for the API: one pool per worker, every statement with a timeout.

- ``statement_timeout`` is a connection setting (``server_settings``), so every query has it.
- One acquisition per unit of work: ``Database.session(name, work)`` acquires one pooled
  connection and runs every statement of a cache miss on it (a catalog page = page + estimate
  [+ count], a product = summary + sellers), so a miss queues for the pool once, not per
  statement.
- Reads run outside explicit transactions: after the refresh flow swaps the ``catalog`` schema,
  asyncpg re-prepares cached statements by itself; if a statement still fails with
  ``InvalidCachedStatementError`` / ``UndefinedTableError`` (a read racing the swap) the whole
  unit of work is retried once.
- Under overload requests queue for a connection (FIFO, up to ``acquire_timeout``, default
  10 s: ``API_DB_ACQUIRE_TIMEOUT``) and get slower rather than fail. 503 JSON only when Postgres
  is unreachable (``database_unavailable``), a statement hit ``statement_timeout``
  (``database_timeout``) or, as a last resort, nothing was free for ``acquire_timeout``
  (``database_busy``, with ``Retry-After``).
- ``Database.saturated()``: True when every pooled connection is taken or requests are already
  queued for one (counted here, no pool internals), so a new acquisition would wait. The cache
  then answers a miss from the previous generation's entry rather than queueing (api/cache.py).
- Reading a hot-standby replica: a statement cancelled because the replica replays a
  conflicting change (SQLSTATE 40001 "conflict with recovery", 57P04) is retried once on a fresh
  acquisition; a second cancellation raises ``RecoveryConflict`` (a ``ServiceUnavailable``: the
  cache answers the previous generation's entry when it holds one).
- ``DatabaseTargets``: the server the API reads (``API_DATABASE_URL``, e.g. a replica) and an
  optional fallback (``API_DATABASE_FALLBACK_URL``, e.g. the primary). The pool and the
  generation reader connect through the same object, so both always read the same server (a
  cache key's build and its data come from one place). When the preferred server refuses
  connections every connection moves to the fallback (``/readyz`` then says "degraded"); every
  ``retry_preferred_seconds`` the preferred one is probed and, once it answers, everything
  moves back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import asyncpg

from api import metrics
from api.errors import ServiceUnavailable
from pricecat.generation import GenerationMoved, read_build, read_generation

log = logging.getLogger("api.db")

T = TypeVar("T")

RETRYABLE = (
    asyncpg.exceptions.InvalidCachedStatementError,
    asyncpg.exceptions.UndefinedTableError,
)
UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InterfaceError,
)
#: A hot standby cancelled the statement: it replays a change that conflicts with it (a dropped
#: or renamed relation, a vacuum) — 40001 "conflict with recovery", 57P04 database dropped.
RECOVERY_CONFLICT = (
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DatabaseDroppedError,
)
#: Connecting with these is a configuration mistake: fail start-up with a clear message.
FATAL_AT_START = (
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidPasswordError,
)


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"


class DatabaseTimeout(ServiceUnavailable):
    code = "database_timeout"


class RecoveryConflict(ServiceUnavailable):
    """A replica cancelled the statement twice (it replays conflicting changes); the cache
    answers from the previous generation when it can."""

    code = "database_recovery_conflict"


class DatabaseBusy(ServiceUnavailable):
    """No pooled connection became free within acquire_timeout (Postgres is up but saturated)."""

    code = "database_busy"


@dataclass(frozen=True)
class PoolOptions:
    min_size: int = 2
    max_size: int = 16
    #: how long a request may queue for a pooled connection before 503 database_busy
    acquire_timeout: float = 10.0
    #: how long opening one new connection may take (Postgres unreachable -> 503 after this)
    connect_timeout: float = 3.0
    close_timeout: float = 5.0
    #: client-side statement timeout = statement_timeout + this
    command_grace: float = 2.0
    #: resetting a connection on release; past it the connection is terminated, not reused
    release_timeout: float = 3.0


class Executor(Protocol):
    """What the query modules need: a ``Database`` (one acquisition per statement) or a
    ``Session`` (statements of one unit of work on one connection)."""

    async def fetch(self, name: str, sql: str, *args: Any) -> list[asyncpg.Record]: ...

    async def fetchrow(self, name: str, sql: str, *args: Any) -> asyncpg.Record | None: ...

    async def fetchval(self, name: str, sql: str, *args: Any) -> Any: ...


class Session:
    """Statements on one acquired connection; counts and classifies each by its query name."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def _run(self, name: str, method: str, sql: str, args: tuple[Any, ...]) -> Any:
        metrics.DB_QUERIES.labels(name).inc()
        try:
            return await getattr(self.conn, method)(sql, *args)
        except RETRYABLE:
            metrics.DB_ERRORS.labels(name, "retry").inc()
            raise
        except RECOVERY_CONFLICT:
            metrics.DB_ERRORS.labels(name, "recovery_conflict").inc()
            raise
        except asyncpg.exceptions.QueryCanceledError as exc:
            metrics.DB_ERRORS.labels(name, "timeout").inc()
            raise DatabaseTimeout("The database did not answer in time") from exc
        except UNAVAILABLE as exc:
            metrics.DB_ERRORS.labels(name, "unavailable").inc()
            raise DatabaseUnavailable("The database is unavailable") from exc

    async def fetch(self, name: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        return list(await self._run(name, "fetch", sql, args))

    async def fetchrow(self, name: str, sql: str, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._run(name, "fetchrow", sql, args)
        return row

    async def fetchval(self, name: str, sql: str, *args: Any) -> Any:
        return await self._run(name, "fetchval", sql, args)


class DatabaseTargets:
    """Where the API reads: ``preferred`` (API_DATABASE_URL) and, optionally, ``fallback``
    (API_DATABASE_FALLBACK_URL). Everything of one worker (pool + generation reader) connects
    through one instance, so it reads one server at a time."""

    def __init__(
        self, preferred: str, fallback: str | None = None, retry_preferred_seconds: float = 5.0
    ) -> None:
        self.urls = [preferred] + ([fallback] if fallback and fallback != preferred else [])
        self.retry_preferred_seconds = retry_preferred_seconds
        self.index = 0
        #: bumped on every switch: connections made before it belong to the other server
        self.epoch = 0
        self._probed_at = 0.0
        self._on_switch: list[Callable[[], object]] = []

    @property
    def dsn(self) -> str:
        return self.urls[self.index]

    @property
    def on_fallback(self) -> bool:
        return self.index > 0

    @property
    def can_fail_over(self) -> bool:
        return len(self.urls) > 1 and self.index == 0

    def on_switch(self, callback: Callable[[], object]) -> None:
        self._on_switch.append(callback)

    def _switch(self, index: int, reason: str) -> None:
        if index == self.index:
            return
        self.index = index
        self.epoch += 1
        self._probed_at = time.monotonic()
        where = "the fallback database" if index else "the preferred database"
        log.warning("reading %s from now on (%s)", where, reason)
        metrics.DB_ERRORS.labels("targets", "fallback" if index else "preferred").inc()
        for callback in self._on_switch:
            callback()

    async def connect(self, *_args: Any, **kwargs: Any) -> Any:
        """A connection to the current server (asyncpg.connect's keywords); the preferred one
        unreachable -> switch to the fallback and connect there."""
        try:
            return await asyncpg.connect(self.dsn, **kwargs)
        except UNAVAILABLE as exc:
            if not self.can_fail_over:
                raise
            self._switch(1, f"{type(exc).__name__}: {exc}")
            return await asyncpg.connect(self.dsn, **kwargs)

    async def fail_over(self, timeout: float = 1.0) -> bool:
        """After a broken connection: if the preferred server no longer accepts connections,
        switch to the fallback. True when a switch happened (a retry then reads the fallback)."""
        if not self.can_fail_over:
            return False
        try:
            conn = await asyncpg.connect(self.urls[0], timeout=timeout)
        except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
            self._switch(1, f"{type(exc).__name__}: {exc}")
            return True
        await conn.close()
        return False

    async def maybe_return(self, timeout: float = 1.0) -> None:
        """On the fallback: every ``retry_preferred_seconds`` see whether the preferred server
        answers again, and move back to it if so."""
        now = time.monotonic()
        if not self.on_fallback or now - self._probed_at < self.retry_preferred_seconds:
            return
        self._probed_at = now
        try:
            conn = await asyncpg.connect(self.urls[0], timeout=timeout)
        except (*UNAVAILABLE, asyncpg.PostgresError):
            return
        await conn.close()
        self._switch(0, "it answers again")


class Database:
    """The pool plus the retry/metrics policy."""

    def __init__(
        self, pool: asyncpg.Pool, options: PoolOptions, targets: DatabaseTargets | None = None
    ) -> None:
        self.pool = pool
        self.options = options
        self.targets = targets
        self._closing: asyncio.Task[None] | None = None
        #: acquisitions under way (queued or connecting) and connections handed out
        self._waiting = 0
        self._in_use = 0

    def saturated(self) -> bool:
        """A new acquisition would have to wait: all ``max_size`` connections are in use or
        spoken for by queued acquisitions."""
        return self._in_use + self._waiting >= self.options.max_size

    @classmethod
    async def connect(
        cls, dsn: str | DatabaseTargets, statement_timeout_ms: int, options: PoolOptions
    ) -> Database:
        """Create the pool. A wrong database/role/password fails fast; an unreachable server does
        not (the API starts, serves cached answers, and answers 503 until Postgres is back).
        ``dsn``: a URL, or ``DatabaseTargets`` (a preferred server and a fallback)."""
        targets = dsn if isinstance(dsn, DatabaseTargets) else DatabaseTargets(dsn)
        server_settings = {
            "statement_timeout": str(int(statement_timeout_ms)),
            "application_name": "pricecat-api",
            "default_transaction_read_only": "on",
            # asyncpg re-uses named prepared statements; after 5 runs Postgres may switch one
            # to a generic plan, which can't fold the catalog's optional filters
            # (`$n is null or ...`) nor see the q pattern the trigram index needs. Custom plans
            # cost ~0.1 ms of planning per statement and keep every page an index scan.
            "plan_cache_mode": "force_custom_plan",
        }
        min_size = options.min_size
        try:
            probe = await targets.connect(
                timeout=options.connect_timeout, server_settings=server_settings
            )
            await probe.close()
        except FATAL_AT_START:
            raise
        except UNAVAILABLE as exc:
            log.warning("Postgres unreachable at start-up (%s): starting anyway", exc)
            min_size = 0
        pool = await asyncpg.create_pool(
            targets.dsn,
            connect=targets.connect,
            min_size=min_size,
            max_size=options.max_size,
            timeout=options.connect_timeout,
            # client-side bound on every statement, a little above the server's
            # statement_timeout (which normally fires first: database_timeout): a silent network
            # partition leaves pooled connections open with nothing coming back
            command_timeout=statement_timeout_ms / 1000 + options.command_grace,
            server_settings=server_settings,
            max_inactive_connection_lifetime=300.0,
        )
        metrics.DB_POOL_SIZE.inc(options.max_size)
        # after a switch, connections to the other server are replaced as they come back
        targets.on_switch(lambda: asyncio.ensure_future(pool.expire_connections()))
        return cls(pool, options, targets)

    async def close(self) -> None:
        """Close the pool once, however often this is awaited (Sanic may run the shutdown
        listener twice on uvloop). Waits up to close_timeout for in-use connections, then
        terminates; never leaves close coroutines behind for a closed event loop."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        metrics.DB_POOL_SIZE.dec(self.options.max_size)
        try:
            await asyncio.wait_for(self.pool.close(), timeout=self.options.close_timeout)
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - shutting down anyway
            log.info("closing the database pool: %s; terminating it", type(exc).__name__)
            self.pool.terminate()

    @asynccontextmanager
    async def connection(self, name: str) -> AsyncIterator[Any]:
        started = time.perf_counter()
        self._waiting += 1
        try:
            conn = await self.pool.acquire(timeout=self.options.acquire_timeout)
        except TimeoutError as exc:
            waited = time.perf_counter() - started
            metrics.DB_ACQUIRE_WAIT.observe(waited)
            if waited < self.options.acquire_timeout * 0.95:
                # a connect attempt timed out (connect_timeout < acquire_timeout): unreachable
                metrics.DB_ERRORS.labels(name, "unavailable").inc()
                raise DatabaseUnavailable("The database is unavailable") from exc
            # the pool stayed full the whole time: Postgres is up but saturated
            metrics.DB_ERRORS.labels(name, "busy").inc()
            raise DatabaseBusy(
                "The database is saturated; retry", headers={"Retry-After": "1"}
            ) from exc
        except UNAVAILABLE as exc:
            metrics.DB_ERRORS.labels(name, "unavailable").inc()
            raise DatabaseUnavailable("The database is unavailable") from exc
        finally:
            self._waiting -= 1
        metrics.DB_ACQUIRE_WAIT.observe(time.perf_counter() - started)
        metrics.DB_POOL_IN_USE.inc()
        self._in_use += 1
        try:
            yield conn
        finally:
            metrics.DB_POOL_IN_USE.dec()
            try:
                await self.pool.release(conn, timeout=self.options.release_timeout)
            finally:
                self._in_use -= 1

    async def session(
        self,
        name: str,
        work: Callable[[Session], Awaitable[T]],
        generation: int | None = None,
    ) -> T:
        """Run ``work`` with one pooled connection (one acquisition for all of its statements);
        retried once, on a fresh acquisition, if a statement raced a schema swap.

        ``generation``: the build the answer is for (its cache key's generation). The build id
        is re-read on the same connection after ``work``; a different one raises
        ``GenerationMoved``. The key's generation was read before ``work`` began and build ids
        never come back, so an unchanged id proves that every statement read that one build.

        A replica's recovery conflict is retried once too; a connection broken because the
        preferred server went away is retried once on the fallback (``DatabaseTargets``)."""
        if self.targets is not None and self.targets.on_fallback:
            await self.targets.maybe_return()  # at most one probe per retry_preferred_seconds
        for attempt in (1, 2):
            try:
                async with self.connection(name) as conn:
                    result = await work(Session(conn))
                    if generation is not None:
                        found = await read_generation(conn)
                        if found != generation:
                            raise GenerationMoved(generation, found)
                    return result
            except RETRYABLE as exc:
                if attempt == 2:
                    raise DatabaseUnavailable(
                        "The read models are being replaced; retry"
                    ) from exc
                log.info("retrying %s after %s (schema swap?)", name, type(exc).__name__)
                await asyncio.sleep(0.05)
            except RECOVERY_CONFLICT as exc:
                if attempt == 2:
                    raise RecoveryConflict(
                        "The replica is replaying conflicting changes; retry"
                    ) from exc
                log.info("retrying %s after a recovery conflict on the replica", name)
            except (*UNAVAILABLE, DatabaseUnavailable) as exc:
                # e.g. the connection broke between statements; the preferred server gone ->
                # once more on the fallback
                if attempt == 1 and self.targets is not None and await self.targets.fail_over():
                    continue
                if isinstance(exc, DatabaseUnavailable):
                    raise
                metrics.DB_ERRORS.labels(name, "unavailable").inc()
                raise DatabaseUnavailable("The database is unavailable") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def fetch(self, name: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self.session(name, lambda s: s.fetch(name, sql, *args))

    async def fetchrow(self, name: str, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self.session(name, lambda s: s.fetchrow(name, sql, *args))

    async def fetchval(self, name: str, sql: str, *args: Any) -> Any:
        return await self.session(name, lambda s: s.fetchval(name, sql, *args))


class GenerationReader:
    """Reads the published build id (the data generation) on a connection of its own, outside
    the pool: the once-a-second check never queues behind a saturated pool and answers within
    ``timeout`` or raises ``DatabaseUnavailable`` (the cache then keeps its last generation)."""

    def __init__(self, dsn: str | DatabaseTargets, timeout: float = 1.0) -> None:
        self.targets = dsn if isinstance(dsn, DatabaseTargets) else DatabaseTargets(dsn)
        self.timeout = timeout
        self._conn: asyncpg.Connection | None = None
        self._epoch = self.targets.epoch
        self._lock = asyncio.Lock()

    async def read(self) -> tuple[int, int | None]:
        """(published build id, the build it replaced)."""
        async with self._lock:
            try:
                # the generation is read from the server the pool reads (see DatabaseTargets)
                await self.targets.maybe_return(self.timeout)
                if self._epoch != self.targets.epoch:
                    await self._drop()
                if self._conn is None or self._conn.is_closed():
                    self._epoch = self.targets.epoch
                    self._conn = await self.targets.connect(
                        timeout=self.timeout,
                        server_settings={
                            "application_name": "pricecat-api-generation",
                            "default_transaction_read_only": "on",
                        },
                    )
                return await asyncio.wait_for(read_build(self._conn), self.timeout)
            except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
                await self._drop()
                raise DatabaseUnavailable("The database is unavailable") from exc

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        async with self._lock:
            await self._drop()
