"""The refresh is batch work: it yields the CPU to the API while both run on one machine.

A refresh (Prefect, dbt, and the Postgres backends that run dbt's SQL) keeps both cores of a
small box busy for tens of seconds. At equal priority an API cache miss then waits behind the
build's aggregates, and under load the misses queue up into timeouts. So the refresh runs at a
lower CPU priority (``REFRESH_NICE``, default 10; 0 = off):

- ``lower_process_priority``: the `pricecat refresh` / `pricecat schedule` process itself, hence
  every child it starts (Prefect's temporary server, the dbt subprocess).
- ``BackendRenicer``: dbt connects with ``application_name = pricecat-refresh``
  (``BUILD_APPLICATION_NAME``); while the build runs, the Postgres backends of those
  connections and their parallel workers are reniced too. Only when Postgres runs on this host
  in the same PID namespace (checked: our own backend's ``/proc/<pid>/cmdline`` is a postgres
  process title naming our database) and the OS allows it (root, the postgres OS user, or
  CAP_SYS_NICE); otherwise it logs why once and does nothing. A backend's niceness dies with it.

Niceness only matters under contention: on an idle machine the build runs as fast as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from types import TracebackType

import asyncpg

from pricecat.config import Settings

log = logging.getLogger(__name__)

#: application_name of dbt's connections during a refresh (profiles/profiles.yml reads it from
#: PRICECAT_DBT_APPLICATION_NAME); an analyst's `dbt` keeps dbt's default "dbt".
BUILD_APPLICATION_NAME = "pricecat-refresh"

_BACKENDS_SQL = """
select pid from pg_stat_activity
where datname = current_database()
  and (application_name = $1
       or leader_pid in (select pid from pg_stat_activity where application_name = $1))
"""


def refresh_nice() -> int:
    """``REFRESH_NICE`` (declared in pricecat.config.Settings): the niceness of refresh work;
    0 = leave it alone."""
    return Settings.from_env().refresh_nice


def lower_process_priority(nice: int) -> int:
    """Raise this process's niceness to ``nice`` (never lowers it); the resulting niceness."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice > current:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except OSError as exc:  # a sandbox may forbid even this; the refresh still works
            log.info("could not lower the refresh's CPU priority: %s", exc)
    return os.getpriority(os.PRIO_PROCESS, 0)


def _postgres_title(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def renice_backend(pid: int, nice: int) -> bool:
    """Renice one Postgres backend to ``nice``; False when it is gone, not a postgres process
    here, or not ours to renice. Raises PermissionError when the OS forbids it."""
    title = _postgres_title(pid)
    if title is None or not title.startswith(b"postgres"):
        return False
    try:
        if os.getpriority(os.PRIO_PROCESS, pid) < nice:
            os.setpriority(os.PRIO_PROCESS, pid, nice)
    except ProcessLookupError:
        return False
    return True


class BackendRenicer:
    """While entered, renice the backends of ``application_name`` every ``interval`` seconds.

    ``conn`` is a dedicated connection of the flow (closed by the caller). ``reniced`` holds the
    PIDs handled; ``disabled`` says why nothing is done (None while active)."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        nice: int,
        application_name: str = BUILD_APPLICATION_NAME,
        interval: float = 0.25,
    ) -> None:
        self.conn = conn
        self.nice = nice
        self.application_name = application_name
        self.interval = interval
        self.reniced: set[int] = set()
        self.disabled: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def _local_postgres(self) -> str | None:
        """None when our backends are processes of this host; else the reason they are not."""
        row = await self.conn.fetchrow("select pg_backend_pid() as pid, current_database() as db")
        assert row is not None
        pid, dbname = row["pid"], str(row["db"])
        title = _postgres_title(pid)
        if title is None or not title.startswith(b"postgres") or dbname.encode() not in title:
            return "Postgres does not run on this host (or in another PID namespace)"
        return None

    async def __aenter__(self) -> BackendRenicer:
        if self.nice <= 0:
            self.disabled = "REFRESH_NICE=0"
        else:
            self.disabled = await self._local_postgres()
        if self.disabled is None:
            self._task = asyncio.ensure_future(self._loop())
        else:
            log.info("not renicing the build's Postgres backends: %s", self.disabled)
        return self

    async def sweep(self) -> None:
        """One pass: renice every current backend of the build not handled yet."""
        rows = await self.conn.fetch(_BACKENDS_SQL, self.application_name)
        for (pid,) in rows:
            if pid in self.reniced:
                continue
            if renice_backend(pid, self.nice):
                self.reniced.add(pid)

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except PermissionError as exc:
                self.disabled = f"not permitted ({exc.strerror}); run as root or the postgres user"
                log.info("not renicing the build's Postgres backends: %s", self.disabled)
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.info("renicing the build's Postgres backends stopped: %s", exc)
                return
            await asyncio.sleep(self.interval)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
