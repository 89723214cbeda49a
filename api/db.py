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


class Database:
    """The pool plus the retry/metrics policy."""

    def __init__(self, pool: asyncpg.Pool, options: PoolOptions) -> None:
        self.pool = pool
        self.options = options
        self._closing: asyncio.Task[None] | None = None
        #: acquisitions under way (queued or connecting) and connections handed out
        self._waiting = 0
        self._in_use = 0

    def saturated(self) -> bool:
        """A new acquisition would have to wait: all ``max_size`` connections are in use or
        spoken for by queued acquisitions."""
        return self._in_use + self._waiting >= self.options.max_size

    @classmethod
    async def connect(cls, dsn: str, statement_timeout_ms: int, options: PoolOptions) -> Database:
        """Create the pool. A wrong database/role/password fails fast; an unreachable server does
        not (the API starts, serves cached answers, and answers 503 until Postgres is back)."""
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
            probe = await asyncpg.connect(
                dsn, timeout=options.connect_timeout, server_settings=server_settings
            )
            await probe.close()
        except FATAL_AT_START:
            raise
        except UNAVAILABLE as exc:
            log.warning("Postgres unreachable at start-up (%s): starting anyway", exc)
            min_size = 0
        pool = await asyncpg.create_pool(
            dsn,
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
        return cls(pool, options)

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
        never come back, so an unchanged id proves that every statement read that one build."""
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
            except UNAVAILABLE as exc:  # e.g. the connection broke between statements
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

    def __init__(self, dsn: str, timeout: float = 1.0) -> None:
        self.dsn = dsn
        self.timeout = timeout
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    async def read(self) -> tuple[int, int | None]:
        """(published build id, the build it replaced)."""
        async with self._lock:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(
                        self.dsn,
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
