"""asyncpg access for the API: one pool per worker, every statement with a timeout.

- ``statement_timeout`` is a connection setting (``server_settings``), so every query has it.
- Reads run outside explicit transactions: after the refresh flow swaps the ``catalog`` schema,
  asyncpg re-prepares cached statements by itself; if a statement still fails with
  ``InvalidCachedStatementError`` / ``UndefinedTableError`` (a read racing the swap) it is retried
  once.
- Connection-level failures (Postgres down, pool exhausted, statement timeout) become
  ``DatabaseUnavailable`` -> 503 JSON, unless the cache can answer first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from api import metrics
from api.errors import ServiceUnavailable

log = logging.getLogger("api.db")

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


@dataclass(frozen=True)
class PoolOptions:
    min_size: int = 2
    max_size: int = 10
    acquire_timeout: float = 3.0
    connect_timeout: float = 3.0


class Database:
    """The pool plus retry/metrics policy; query modules call fetch/fetchrow/fetchval."""

    def __init__(self, pool: asyncpg.Pool, options: PoolOptions) -> None:
        self.pool = pool
        self.options = options

    @classmethod
    async def connect(cls, dsn: str, statement_timeout_ms: int, options: PoolOptions) -> Database:
        """Create the pool. A wrong database/role/password fails fast; an unreachable server does
        not (the API starts, serves cached answers, and answers 503 until Postgres is back)."""
        server_settings = {
            "statement_timeout": str(int(statement_timeout_ms)),
            "application_name": "pricecat-api",
            "default_transaction_read_only": "on",
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
            server_settings=server_settings,
            max_inactive_connection_lifetime=300.0,
        )
        metrics.DB_POOL_SIZE.inc(options.max_size)
        return cls(pool, options)

    async def close(self) -> None:
        metrics.DB_POOL_SIZE.dec(self.options.max_size)
        await self.pool.close()

    @asynccontextmanager
    async def connection(self, name: str) -> AsyncIterator[Any]:
        try:
            conn = await self.pool.acquire(timeout=self.options.acquire_timeout)
        except UNAVAILABLE as exc:
            metrics.DB_ERRORS.labels(name, "unavailable").inc()
            raise DatabaseUnavailable("The database is unavailable") from exc
        metrics.DB_POOL_IN_USE.inc()
        try:
            yield conn
        finally:
            metrics.DB_POOL_IN_USE.dec()
            await self.pool.release(conn)

    async def _run(self, name: str, method: str, sql: str, args: tuple[Any, ...]) -> Any:
        for attempt in (1, 2):
            metrics.DB_QUERIES.labels(name).inc()
            try:
                async with self.connection(name) as conn:
                    return await getattr(conn, method)(sql, *args)
            except RETRYABLE as exc:
                metrics.DB_ERRORS.labels(name, "retry").inc()
                if attempt == 2:
                    raise DatabaseUnavailable("The read models are being replaced; retry") from exc
                log.info("retrying %s after %s (schema swap?)", name, type(exc).__name__)
                await asyncio.sleep(0.05)
            except asyncpg.exceptions.QueryCanceledError as exc:
                metrics.DB_ERRORS.labels(name, "timeout").inc()
                raise DatabaseTimeout("The database did not answer in time") from exc
            except DatabaseUnavailable:
                raise
            except UNAVAILABLE as exc:
                metrics.DB_ERRORS.labels(name, "unavailable").inc()
                raise DatabaseUnavailable("The database is unavailable") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def fetch(self, name: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        return list(await self._run(name, "fetch", sql, args))

    async def fetchrow(self, name: str, sql: str, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._run(name, "fetchrow", sql, args)
        return row

    async def fetchval(self, name: str, sql: str, *args: Any) -> Any:
        return await self._run(name, "fetchval", sql, args)
